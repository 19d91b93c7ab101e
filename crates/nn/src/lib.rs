//! wasi-nn for Wasmlayer guests, as a host [`Extension`]: the witx ABI
//! (`wasi_ephemeral_nn`) for core modules and `wasi:nn` for components,
//! from `wasmtime-wasi-nn`, over an ONNX backend of our own on ONNX
//! Runtime (see [`backend`]).
//!
//! Deny by default: a guest loads only the models its grant names
//! (`Capabilities::nn_graphs`, `Capabilities::nn_dir`; see [`registry`]),
//! each no larger than its memory limit. Every store's inferences, their
//! time and the models' bytes are counted in a [`Meter`].

pub mod backend;
pub mod pack;
pub mod registry;
pub mod runtime_lib;

use backend::{Fallback, Loader, OnnxBackend};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;
use wasmlayer_core::host::{ComponentState, Extension, Imports, ModuleState, Setup};
use wasmlayer_core::{Grant, Result};
use wasmtime::component::Linker as ComponentLinker;
use wasmtime::Linker;

/// Counts of inference work: across the stores of one [`WasiNn`], or of
/// one store (see [`NnState::meter`]).
#[derive(Debug, Default)]
pub struct Meter {
    inferences: AtomicU64,
    infer_nanos: AtomicU64,
    models: AtomicU64,
    model_bytes: AtomicU64,
    load_nanos: AtomicU64,
    parent: Option<Arc<Meter>>,
}

/// What a [`Meter`] counted.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Metered {
    /// `compute` calls that ran.
    pub inferences: u64,
    /// Their time, in ONNX Runtime.
    pub inference_time: Duration,
    /// Graphs the guest loaded (ONNX Runtime may have loaded the model for
    /// an earlier store of the same extension: see [`backend::Sessions`]).
    pub models: u64,
    /// The bytes of those graphs' models (the model memory the guest uses).
    pub model_bytes: u64,
    /// Time ONNX Runtime spent loading models (zero for shared sessions).
    pub load_time: Duration,
}

impl Meter {
    /// A meter whose counts also go to `parent`.
    pub fn child(parent: &Arc<Meter>) -> Meter {
        Meter {
            parent: Some(parent.clone()),
            ..Default::default()
        }
    }

    fn inferred(&self, took: Duration) {
        self.inferences.fetch_add(1, Ordering::Relaxed);
        self.infer_nanos
            .fetch_add(took.as_nanos() as u64, Ordering::Relaxed);
        if let Some(p) = &self.parent {
            p.inferred(took);
        }
    }

    fn loaded(&self, bytes: u64, took: Duration) {
        self.models.fetch_add(1, Ordering::Relaxed);
        self.model_bytes.fetch_add(bytes, Ordering::Relaxed);
        self.load_nanos
            .fetch_add(took.as_nanos() as u64, Ordering::Relaxed);
        if let Some(p) = &self.parent {
            p.loaded(bytes, took);
        }
    }

    pub fn read(&self) -> Metered {
        Metered {
            inferences: self.inferences.load(Ordering::Relaxed),
            inference_time: Duration::from_nanos(self.infer_nanos.load(Ordering::Relaxed)),
            models: self.models.load(Ordering::Relaxed),
            model_bytes: self.model_bytes.load(Ordering::Relaxed),
            load_time: Duration::from_nanos(self.load_nanos.load(Ordering::Relaxed)),
        }
    }
}

/// The wasi-nn extension; add it to a host (`RuntimeBuilder::extension`).
#[derive(Debug, Clone, Default)]
pub struct WasiNn {
    /// What to do with a `gpu` or `tpu` target the host cannot serve.
    pub fallback: Fallback,
    meter: Arc<Meter>,
    /// ONNX Runtime sessions, shared by this extension's stores.
    sessions: Arc<backend::Sessions>,
}

impl WasiNn {
    pub fn new(fallback: Fallback) -> WasiNn {
        WasiNn {
            fallback,
            ..Default::default()
        }
    }

    /// Everything this extension's stores counted.
    pub fn meter(&self) -> &Arc<Meter> {
        &self.meter
    }
}

