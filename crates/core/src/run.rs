//! Running a guest: admission, a store with limits and a WASI context built
//! from the grant (by [`crate::host::Host`]), and the outcome classified
//! into the one error type.

use crate::admission::{Admission, AdmissionContext, AdmissionRequest, Grant};
use crate::caps::Capabilities;
use crate::error::{Error, Frame, Result};
use crate::host::{ComponentState, GuestState, Host, Interrupt, ModuleState, Stdio, StoreOptions};
use crate::limits::{Limits, MemoryLimitHit};
use crate::runtime::{root_message, Compiled, Loaded, Runtime};
use std::sync::mpsc;
use std::time::{Duration, Instant};
use wasmtime::{Store, Trap, Val, ValType};
use wasmtime_wasi::I32Exit;

/// Calls an exported function of a core module instead of `_start`.
#[derive(Debug, Clone)]
pub struct Invoke {
    pub name: String,
    pub args: Vec<String>,
}

/// What to run a loaded artifact with.
#[derive(Debug, Default)]
pub struct RunOptions {
    /// Requested capabilities (before admission).
    pub capabilities: Capabilities,
    /// Requested limits (before admission).
    pub limits: Limits,
    pub invoke: Option<Invoke>,
    /// `argv[0]` as the guest sees it.
    pub program_name: String,
    pub context: AdmissionContext,
    /// The guest's stdin, stdout and stderr: inherited by default (when
    /// the grant has `inherit_stdio`), or files, pipes and FIFOs.
    pub stdio: Stdio,
    /// Lets another thread stop the guest ([`Interrupt::stop`]): the run
    /// then ends with [`Error::Stopped`].
    pub interrupt: Option<Interrupt>,
    /// Whether the host confines itself around the guest before it runs
    /// ([`crate::sandbox`]), and how much of itself.
    pub host_sandbox: HostSandbox,
}

/// How much of the host [`RunOptions::host_sandbox`] confines.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum HostSandbox {
    /// Nothing.
    #[default]
    Off,
    /// The whole process: for a process that runs this one guest and
    /// nothing else afterwards, such as `wasmlayer run`.
    Process,
    /// The thread that runs the guest and the threads it starts: for a
    /// process that goes on with other work, such as a containerd shim
    /// whose guests each have a thread. With [`Runtime::run_async`], the
    /// guest's future must be polled on that thread only (a current-thread
    /// Tokio runtime of its own).
    Thread,
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
/// runner gives up on it; loading a guest gets its timeout plus this too,
/// so that even the shortest timeout leaves room for a cache hit.
pub const TIMEOUT_GRACE: Duration = Duration::from_millis(250);

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

    /// Admits and runs a loaded artifact to completion, on a thread of its
    /// own when there is a timeout (a guest blocked in a host call past it
    /// is left behind: the caller gets the timeout and may end the
    /// process). Directories are resolved to absolute paths before
    /// admission, so the admission judges exactly what would be opened.
    pub fn run(&self, loaded: &Loaded, opts: RunOptions) -> Result<RunOutcome> {
        let sandbox = opts.host_sandbox;
        let job = self.job(loaded, opts)?;
        // The guest's thread is this one or starts from it.
        self.lockdown(&job, sandbox)?;
        match job.grant.limits.timeout {
            None => job.execute(),
            Some(timeout) => run_with_timeout(job, timeout),
        }
    }

    /// Like [`Runtime::run`], on the caller's Tokio runtime (which needs
    /// its time driver): for hosts that already run one, such as a
    /// containerd shim. File I/O goes to Tokio's blocking pool. A guest
    /// past its timeout is interrupted at its next epoch check, or dropped
    /// in the host call it waits in.
    pub async fn run_async(&self, loaded: &Loaded, opts: RunOptions) -> Result<RunOutcome> {
        let sandbox = opts.host_sandbox;
        let mut job = self.job(loaded, opts)?;
        self.lockdown(&job, sandbox)?;
        match job.grant.limits.timeout {
            None => job.execute_async(false).await,
            Some(timeout) => {
                job.deadline = Instant::now().checked_add(timeout);
                tokio::time::timeout(timeout + TIMEOUT_GRACE, job.execute_async(false))
                    .await
                    .unwrap_or(Err(Error::Timeout(timeout)))
            }
        }
    }

    /// Confines the host as `sandbox` says, after admission (the plan is
    /// the grant) and before the guest.
    fn lockdown(&self, job: &Job, sandbox: HostSandbox) -> Result<()> {
        if sandbox != HostSandbox::Off {
            let extra = self.host.before_lockdown(&job.grant)?;
            let plan =
                crate::sandbox::Plan::for_grant(&job.grant, self.cache().map(|c| c.dir()), extra);
            let report = match sandbox {
                HostSandbox::Thread => crate::sandbox::confine_thread(&plan),
                _ => crate::sandbox::confine(&plan),
            };
            tracing::info!("host sandbox: {report}");
        }
        match &job.stdio.stderr {
            crate::host::Stream::File(f) => crate::sandbox::probe(&mut &*f),
            _ => crate::sandbox::probe(&mut std::io::stderr()),
        }
        Ok(())
    }

    /// Checks, admits and prepares a run.
    fn job(&self, loaded: &Loaded, mut opts: RunOptions) -> Result<Job> {
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
        Ok(Job {
            host: self.host.clone(),
            compiled: loaded.compiled.clone(),
            grant,
            invoke: opts.invoke,
            program_name: opts.program_name,
            stdio: opts.stdio,
            deadline: None,
            interrupt: opts.interrupt,
        })
    }
}

