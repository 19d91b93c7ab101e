//! One place that makes a guest's store and linker.
//!
//! A [`Host`] is a list of [`Extension`]s: WASI (always first) and whatever
//! a host adds (wasi:http in `serve`; wasi-nn next). From a grant it makes
//! the store: the WASI context built from the capabilities, the resource
//! table, the memory limiter, fuel, the deadline and each extension's
//! state. From an artifact it makes the linker, with each extension's
//! imports. `run`, `serve` and any embedder make their guests this way, so
//! a new host capability is one extension (its own crate) and one
//! `Host::with` (or `RuntimeBuilder::extension`) where it is wired in.

use crate::admission::Grant;
use crate::error::{Error, Result};
use crate::limits::MemoryLimiter;
use crate::wasi::NameLookup;
use std::any::Any;
use std::sync::Arc;
use std::time::Instant;
use wasmtime::component::{Component, Linker as ComponentLinker, ResourceTable};
use wasmtime::{Engine, Linker, Store, Trap, UpdateDeadline};
use wasmtime_wasi::p1::WasiP1Ctx;
use wasmtime_wasi::{WasiCtx, WasiCtxBuilder, WasiCtxView, WasiView};

/// The data of a guest's store: its WASI context, memory limiter, the
/// names its network grant lets it look up, and the state of each
/// extension. `W` is the WASI flavour: [`WasiP1Ctx`] for core modules,
/// [`ComponentWasi`] for components.
pub struct GuestState<W> {
    wasi: W,
    limiter: MemoryLimiter,
    pub(crate) names: Arc<NameLookup>,
    extensions: Vec<Box<dyn Any + Send>>,
}

/// The store data of a core module (WASI preview 1).
pub type ModuleState = GuestState<WasiP1Ctx>;

/// The store data of a component (WASI 0.2 and 0.3).
pub type ComponentState = GuestState<ComponentWasi>;

/// WASI for a component: the context and the resource table every
/// interface's resources live in (those of extensions too).
pub struct ComponentWasi {
    ctx: WasiCtx,
    table: ResourceTable,
}

impl<W> GuestState<W> {
    /// The memory limiter: peak use, and whether the limit was hit.
    pub fn limiter(&self) -> &MemoryLimiter {
        &self.limiter
    }

    /// The state an extension put in with [`Setup::insert`].
    pub fn extension<S: 'static>(&mut self) -> Option<&mut S> {
        self.extensions
            .iter_mut()
            .find_map(|e| e.as_mut().downcast_mut::<S>())
    }
}

impl ModuleState {
    /// The WASI preview 1 context.
    pub fn wasi_p1(&mut self) -> &mut WasiP1Ctx {
        &mut self.wasi
    }
}

impl ComponentState {
    /// An extension's state together with the resource table, for
    /// interfaces whose resources live in the table (wasi:http's do).
    pub fn extension_and_table<S: 'static>(&mut self) -> Option<(&mut S, &mut ResourceTable)> {
        let table = &mut self.wasi.table;
        self.extensions
            .iter_mut()
            .find_map(|e| e.as_mut().downcast_mut::<S>())
            .map(|s| (s, table))
    }
}

impl WasiView for ComponentState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi.ctx,
            table: &mut self.wasi.table,
        }
    }
}

impl WasiView for ModuleState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        self.wasi.ctx()
    }
}

