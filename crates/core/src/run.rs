//! Running a guest: admission, a store with limits, a WASI context built
//! from the grant, and the outcome classified into the one error type.

use crate::admission::{AdmissionContext, AdmissionRequest, Grant};
use crate::caps::Capabilities;
use crate::error::{Error, Frame, Result};
use crate::limits::{Limits, MemoryLimitHit, MemoryLimiter};
use crate::runtime::{root_message, Compiled, Loaded, Runtime};
use std::sync::mpsc;
use std::sync::Arc;
use std::time::Duration;
use wasmtime::{Engine, Store, Trap, Val, ValType};
use wasmtime_wasi::p1::WasiP1Ctx;
use wasmtime_wasi::{I32Exit, ResourceTable, WasiCtx, WasiCtxBuilder, WasiCtxView, WasiView};

/// Calls an exported function of a core module instead of `_start`.
#[derive(Debug, Clone)]
pub struct Invoke {
    pub name: String,
    pub args: Vec<String>,
}

/// What to run a loaded artifact with.
#[derive(Debug, Clone)]
pub struct RunOptions {
    /// Requested capabilities (before admission).
    pub capabilities: Capabilities,
    /// Requested limits (before admission).
    pub limits: Limits,
    pub invoke: Option<Invoke>,
    /// `argv[0]` as the guest sees it.
    pub program_name: String,
    pub context: AdmissionContext,
}

/// How a run ended when the guest itself ended it.
#[derive(Debug, Clone)]
pub struct RunOutcome {
    /// The guest's exit code (0 when `_start` or `run` returned normally).
    pub exit_code: i32,
    /// Printed results of an `--invoke`d function.
    pub results: Vec<String>,
    /// Fuel burnt, when fuel was metered.
    pub fuel_consumed: Option<u64>,
    /// Peak bytes of linear memory and tables.
    pub peak_memory: u64,
}

/// Time a guest stuck in a host call gets after its deadline before the
/// runner gives up on it.
const TIMEOUT_GRACE: Duration = Duration::from_millis(250);

/// Stack for the thread that runs a guest under a timeout: room for the
/// guest's WebAssembly stack plus the host's own frames.
const GUEST_THREAD_STACK: usize = 8 << 20;

impl Runtime {
    /// Puts the request through the admission hook.
    pub fn admit(
        &self,
        loaded: &Loaded,
        caps: &Capabilities,
        limits: &Limits,
        context: &AdmissionContext,
    ) -> Result<Grant> {
        let request = AdmissionRequest {
            artifact: &loaded.facts,
            requested: caps,
            limits,
            context,
        };
        let grant = self
            .admission
            .admit(&request)
            .map_err(|d| Error::Denied { reasons: d.reasons })?;
        tracing::debug!(?grant, "admission granted");
        Ok(grant)
    }

    /// Admits and runs a loaded artifact to completion. Directories are
    /// resolved to absolute paths before admission, so the admission judges
    /// exactly what would be opened.
    pub fn run(&self, loaded: &Loaded, mut opts: RunOptions) -> Result<RunOutcome> {
        opts.capabilities.resolve_dirs()?;
        let mut grant = self.admit(loaded, &opts.capabilities, &opts.limits, &opts.context)?;
        // An admission may add directories of its own: resolve those too.
        grant.capabilities.resolve_dirs()?;
        if grant.limits.fuel.is_some() && !self.meters_fuel() {
            return Err(Error::usage(
                "a fuel limit needs a runtime built with fuel metering (EngineOptions::fuel)",
            ));
        }
        let job = Job {
            engine: loaded.compiled.engine().clone(),
            compiled: loaded.compiled.clone(),
            grant,
            invoke: opts.invoke,
            program_name: opts.program_name,
        };
        match job.grant.limits.timeout {
            None => job.execute(),
            Some(timeout) => run_with_timeout(job, timeout),
        }
    }
}