/// Runs the guest on a thread of its own and waits for it until the
/// deadline. The guest's store traps at its first epoch tick past the
/// deadline (see [`StoreOptions::deadline`]); a guest blocked in a host
/// call is given [`TIMEOUT_GRACE`] and then left behind: the caller gets
/// the timeout and may end the process.
fn run_with_timeout(mut job: Job, timeout: Duration) -> Result<RunOutcome> {
    // `Limits::validate` keeps the timeout small enough for an `Instant`.
    job.deadline = Instant::now().checked_add(timeout);
    on_thread_within(
        "guest",
        Some(GUEST_THREAD_STACK),
        timeout + TIMEOUT_GRACE,
        move || job.execute(),
    )?
    // Still blocked in a host call: report the timeout anyway.
    .unwrap_or(Err(Error::Timeout(timeout)))
}

/// Runs `work` on a thread of its own named `name` (with `stack` bytes of
/// stack when given) and waits up to `wait` for its result: None when it
/// has not finished by then. A thread still working is left behind, for
/// the caller to report and end the process.
pub fn on_thread_within<T: Send + 'static>(
    name: &str,
    stack: Option<usize>,
    wait: Duration,
    work: impl FnOnce() -> T + Send + 'static,
) -> Result<Option<T>> {
    let (tx, rx) = mpsc::channel();
    let mut thread = std::thread::Builder::new().name(name.into());
    if let Some(bytes) = stack {
        thread = thread.stack_size(bytes);
    }
    thread
        .spawn(move || {
            let _ = tx.send(work());
        })
        .map_err(|e| Error::host(format!("cannot start the {name} thread: {e}")))?;
    match rx.recv_timeout(wait) {
        Ok(r) => Ok(Some(r)),
        Err(mpsc::RecvTimeoutError::Timeout) => Ok(None),
        Err(mpsc::RecvTimeoutError::Disconnected) => Err(Error::host(format!(
            "the {name} thread ended without a result"
        ))),
    }
}

struct Job {
    host: Host,
    compiled: Compiled,
    grant: Grant,
    invoke: Option<Invoke>,
    program_name: String,
    stdio: Stdio,
    /// When the guest must have finished (runs with a timeout).
    deadline: Option<Instant>,
    interrupt: Option<Interrupt>,
}