/// A host capability: its per-store state and its imports.
///
/// [`Host`] calls [`Extension::prepare`] for every store it makes (with the
/// grant, so the state reflects exactly what was admitted) and the `link_*`
/// methods for every linker. An extension reaches its state from a host
/// call through [`GuestState::extension`] (or
/// [`ComponentState::extension_and_table`]).
pub trait Extension: Send + Sync + 'static {
    /// Named in errors: "cannot link NAME: ...".
    fn name(&self) -> &'static str;

    /// Puts this extension's state for a new store in place, from the
    /// grant; may also adjust the WASI context the store is built with.
    fn prepare(&self, setup: &mut Setup<'_>) -> Result<()> {
        let _ = setup;
        Ok(())
    }

    /// Before the host sandbox locks the process down
    /// ([`crate::sandbox`]): opens what must be open by then, and returns
    /// the host paths this extension still reads for a guest with `grant`.
    fn before_lockdown(&self, grant: &Grant) -> Result<Vec<std::path::PathBuf>> {
        let _ = grant;
        Ok(Vec::new())
    }

    /// Adds imports for core modules.
    fn link_module(&self, linker: &mut Linker<ModuleState>) -> wasmtime::Result<()> {
        let _ = linker;
        Ok(())
    }

    /// Adds imports for a component; `imports` is what it imports, so an
    /// extension can link only what is used.
    fn link_component(
        &self,
        linker: &mut ComponentLinker<ComponentState>,
        imports: &Imports,
    ) -> wasmtime::Result<()> {
        let _ = (linker, imports);
        Ok(())
    }
}

/// What an extension sees while a store is made.
pub struct Setup<'a> {
    /// What the guest was granted.
    pub grant: &'a Grant,
    /// The WASI context being built from the grant.
    pub wasi: &'a mut WasiCtxBuilder,
    state: Vec<Box<dyn Any + Send>>,
}

impl Setup<'_> {
    /// Adds the extension's state to the store (one value per type).
    pub fn insert<S: Send + 'static>(&mut self, state: S) {
        self.state.push(Box::new(state));
    }
}

/// The imports of a component, by name.
#[derive(Debug, Clone)]
pub struct Imports {
    names: Vec<String>,
}

impl Imports {
    pub fn of(component: &Component) -> Imports {
        Imports {
            names: component
                .component_type()
                .imports(component.engine())
                .map(|(n, _)| n.to_string())
                .collect(),
        }
    }

    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.names.iter().map(String::as_str)
    }

    /// Whether any import's name starts with `prefix` (e.g. `wasi:http/`).
    pub fn any(&self, prefix: &str) -> bool {
        self.names.iter().any(|n| n.starts_with(prefix))
    }

    /// Whether any WASI import is of release `version` (`0.2`, `0.3`).
    pub fn wasi(&self, version: &str) -> bool {
        let at = format!("@{version}");
        self.names
            .iter()
            .any(|n| n.starts_with("wasi:") && n.contains(&at))
    }
}

/// Where one of the guest's standard streams goes.
#[derive(Debug, Default)]
pub enum Stream {
    /// The process's own stream (when the grant has `inherit_stdio`;
    /// otherwise nothing).
    #[default]
    Inherit,
    /// Nothing: reads see end of file, writes are discarded.
    Null,
    /// A file, pipe or FIFO the host opened.
    File(std::fs::File),
    /// The process's stderr (for output streams: `serve` sends a guest's
    /// stdout there too).
    Stderr,
}

/// The guest's standard streams.
#[derive(Debug, Default)]
pub struct Stdio {
    pub stdin: Stream,
    pub stdout: Stream,
    pub stderr: Stream,
}

/// Ends a running guest from another thread: after [`Interrupt::stop`],
/// the guest traps at its next epoch check (the runtime's ticker advances
/// the epoch every 10 ms) and its run ends with [`crate::Error::Stopped`].
/// For hosts that stop guests on request, such as a containerd shim's
/// kill.
#[derive(Debug, Clone, Default)]
pub struct Interrupt(Arc<std::sync::atomic::AtomicBool>);

impl Interrupt {
    pub fn new() -> Interrupt {
        Interrupt::default()
    }

    /// Asks the guest to stop.
    pub fn stop(&self) {
        self.0.store(true, std::sync::atomic::Ordering::SeqCst);
    }

    /// Whether [`Interrupt::stop`] was called.
    pub fn is_stopped(&self) -> bool {
        self.0.load(std::sync::atomic::Ordering::SeqCst)
    }
}

