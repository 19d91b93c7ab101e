//! Running a guest: admission, a store with limits, a WASI context built
//! from the grant, and the outcome classified into the one error type.

use crate::admission::{Admission, AdmissionContext, AdmissionRequest, Grant};
use crate::caps::Capabilities;
use crate::error::{Error, Frame, Result};
use crate::limits::{Limits, MemoryLimitHit, MemoryLimiter};
use crate::runtime::{root_message, Compiled, Loaded, Runtime};
use std::sync::mpsc;
use std::sync::Arc;
use std::time::{Duration, Instant};
use wasmtime::{Engine, Store, Trap, UpdateDeadline, Val, ValType};
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

/// How often the engine's epoch is bumped during the grace period, so that a
/// store created after the first bump still sees one.
const TIMEOUT_TICK: Duration = Duration::from_millis(10);

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
        self.admit_also(loaded, caps, limits, context, None)
    }

    /// Puts the request through the admission hook, then through `also`
    /// (a policy named by a manifest): both must allow, and the second
    /// judges what the first granted.
    pub fn admit_also(
        &self,
        loaded: &Loaded,
        caps: &Capabilities,
        limits: &Limits,
        context: &AdmissionContext,
        also: Option<&dyn Admission>,
    ) -> Result<Grant> {
        let request = AdmissionRequest {
            artifact: &loaded.facts,
            requested: caps,
            limits,
            context,
        };
        let denied = |d: crate::admission::Denied| Error::Denied { reasons: d.reasons };
        let mut grant = self.admission.admit(&request).map_err(denied)?;
        if let Some(also) = also {
            grant = also
                .admit(&AdmissionRequest {
                    artifact: &loaded.facts,
                    requested: &grant.capabilities,
                    limits: &grant.limits,
                    context,
                })
                .map_err(denied)?;
        }
        tracing::debug!(?grant, "admission granted");
        Ok(grant)
    }

    /// Admits and runs a loaded artifact to completion. Directories are
    /// resolved to absolute paths before admission, so the admission judges
    /// exactly what would be opened.
    pub fn run(&self, loaded: &Loaded, mut opts: RunOptions) -> Result<RunOutcome> {
        opts.limits.validate()?;
        opts.capabilities.resolve_dirs()?;
        let mut grant = self.admit(loaded, &opts.capabilities, &opts.limits, &opts.context)?;
        // An admission may add directories of its own: resolve those too.
        grant.capabilities.resolve_dirs()?;
        grant.limits.validate()?;
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
            deadline: None,
        };
        match job.grant.limits.timeout {
            None => job.execute(),
            Some(timeout) => run_with_timeout(job, timeout),
        }
    }
}

/// Runs the guest on a thread of its own and waits for it until the
/// deadline. The guest's store traps at its next epoch check once the
/// deadline has passed (see [`new_store`]); a guest blocked in a host call
/// is given [`TIMEOUT_GRACE`] and then left behind: the caller gets the
/// timeout and may end the process.
fn run_with_timeout(mut job: Job, timeout: Duration) -> Result<RunOutcome> {
    let engine = job.engine.clone();
    // `Limits::validate` keeps the timeout small enough for an `Instant`.
    job.deadline = Instant::now().checked_add(timeout);
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
            // Interrupt WebAssembly code at its next epoch check, and keep
            // bumping the epoch: the guest's store may not have existed yet.
            let give_up = Instant::now() + TIMEOUT_GRACE;
            loop {
                engine.increment_epoch();
                let left = give_up.saturating_duration_since(Instant::now());
                if left.is_zero() {
                    // Still blocked in a host call: report the timeout anyway.
                    return Err(Error::Timeout(timeout));
                }
                match rx.recv_timeout(left.min(TIMEOUT_TICK)) {
                    Ok(r) => return r,
                    Err(mpsc::RecvTimeoutError::Disconnected) => {
                        return Err(Error::host("the guest thread ended without a result"))
                    }
                    Err(mpsc::RecvTimeoutError::Timeout) => {}
                }
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
    /// When the guest must have finished (runs with a timeout).
    deadline: Option<Instant>,
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
    names: Arc<NameLookup>,
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
                let mut store = new_store(&self.engine, state, &limits, self.deadline, |s| {
                    &mut s.limiter
                })?;
                let mut linker = wasmtime::Linker::new(&self.engine);
                wasmtime_wasi::p1::add_to_linker_async(&mut linker, |s: &mut P1State| &mut s.wasi)
                    .map_err(|e| Error::host(format!("cannot link WASI: {e:#}")))?;
                let result = run_module(
                    &mut store,
                    &linker,
                    module,
                    self.invoke.as_ref(),
                    self.started_check(),
                )
                .await;
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
                    names: Arc::new(NameLookup::for_patterns(&self.grant.capabilities.allow_net)),
                };
                let mut store = new_store(&self.engine, state, &limits, self.deadline, |s| {
                    &mut s.limiter
                })?;
                let mut linker = wasmtime::component::Linker::new(&self.engine);
                add_wasi_to_linker(&mut linker, &WasiImports::of(component))
                    .map_err(|e| Error::host(format!("cannot link WASI: {e:#}")))?;
                let result =
                    run_component(&mut store, &linker, component, self.started_check()).await;
                finish(store, result, &limits, |s| &s.limiter)
            }
        }
    }
}