impl Job {
    /// Runs the guest on a current-thread Tokio runtime of its own: WASI's
    /// host calls are async, and a multi-threaded runtime would start worker
    /// threads that a one-shot command never needs. One guest per thread
    /// here: blocking file I/O in place is cheaper than handing it to a
    /// thread pool.
    fn execute(self) -> Result<RunOutcome> {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_io()
            .enable_time()
            .build()
            .map_err(|e| Error::host(format!("cannot start the I/O runtime: {e}")))?;
        rt.block_on(self.execute_async(true))
    }

    async fn execute_async(self, blocking: bool) -> Result<RunOutcome> {
        let limits = self.grant.limits.clone();
        let start_check = self.started_check();
        let Job {
            host,
            compiled,
            grant,
            invoke,
            program_name,
            stdio,
            deadline,
            interrupt,
        } = self;
        let stopped = interrupt.clone();
        let opts = StoreOptions {
            program_name,
            stdio,
            deadline,
            interrupt,
            fuel_yield_interval: None,
            blocking_current_thread: blocking,
        };
        match &compiled {
            Compiled::Module(module) => {
                let mut store = host.module_store(module.engine(), &grant, opts)?;
                let linker = host.module_linker(module.engine())?;
                let result =
                    run_module(&mut store, &linker, module, invoke.as_ref(), start_check).await;
                finish(store, result, &limits, stopped.as_ref())
            }
            Compiled::Component(component) => {
                if invoke.is_some() {
                    return Err(Error::usage(
                        "--invoke calls exports of core modules; this artifact is a component",
                    ));
                }
                let mut store = host.component_store(component.engine(), &grant, opts)?;
                let linker = host.component_linker(component)?;
                let result = run_component(&mut store, &linker, component, start_check).await;
                finish(store, result, &limits, stopped.as_ref())
            }
        }
    }

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
    store: &mut Store<ModuleState>,
    linker: &wasmtime::Linker<ModuleState>,
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
    store: &mut Store<ComponentState>,
    linker: &wasmtime::component::Linker<ComponentState>,
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
    let result =
        match world {
            CommandWorld::P2 => {
                let command = wasmtime_wasi::p2::bindings::Command::new(&mut *store, &instance)
                    .map_err(instantiate_error)?;
                start_check.check()?;
                command.wasi_cli_run().call_run(&mut *store).await
            }
            #[cfg(not(feature = "p3"))]
            CommandWorld::P3 => return Err(Error::invalid(
                "a WASI 0.3 component, and this wasmlayer is built without WASI 0.3 (feature p3)",
            )
            .into()),
            #[cfg(feature = "p3")]
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
    // Memories and tables are made before any guest code runs: a refusal
    // then means the limit is below what the module declares.
    if let Some(hit) = e.chain().find_map(|c| c.downcast_ref::<MemoryLimitHit>()) {
        return GuestError::Host(Error::MemoryBelowInitial {
            needed: hit.wanted,
            limit: hit.limit,
        });
    }
    if e.downcast_ref::<Trap>().is_some() {
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

fn finish<W>(
    store: Store<GuestState<W>>,
    result: GuestResult,
    limits: &Limits,
    interrupt: Option<&Interrupt>,
) -> Result<RunOutcome> {
    let fuel_consumed = match (limits.fuel, store.get_fuel()) {
        (Some(total), Ok(left)) => Some(total - left),
        _ => None,
    };
    let l = store.data().limiter();
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
                let stopped = interrupt.is_some_and(Interrupt::is_stopped);
                return Err(match classify(e, limits, l.hit()) {
                    // The interrupt, not the deadline, ended it.
                    Error::Timeout(_) if stopped => Error::Stopped,
                    e => e,
                });
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

/// A guest function's name as its source language writes it (Rust's
/// mangling undone; the `debug-info` feature), else as the name section has it.
fn demangle(name: &str) -> String {
    #[cfg(feature = "debug-info")]
    return format!("{:#}", rustc_demangle::demangle(name));
    #[cfg(not(feature = "debug-info"))]
    return name.to_string();
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
                    func_name: f.func_name().map(demangle),
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