fn run_with_timeout(job: Job, timeout: Duration) -> Result<RunOutcome> {
    let engine = job.engine.clone();
    let (tx, rx) = mpsc::channel();
    std::thread::Builder::new()
        .name("guest".into())
        .stack_size(GUEST_THREAD_STACK)
        .spawn(move || {
            let _ = tx.send(job.execute());
        })
        .map_err(|e| Error::host(format!("cannot start the guest thread: {e}")))?;
    match rx.recv_timeout(timeout) {
        Ok(r) => r,
        Err(mpsc::RecvTimeoutError::Disconnected) => {
            Err(Error::host("the guest thread ended without a result"))
        }
        Err(mpsc::RecvTimeoutError::Timeout) => {
            // Interrupt WebAssembly code at its next epoch check.
            engine.increment_epoch();
            match rx.recv_timeout(TIMEOUT_GRACE) {
                Ok(r) => r,
                // Still blocked in a host call: report the timeout anyway.
                Err(_) => Err(Error::Timeout(timeout)),
            }
        }
    }
}

struct Job {
    engine: Engine,
    compiled: Compiled,
    grant: Grant,
    invoke: Option<Invoke>,
    program_name: String,
}

/// Store state for a core module.
struct P1State {
    wasi: WasiP1Ctx,
    limiter: MemoryLimiter,
}

/// Store state for a component.
struct P2State {
    wasi: WasiCtx,
    table: ResourceTable,
    limiter: MemoryLimiter,
}

impl WasiView for P2State {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

impl Job {
    /// Runs the guest on a current-thread Tokio runtime of its own: WASI's
    /// host calls are async, and a multi-threaded runtime would start worker
    /// threads that a one-shot command never needs.
    fn execute(self) -> Result<RunOutcome> {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_io()
            .enable_time()
            .build()
            .map_err(|e| Error::host(format!("cannot start the I/O runtime: {e}")))?;
        rt.block_on(self.execute_async())
    }

    async fn execute_async(self) -> Result<RunOutcome> {
        let mut wasi = wasi_builder(&self.grant.capabilities, &self.program_name)?;
        // One guest per thread here: blocking file I/O in place is cheaper
        // than handing it to a thread pool.
        wasi.allow_blocking_current_thread(true);
        let limits = self.grant.limits.clone();
        match &self.compiled {
            Compiled::Module(module) => {
                let state = P1State {
                    wasi: wasi.build_p1(),
                    limiter: MemoryLimiter::new(&limits),
                };
                let mut store = new_store(&self.engine, state, &limits, |s| &mut s.limiter)?;
                let mut linker = wasmtime::Linker::new(&self.engine);
                wasmtime_wasi::p1::add_to_linker_async(&mut linker, |s: &mut P1State| &mut s.wasi)
                    .map_err(|e| Error::host(format!("cannot link WASI: {e:#}")))?;
                let result = run_module(&mut store, &linker, module, self.invoke.as_ref()).await;
                finish(store, result, &limits, |s| &s.limiter)
            }
            Compiled::Component(component) => {
                if self.invoke.is_some() {
                    return Err(Error::usage(
                        "--invoke calls exports of core modules; this artifact is a component",
                    ));
                }
                let state = P2State {
                    wasi: wasi.build(),
                    table: ResourceTable::new(),
                    limiter: MemoryLimiter::new(&limits),
                };
                let mut store = new_store(&self.engine, state, &limits, |s| &mut s.limiter)?;
                let mut linker = wasmtime::component::Linker::new(&self.engine);
                wasmtime_wasi::p2::add_to_linker_async(&mut linker)
                    .map_err(|e| Error::host(format!("cannot link WASI: {e:#}")))?;
                let result = run_component(&mut store, &linker, component).await;
                finish(store, result, &limits, |s| &s.limiter)
            }
        }
    }
}

fn new_store<T: Send + 'static>(
    engine: &Engine,
    state: T,
    limits: &Limits,
    limiter: fn(&mut T) -> &mut MemoryLimiter,
) -> Result<Store<T>> {
    let mut store = Store::new(engine, state);
    store.limiter(move |s| limiter(s) as &mut dyn wasmtime::ResourceLimiter);
    if let Some(fuel) = limits.fuel {
        store
            .set_fuel(fuel)
            .map_err(|e| Error::host(format!("cannot set fuel: {e}")))?;
    } else if engine.get_consume_fuel() {
        store
            .set_fuel(u64::MAX)
            .map_err(|e| Error::host(format!("cannot set fuel: {e}")))?;
    }
    // With a timeout the runner bumps the epoch once at the deadline.
    store.set_epoch_deadline(if limits.timeout.is_some() {
        1
    } else {
        u64::MAX / 2
    });
    Ok(store)
}