impl Job {
    /// What the runner checks right before it calls the guest's entry point:
    /// setting up the store and instantiating take time of their own, and a
    /// deadline already past must not let the guest start.
    fn started_check(&self) -> StartCheck {
        StartCheck {
            deadline: self.deadline,
            timeout: self.grant.limits.timeout.unwrap_or_default(),
        }
    }
}

#[derive(Clone, Copy)]
struct StartCheck {
    deadline: Option<Instant>,
    timeout: Duration,
}

impl StartCheck {
    fn check(self) -> Result<()> {
        match self.deadline {
            Some(at) if Instant::now() >= at => Err(Error::Timeout(self.timeout)),
            _ => Ok(()),
        }
    }
}

fn new_store<T: Send + 'static>(
    engine: &Engine,
    state: T,
    limits: &Limits,
    deadline: Option<Instant>,
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
    match deadline {
        // With a timeout the runner bumps the engine's epoch from the
        // deadline on; each bump this store sees checks the clock, so bumps
        // from before the store existed (or for another store of the same
        // engine) cannot end or spare it wrongly.
        Some(at) => {
            store.set_epoch_deadline(1);
            store.epoch_deadline_callback(move |_| {
                if Instant::now() >= at {
                    Err(Trap::Interrupt.into())
                } else {
                    Ok(UpdateDeadline::Continue(1))
                }
            });
        }
        None => store.set_epoch_deadline(u64::MAX / 2),
    }
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
    start_check: StartCheck,
) -> GuestResult {
    let instance = linker
        .instantiate_async(&mut *store, module)
        .await
        .map_err(instantiate_error)?;
    start_check.check()?;
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

/// Which WASI releases a component imports from.
#[derive(Debug, Clone, Copy)]
struct WasiImports {
    p2: bool,
    p3: bool,
}

impl WasiImports {
    fn of(component: &wasmtime::component::Component) -> WasiImports {
        let mut found = WasiImports {
            p2: false,
            p3: false,
        };
        for (name, _) in component.component_type().imports(component.engine()) {
            if name.starts_with("wasi:") {
                found.p3 |= name.contains("@0.3");
                found.p2 |= name.contains("@0.2");
            }
        }
        found
    }
}

/// WASI 0.2 and 0.3, each only when the component imports from it (a 0.3
/// guest's standard library may still use 0.2 interfaces; linking a release
/// it does not use would only cost start-up time), with name lookups of
/// either going through the allowlist's names.
fn add_wasi_to_linker(
    linker: &mut wasmtime::component::Linker<P2State>,
    imports: &WasiImports,
) -> wasmtime::Result<()> {
    fn lookup(s: &mut P2State) -> FilteredLookup<'_> {
        let names = s.names.clone();
        FilteredLookup {
            inner: wasmtime_wasi::sockets::WasiSocketsView::sockets(s),
            names,
        }
    }
    if imports.p2 || !imports.p3 {
        wasmtime_wasi::p2::add_to_linker_async(linker)?;
        linker.allow_shadowing(true);
        wasmtime_wasi::p2::bindings::sockets::ip_name_lookup::add_to_linker::<
            P2State,
            FilteredLookupData,
        >(linker, lookup)?;
        linker.allow_shadowing(false);
    }
    if imports.p3 {
        wasmtime_wasi::p3::add_to_linker(linker)?;
        linker.allow_shadowing(true);
        wasmtime_wasi::p3::bindings::sockets::ip_name_lookup::add_to_linker::<
            P2State,
            FilteredLookupData,
        >(linker, lookup)?;
        linker.allow_shadowing(false);
    }
    Ok(())
}

/// Which WASI command world a component exports, from its type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CommandWorld {
    /// `wasi:cli/run@0.2.x`
    P2,
    /// `wasi:cli/run@0.3.x`, run on the concurrent (async) ABI.
    P3,
}