/// How a store is made, beyond the grant.
#[derive(Debug, Default)]
pub struct StoreOptions {
    /// `argv[0]` as the guest sees it.
    pub program_name: String,
    pub stdio: Stdio,
    /// The guest traps with [`Trap::Interrupt`] at its first epoch check
    /// past this instant (the runtime's epoch ticker advances the epoch).
    pub deadline: Option<Instant>,
    /// The guest traps with [`Trap::Interrupt`] at its first epoch check
    /// after this is stopped.
    pub interrupt: Option<Interrupt>,
    /// With fuel metering: yield to other tasks every this many units.
    pub fuel_yield_interval: Option<u64>,
    /// Blocking file I/O in place rather than on a thread pool: for a
    /// thread that runs one guest and nothing else.
    pub blocking_current_thread: bool,
}

/// The extensions every store and linker of a host is made with.
#[derive(Clone)]
pub struct Host {
    extensions: Vec<Arc<dyn Extension>>,
}

impl Default for Host {
    fn default() -> Self {
        Host::new()
    }
}

impl Host {
    /// Every extension's [`Extension::before_lockdown`], in order.
    pub fn before_lockdown(&self, grant: &Grant) -> Result<Vec<std::path::PathBuf>> {
        let mut paths = Vec::new();
        for e in &self.extensions {
            paths.extend(e.before_lockdown(grant)?);
        }
        Ok(paths)
    }
}

impl std::fmt::Debug for Host {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list()
            .entries(self.extensions.iter().map(|e| e.name()))
            .finish()
    }
}

impl Host {
    /// WASI (preview 1, 0.2 and 0.3) alone.
    pub fn new() -> Host {
        Host {
            extensions: vec![Arc::new(crate::wasi::Wasi)],
        }
    }

    /// Adds an extension.
    pub fn with(mut self, extension: impl Extension) -> Host {
        self.extensions.push(Arc::new(extension));
        self
    }

    /// Adds an extension shared with other hosts.
    pub fn with_shared(mut self, extension: Arc<dyn Extension>) -> Host {
        self.extensions.push(extension);
        self
    }

    /// A linker for core modules with every extension's imports.
    pub fn module_linker(&self, engine: &Engine) -> Result<Linker<ModuleState>> {
        let mut linker = Linker::new(engine);
        for e in &self.extensions {
            e.link_module(&mut linker)
                .map_err(|err| link_error(&**e, err))?;
        }
        Ok(linker)
    }

    /// A linker for `component` with every extension's imports.
    pub fn component_linker(
        &self,
        component: &Component,
    ) -> Result<ComponentLinker<ComponentState>> {
        let imports = Imports::of(component);
        let mut linker = ComponentLinker::new(component.engine());
        for e in &self.extensions {
            e.link_component(&mut linker, &imports)
                .map_err(|err| link_error(&**e, err))?;
        }
        Ok(linker)
    }

    /// A store for a core module, with exactly what `grant` grants.
    pub fn module_store(
        &self,
        engine: &Engine,
        grant: &Grant,
        opts: StoreOptions,
    ) -> Result<Store<ModuleState>> {
        self.store(engine, grant, opts, WasiCtxBuilder::build_p1)
    }

    /// A store for a component, with exactly what `grant` grants.
    pub fn component_store(
        &self,
        engine: &Engine,
        grant: &Grant,
        opts: StoreOptions,
    ) -> Result<Store<ComponentState>> {
        self.store(engine, grant, opts, |b| ComponentWasi {
            ctx: b.build(),
            table: ResourceTable::new(),
        })
    }