/// Raw result of the guest: exit code and invoke results, or the error.
type GuestResult = std::result::Result<(i32, Vec<String>), GuestError>;

enum GuestError {
    /// Our own, already classified.
    Host(Error),
    /// From wasmtime, to classify against the store's state.
    Wasm(wasmtime::Error),
}

impl From<Error> for GuestError {
    fn from(e: Error) -> Self {
        GuestError::Host(e)
    }
}

async fn run_module(
    store: &mut Store<P1State>,
    linker: &wasmtime::Linker<P1State>,
    module: &wasmtime::Module,
    invoke: Option<&Invoke>,
) -> GuestResult {
    let instance = linker
        .instantiate_async(&mut *store, module)
        .await
        .map_err(instantiate_error)?;
    match invoke {
        None => {
            let Some(start) = instance.get_func(&mut *store, "_start") else {
                let exports: Vec<String> = module.exports().map(|e| e.name().to_string()).collect();
                return Err(Error::invalid(format!(
                    "module has no `_start` export (it is not a WASI command); call one of its exports with --invoke NAME: {}",
                    if exports.is_empty() { "(it exports nothing)".to_string() } else { exports.join(", ") }
                ))
                .into());
            };
            let start = start.typed::<(), ()>(&*store).map_err(|_| {
                Error::invalid("`_start` must take no parameters and return nothing")
            })?;
            start
                .call_async(&mut *store, ())
                .await
                .map_err(GuestError::Wasm)?;
            Ok((0, Vec::new()))
        }
        Some(inv) => {
            if let Ok(init) = instance.get_typed_func::<(), ()>(&mut *store, "_initialize") {
                init.call_async(&mut *store, ())
                    .await
                    .map_err(GuestError::Wasm)?;
            }
            let func = instance.get_func(&mut *store, &inv.name).ok_or_else(|| {
                let funcs: Vec<String> = module
                    .exports()
                    .filter(|e| e.ty().func().is_some())
                    .map(|e| e.name().to_string())
                    .collect();
                Error::usage(format!(
                    "module has no exported function `{}`; it exports: {}",
                    inv.name,
                    funcs.join(", ")
                ))
            })?;
            let ty = func.ty(&*store);
            let params: Vec<ValType> = ty.params().collect();
            if params.len() != inv.args.len() {
                return Err(Error::usage(format!(
                    "function `{}` takes {} argument(s), {} given",
                    inv.name,
                    params.len(),
                    inv.args.len()
                ))
                .into());
            }
            let args = params
                .iter()
                .zip(&inv.args)
                .map(|(t, a)| parse_val(t, a))
                .collect::<Result<Vec<Val>>>()?;
            let mut results = vec![Val::I32(0); ty.results().len()];
            func.call_async(&mut *store, &args, &mut results)
                .await
                .map_err(GuestError::Wasm)?;
            Ok((0, results.iter().map(format_val).collect()))
        }
    }
}

async fn run_component(
    store: &mut Store<P2State>,
    linker: &wasmtime::component::Linker<P2State>,
    component: &wasmtime::component::Component,
) -> GuestResult {
    use wasmtime_wasi::p2::bindings::Command;
    let exports_run = component
        .component_type()
        .exports(store.engine())
        .any(|(name, _)| name.starts_with("wasi:cli/run@"));
    if !exports_run {
        return Err(Error::invalid(
            "component does not export `wasi:cli/run` (it is not a WASI command)",
        )
        .into());
    }
    let command = Command::instantiate_async(&mut *store, component, linker)
        .await
        .map_err(instantiate_error)?;
    match command
        .wasi_cli_run()
        .call_run(&mut *store)
        .await
        .map_err(GuestError::Wasm)?
    {
        Ok(()) => Ok((0, Vec::new())),
        Err(()) => Ok((1, Vec::new())),
    }
}