impl CommandWorld {
    /// The WASI command world `component` exports, if any (0.3 first).
    pub fn of(component: &wasmtime::component::Component) -> Option<CommandWorld> {
        let mut found = None;
        for (name, _) in component.component_type().exports(component.engine()) {
            if name.starts_with("wasi:cli/run@0.3") {
                return Some(CommandWorld::P3);
            }
            if name.starts_with("wasi:cli/run@0.2") {
                found = Some(CommandWorld::P2);
            }
        }
        found
    }
}

async fn run_component(
    store: &mut Store<P2State>,
    linker: &wasmtime::component::Linker<P2State>,
    component: &wasmtime::component::Component,
    start_check: StartCheck,
) -> GuestResult {
    let Some(world) = CommandWorld::of(component) else {
        return Err(Error::invalid(
            "component does not export `wasi:cli/run` 0.2 or 0.3 (it is not a WASI command)",
        )
        .into());
    };
    let instance = linker
        .instantiate_async(&mut *store, component)
        .await
        .map_err(instantiate_error)?;
    let result = match world {
        CommandWorld::P2 => {
            let command = wasmtime_wasi::p2::bindings::Command::new(&mut *store, &instance)
                .map_err(instantiate_error)?;
            start_check.check()?;
            command.wasi_cli_run().call_run(&mut *store).await
        }
        CommandWorld::P3 => {
            let command = wasmtime_wasi::p3::bindings::Command::new(&mut *store, &instance)
                .map_err(instantiate_error)?;
            start_check.check()?;
            store
                .run_concurrent(async |store| command.wasi_cli_run().call_run(store).await)
                .await
                .and_then(|r| r)
        }
    };
    match result.map_err(GuestError::Wasm)? {
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
                // Codes from 126 up are the host's (timeout, limits, traps):
                // WASI p1 refuses them in `proc_exit`, and a p2 guest's
                // `exit-with-code` is held to the same range.
                if !(0..126).contains(&exit.0) {
                    return Err(Error::Trap {
                        kind: format!(
                            "exit with invalid exit status {} outside of [0..126) (codes from 126 up are reserved for the host)",
                            exit.0
                        ),
                        backtrace: Vec::new(),
                    });
                }
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
            kind: message_without_backtrace(&e),
            backtrace,
        },
    }
}

/// The messages of an error chain without the guest backtrace that Wasmtime
/// attaches as context (it is shown on its own, frame by frame).
fn message_without_backtrace(e: &wasmtime::Error) -> String {
    let bt = e
        .downcast_ref::<wasmtime::WasmBacktrace>()
        .map(|b| b.to_string());
    e.chain()
        .map(|c| c.to_string())
        .filter(|m| Some(m) != bt.as_ref())
        .collect::<Vec<_>>()
        .join(": ")
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
///
/// Name lookups (`wasi:sockets/ip-name-lookup`) are switched on when a
/// network pattern names a host; the runner's linker then resolves only the
/// names the patterns give (see [`NameLookup`]).
pub fn wasi_builder(caps: &Capabilities, program_name: &str) -> Result<WasiCtxBuilder> {
    caps.check_dirs()?;
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

/// Which host names a guest may look up: the names the network allowlist
/// gives, or any name when it has a `*` host. A lookup of any other name is
/// refused before it reaches a resolver, so the guest cannot use DNS queries
/// as a channel out of the sandbox. IP address literals need no resolver
/// and are always answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NameLookup {
    Any,
    Only(Vec<String>),
}

impl NameLookup {
    pub fn for_patterns(patterns: &[crate::caps::NetPattern]) -> NameLookup {
        use crate::caps::HostPattern;
        let mut names = Vec::new();
        for p in patterns {
            match &p.host {
                HostPattern::Any => return NameLookup::Any,
                HostPattern::Name(n) => names.push(n.to_ascii_lowercase()),
                HostPattern::Cidr(..) => {}
            }
        }
        NameLookup::Only(names)
    }

    /// Whether `name`, as the guest asked for it, may be resolved.
    pub fn allows(&self, name: &str) -> bool {
        let literal = name.trim_start_matches('[').trim_end_matches(']');
        if literal.parse::<std::net::IpAddr>().is_ok() {
            return true;
        }
        match self {
            NameLookup::Any => true,
            NameLookup::Only(names) => {
                let name = name.strip_suffix('.').unwrap_or(name);
                names.iter().any(|n| n.eq_ignore_ascii_case(name))
            }
        }
    }
}

/// `wasi:sockets/ip-name-lookup` for the runner: WASI's own implementation,
/// behind the [`NameLookup`] filter.
struct FilteredLookup<'a> {
    inner: wasmtime_wasi::sockets::WasiSocketsCtxView<'a>,
    names: Arc<NameLookup>,
}

struct FilteredLookupData;