    fn store<W: Send + 'static>(
        &self,
        engine: &Engine,
        grant: &Grant,
        opts: StoreOptions,
        build: impl FnOnce(&mut WasiCtxBuilder) -> W,
    ) -> Result<Store<GuestState<W>>> {
        let caps = &grant.capabilities;
        let mut wasi = crate::wasi::builder(caps, &opts.program_name)?;
        set_stdio(&mut wasi, opts.stdio, caps.inherit_stdio);
        wasi.allow_blocking_current_thread(opts.blocking_current_thread);
        let mut setup = Setup {
            grant,
            wasi: &mut wasi,
            state: Vec::new(),
        };
        for e in &self.extensions {
            e.prepare(&mut setup)?;
        }
        let extensions = setup.state;
        let data = GuestState {
            wasi: build(&mut wasi),
            limiter: MemoryLimiter::new(&grant.limits),
            names: Arc::new(NameLookup::for_patterns(&caps.allow_net)),
            extensions,
        };
        let mut store = Store::new(engine, data);
        store.limiter(|s| &mut s.limiter as &mut dyn wasmtime::ResourceLimiter);
        let fuel_error = |e: wasmtime::Error| Error::host(format!("cannot meter fuel: {e}"));
        if engine.get_consume_fuel() {
            store
                .set_fuel(grant.limits.fuel.unwrap_or(u64::MAX))
                .map_err(fuel_error)?;
            if let Some(interval) = opts.fuel_yield_interval {
                store
                    .fuel_async_yield_interval(Some(interval))
                    .map_err(fuel_error)?;
            }
        } else if grant.limits.fuel.is_some() {
            return Err(Error::usage(
                "a fuel limit needs a runtime built with fuel metering (EngineOptions::fuel)",
            ));
        }
        match (opts.deadline, opts.interrupt) {
            (None, None) => store.set_epoch_deadline(u64::MAX / 2),
            // Each epoch tick this store sees checks the clock and the
            // interrupt, so ticks before the deadline (or meant for another
            // store) cannot end it early, and the first one after it (or
            // after a stop) ends it.
            (deadline, interrupt) => {
                crate::epoch::ticker().drive(engine);
                store.set_epoch_deadline(1);
                store.epoch_deadline_callback(move |_| {
                    let late = deadline.is_some_and(|at| Instant::now() >= at);
                    if late || interrupt.as_ref().is_some_and(Interrupt::is_stopped) {
                        Err(Trap::Interrupt.into())
                    } else {
                        Ok(UpdateDeadline::Continue(1))
                    }
                });
            }
        }
        Ok(store)
    }
}

fn link_error(e: &dyn Extension, err: wasmtime::Error) -> Error {
    Error::host(format!("cannot link {}: {err:#}", e.name()))
}

/// Points the guest's streams where `stdio` says; inherited streams only
/// when the grant has `inherit_stdio`.
fn set_stdio(b: &mut WasiCtxBuilder, stdio: Stdio, inherit: bool) {
    use wasmtime_wasi::cli::{InputFile, OutputFile};
    match stdio.stdin {
        Stream::Inherit if inherit => {
            b.inherit_stdin();
        }
        Stream::File(f) => {
            b.stdin(InputFile::new(f));
        }
        Stream::Inherit | Stream::Null | Stream::Stderr => {}
    }
    for (stream, is_stdout) in [(stdio.stdout, true), (stdio.stderr, false)] {
        let out: Option<Box<dyn wasmtime_wasi::cli::StdoutStream + Sync>> = match stream {
            Stream::Inherit if inherit && is_stdout => Some(Box::new(wasmtime_wasi::cli::stdout())),
            Stream::Inherit if inherit => Some(Box::new(wasmtime_wasi::cli::stderr())),
            Stream::Stderr => Some(Box::new(wasmtime_wasi::cli::stderr())),
            Stream::File(f) => Some(Box::new(OutputFile::new(f))),
            Stream::Inherit | Stream::Null => None,
        };
        if let Some(out) = out {
            if is_stdout {
                b.stdout(out);
            } else {
                b.stderr(out);
            }
        }
    }
}