/// Instantiation errors are the artifact's fault unless a limit or trap
/// (e.g. in a start function) caused them.
fn instantiate_error(e: wasmtime::Error) -> GuestError {
    if e.downcast_ref::<Trap>().is_some() || has_memory_limit_hit(&e) {
        return GuestError::Wasm(e);
    }
    GuestError::Host(Error::invalid(format!(
        "cannot instantiate: {}",
        root_message(&e)
    )))
}

fn has_memory_limit_hit(e: &wasmtime::Error) -> bool {
    e.chain()
        .any(|c| c.downcast_ref::<MemoryLimitHit>().is_some())
}

fn finish<T>(
    store: Store<T>,
    result: GuestResult,
    limits: &Limits,
    limiter: fn(&T) -> &MemoryLimiter,
) -> Result<RunOutcome> {
    let fuel_consumed = match (limits.fuel, store.get_fuel()) {
        (Some(total), Ok(left)) => Some(total - left),
        _ => None,
    };
    let l = limiter(store.data());
    let peak_memory = l.peak();
    let (exit_code, results) = match result {
        Ok(r) => r,
        Err(GuestError::Host(e)) => return Err(e),
        Err(GuestError::Wasm(e)) => {
            if let Some(exit) = e.downcast_ref::<I32Exit>() {
                (exit.0, Vec::new())
            } else {
                return Err(classify(e, limits, l.hit()));
            }
        }
    };
    Ok(RunOutcome {
        exit_code,
        results,
        fuel_consumed,
        peak_memory,
    })
}

/// Turns an error from running guest code into the platform's error: memory
/// limit, fuel, timeout, or a trap with its kind and backtrace.
pub fn classify(e: wasmtime::Error, limits: &Limits, memory_hit: bool) -> Error {
    if memory_hit || has_memory_limit_hit(&e) {
        return Error::MemoryLimit(limits.max_memory.unwrap_or(0));
    }
    let backtrace = e
        .downcast_ref::<wasmtime::WasmBacktrace>()
        .map(|bt| {
            bt.frames()
                .iter()
                .map(|f| Frame {
                    module: f.module().name().map(str::to_string),
                    func_index: f.func_index(),
                    func_name: f
                        .func_name()
                        .map(|n| format!("{:#}", rustc_demangle::demangle(n))),
                    offset: f.module_offset(),
                    location: f.symbols().first().and_then(|s| {
                        let file = s.file()?;
                        Some(match (s.line(), s.column()) {
                            (Some(l), Some(c)) => format!("{file}:{l}:{c}"),
                            (Some(l), None) => format!("{file}:{l}"),
                            _ => file.to_string(),
                        })
                    }),
                })
                .collect()
        })
        .unwrap_or_default();
    match e.downcast_ref::<Trap>() {
        Some(Trap::OutOfFuel) => Error::FuelExhausted(limits.fuel.unwrap_or(0)),
        Some(Trap::Interrupt) => Error::Timeout(limits.timeout.unwrap_or_default()),
        Some(trap) => Error::Trap {
            kind: trap_kind(*trap),
            backtrace,
        },
        None => Error::Trap {
            kind: root_message(&e),
            backtrace,
        },
    }
}