impl wasmtime::component::HasData for FilteredLookupData {
    type Data<'a> = FilteredLookup<'a>;
}

mod lookup {
    use super::FilteredLookup;
    use wasmtime::component::Resource;
    use wasmtime_wasi::p2::bindings::sockets::ip_name_lookup::{
        Host, HostResolveAddressStream, ResolveAddressStream,
    };
    use wasmtime_wasi::p2::bindings::sockets::network::{self, ErrorCode, IpAddress, Network};
    use wasmtime_wasi::p2::{DynPollable, SocketError};

    impl Host for FilteredLookup<'_> {
        fn resolve_addresses(
            &mut self,
            network: Resource<Network>,
            name: String,
        ) -> Result<Resource<ResolveAddressStream>, SocketError> {
            if !self.names.allows(&name) {
                tracing::warn!(
                    name = %name,
                    "name lookup denied: the name is not on the allowlist"
                );
                return Err(ErrorCode::AccessDenied.into());
            }
            self.inner.resolve_addresses(network, name)
        }
    }

    // What ip-name-lookup needs of the network interface: its error codes.
    impl network::Host for FilteredLookup<'_> {
        fn convert_error_code(&mut self, error: SocketError) -> wasmtime::Result<ErrorCode> {
            network::Host::convert_error_code(&mut self.inner, error)
        }

        fn network_error_code(
            &mut self,
            err: Resource<network::Error>,
        ) -> wasmtime::Result<Option<ErrorCode>> {
            network::Host::network_error_code(&mut self.inner, err)
        }
    }

    impl network::HostNetwork for FilteredLookup<'_> {
        fn drop(&mut self, this: Resource<Network>) -> wasmtime::Result<()> {
            network::HostNetwork::drop(&mut self.inner, this)
        }
    }

    impl HostResolveAddressStream for FilteredLookup<'_> {
        fn resolve_next_address(
            &mut self,
            stream: Resource<ResolveAddressStream>,
        ) -> Result<Option<IpAddress>, SocketError> {
            self.inner.resolve_next_address(stream)
        }

        fn subscribe(
            &mut self,
            stream: Resource<ResolveAddressStream>,
        ) -> wasmtime::Result<Resource<DynPollable>> {
            HostResolveAddressStream::subscribe(&mut self.inner, stream)
        }

        async fn drop(&mut self, stream: Resource<ResolveAddressStream>) -> wasmtime::Result<()> {
            HostResolveAddressStream::drop(&mut self.inner, stream).await
        }
    }

    /// WASI 0.3's lookups: the same check, then WASI's own resolver.
    mod p3 {
        use super::super::{FilteredLookupData, P2State};
        use super::FilteredLookup;
        use wasmtime::component::Accessor;
        use wasmtime_wasi::p3::bindings::sockets::ip_name_lookup::{
            ErrorCode, Host, HostWithStore,
        };
        use wasmtime_wasi::p3::bindings::sockets::types::IpAddress;
        use wasmtime_wasi::sockets::{WasiSockets, WasiSocketsView};

        impl Host for FilteredLookup<'_> {}

        impl HostWithStore<P2State> for FilteredLookupData {
            async fn resolve_addresses(
                store: &Accessor<P2State, Self>,
                name: String,
            ) -> wasmtime::Result<Result<Vec<IpAddress>, ErrorCode>> {
                if !store.with(|mut view| view.get().names.allows(&name)) {
                    return Ok(Err(ErrorCode::AccessDenied));
                }
                let wasi = store.with_getter::<WasiSockets>(|s: &mut P2State| s.sockets());
                <WasiSockets as HostWithStore<P2State>>::resolve_addresses(&wasi, name).await
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn name_lookups_follow_the_allowlist() {
        let pats = |ps: &[&str]| -> Vec<crate::caps::NetPattern> {
            ps.iter().map(|p| p.parse().unwrap()).collect()
        };
        let only = NameLookup::for_patterns(&pats(&["10.0.0.0/8:*", "Api.Internal:443"]));
        assert_eq!(only, NameLookup::Only(vec!["api.internal".into()]));
        assert!(only.allows("api.internal"));
        assert!(only.allows("API.internal."));
        assert!(!only.allows("other.internal"));
        assert!(!only.allows("api.internal.evil"));
        assert!(!only.allows("x.api.internal"));
        assert!(only.allows("127.0.0.1"));
        assert!(only.allows("::1"));
        assert!(only.allows("[::1]"));
        let any = NameLookup::for_patterns(&pats(&["api.internal:443", "*:80"]));
        assert_eq!(any, NameLookup::Any);
        assert!(any.allows("anything.example"));
        assert!(!NameLookup::for_patterns(&[]).allows("localhost"));
    }
}