/// The wasi-nn state of one store.
pub struct NnState {
    witx: wasmtime_wasi_nn::witx::WasiNnCtx,
    wit: wasmtime_wasi_nn::wit::WasiNnCtx,
    meter: Arc<Meter>,
}

impl NnState {
    /// What this store counted.
    pub fn meter(&self) -> Metered {
        self.meter.read()
    }
}

fn state(s: &mut ModuleState) -> &mut wasmtime_wasi_nn::witx::WasiNnCtx {
    &mut s
        .extension::<NnState>()
        .expect("a store made by a host with the wasi-nn extension has its state")
        .witx
}

fn view(s: &mut ComponentState) -> wasmtime_wasi_nn::wit::WasiNnView<'_> {
    let (state, table) = s
        .extension_and_table::<NnState>()
        .expect("a store made by a host with the wasi-nn extension has its state");
    wasmtime_wasi_nn::wit::WasiNnView::new(table, &mut state.wit)
}

impl Extension for WasiNn {
    fn name(&self) -> &'static str {
        "wasi-nn"
    }

    fn prepare(&self, setup: &mut Setup<'_>) -> Result<()> {
        let caps = &setup.grant.capabilities;
        let models = registry::granted(&caps.nn_graphs, caps.nn_dir.as_deref());
        if !models.is_empty() {
            // A guest granted a model needs ONNX Runtime: say so before it
            // runs, with where the library was looked for.
            runtime_lib::ensure().map_err(wasmlayer_core::Error::usage)?;
            for (name, path) in &caps.nn_graphs {
                if !path.is_file() {
                    return Err(wasmlayer_core::Error::usage(format!(
                        "--nn-graph {name}={}: no such file",
                        path.display()
                    )));
                }
            }
            if let Some(dir) = &caps.nn_dir {
                if !dir.is_dir() {
                    return Err(wasmlayer_core::Error::usage(format!(
                        "--nn-dir {}: no such directory",
                        dir.display()
                    )));
                }
            }
        }
        let meter = Arc::new(Meter::child(&self.meter));
        let backend = Arc::new(OnnxBackend {
            fallback: self.fallback,
            meter: meter.clone(),
            max_model: setup.grant.limits.max_memory,
            granted: models.clone(),
            granted_digests: Default::default(),
            sessions: self.sessions.clone(),
        });
        // One backend and registry for each ABI's context, over the same
        // backend state.
        let backends = || [wasmtime_wasi_nn::Backend::from(Loader(backend.clone()))];
        let registry =
            || wasmtime_wasi_nn::Registry::from(registry::Registry::new(backend.clone(), &models));
        let witx = wasmtime_wasi_nn::witx::WasiNnCtx::new(backends(), registry());
        let wit = wasmtime_wasi_nn::wit::WasiNnCtx::new(backends(), registry());
        setup.insert(NnState { witx, wit, meter });
        Ok(())
    }

    fn before_lockdown(&self, grant: &Grant) -> Result<Vec<std::path::PathBuf>> {
        let caps = &grant.capabilities;
        if registry::granted(&caps.nn_graphs, caps.nn_dir.as_deref()).is_empty() {
            return Ok(Vec::new());
        }
        // ONNX Runtime is loaded now; it may still open its providers,
        // which sit beside it.
        let lib = runtime_lib::ensure().map_err(wasmlayer_core::Error::usage)?;
        // ONNX Runtime sizes its thread pools from the CPU topology.
        let mut paths: Vec<std::path::PathBuf> =
            ["/sys/devices/system/cpu", "/proc/cpuinfo", "/proc/self"]
                .iter()
                .map(Into::into)
                .collect();
        paths.extend(lib.path.parent().map(|d| d.to_path_buf()));
        Ok(paths)
    }

    fn link_module(&self, linker: &mut Linker<ModuleState>) -> wasmtime::Result<()> {
        wasmtime_wasi_nn::witx::add_to_linker(linker, state)
    }

    fn link_component(
        &self,
        linker: &mut ComponentLinker<ComponentState>,
        imports: &Imports,
    ) -> wasmtime::Result<()> {
        if imports.names().any(|n| n.starts_with("wasi:nn/")) {
            wasmtime_wasi_nn::wit::add_to_linker(linker, view)?;
        }
        Ok(())
    }
}