/// A short, stable name for each trap kind.
pub fn trap_kind(trap: Trap) -> String {
    match trap {
        Trap::StackOverflow => "stack overflow",
        Trap::MemoryOutOfBounds => "out-of-bounds memory access",
        Trap::HeapMisaligned => "misaligned atomic access",
        Trap::TableOutOfBounds => "out-of-bounds table access",
        Trap::IndirectCallToNull => "indirect call to a null table entry",
        Trap::BadSignature => "indirect call type mismatch",
        Trap::IntegerOverflow => "integer overflow",
        Trap::IntegerDivisionByZero => "integer divide by zero",
        Trap::BadConversionToInteger => "invalid conversion to integer",
        Trap::UnreachableCodeReached => "unreachable instruction executed",
        Trap::Interrupt => "interrupted",
        Trap::OutOfFuel => "out of fuel",
        other => {
            return other
                .to_string()
                .trim_start_matches("wasm trap: ")
                .to_string()
        }
    }
    .to_string()
}

fn parse_val(ty: &ValType, arg: &str) -> Result<Val> {
    let bad = || {
        Error::usage(format!(
            "invalid argument `{arg}` for a parameter of type {ty}"
        ))
    };
    Ok(match ty {
        ValType::I32 => Val::I32(
            arg.parse::<i32>()
                .or_else(|_| arg.parse::<u32>().map(|u| u as i32))
                .map_err(|_| bad())?,
        ),
        ValType::I64 => Val::I64(
            arg.parse::<i64>()
                .or_else(|_| arg.parse::<u64>().map(|u| u as i64))
                .map_err(|_| bad())?,
        ),
        ValType::F32 => Val::F32(arg.parse::<f32>().map_err(|_| bad())?.to_bits()),
        ValType::F64 => Val::F64(arg.parse::<f64>().map_err(|_| bad())?.to_bits()),
        other => {
            return Err(Error::usage(format!(
                "--invoke cannot pass a parameter of type {other}"
            )))
        }
    })
}

fn format_val(v: &Val) -> String {
    match v {
        Val::I32(i) => i.to_string(),
        Val::I64(i) => i.to_string(),
        Val::F32(f) => f32::from_bits(*f).to_string(),
        Val::F64(f) => f64::from_bits(*f).to_string(),
        Val::V128(v) => format!("{:#034x}", v.as_u128()),
        other => format!("{other:?}"),
    }
}

/// Builds a WASI context that grants exactly `caps`.
pub fn wasi_builder(caps: &Capabilities, program_name: &str) -> Result<WasiCtxBuilder> {
    let mut b = WasiCtxBuilder::new();
    b.arg(program_name);
    b.args(&caps.args);
    b.envs(&caps.resolved_env());
    if caps.inherit_stdio {
        b.inherit_stdio();
    }
    for d in &caps.dirs {
        let perms = if d.read_only {
            wasmtime_wasi::FsPerms::ReadOnly
        } else {
            wasmtime_wasi::FsPerms::ReadWrite
        };
        b.preopened_dir(&d.host, &d.guest, perms).map_err(|e| {
            Error::usage(format!("cannot open directory {}: {e}", d.host.display()))
        })?;
    }
    if !caps.allow_net.is_empty() {
        let patterns = Arc::new(caps.allow_net.clone());
        b.allow_tcp(true);
        b.allow_udp(true);
        b.allow_ip_name_lookup(caps.allow_net.iter().any(|p| p.needs_name_lookup()));
        b.socket_addr_check(move |addr, use_| {
            let patterns = patterns.clone();
            Box::pin(async move { net_check(&patterns, addr, use_) })
        });
    }
    Ok(b)
}

/// Outbound only: connects and sends to allowlisted addresses; binds only
/// the implicit wildcard bind that an outbound socket needs; no listening.
fn net_check(
    patterns: &[crate::caps::NetPattern],
    addr: std::net::SocketAddr,
    use_: wasmtime_wasi::sockets::SocketAddrUse,
) -> bool {
    use wasmtime_wasi::sockets::SocketAddrUse as U;
    let allowed = match use_ {
        U::TcpConnect | U::UdpSend | U::UdpReceive => patterns.iter().any(|p| p.matches(&addr)),
        U::TcpBind | U::UdpBind => addr.ip().is_unspecified() && addr.port() == 0,
        _ => false,
    };
    if !allowed {
        tracing::warn!(%addr, ?use_, "network access denied: not on the allowlist");
    }
    allowed
}
