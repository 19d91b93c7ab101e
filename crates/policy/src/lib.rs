//! Rego policies for Wasmlayer.
//!
//! - [`native`]: Rego source evaluated by the `regorus` interpreter.
//! - [`wasm_host`]: a host for policies compiled to WebAssembly with OPA's
//!   Wasm ABI, on Wasmtime.
//! - [`builtins`]: the builtins a Wasm policy asks its host for.
//! - [`document`]: what the first two share (data document, entrypoint
//!   names, default timeout).
//! - [`wasm_build`]: Rego compiled into a self-contained Wasm module that
//!   exports OPA's Wasm ABI.
//! - [`admission`]: capability grants decided by a policy.
//! - [`memory`]: the memory budget of native evaluations (and the
//!   process's global allocator, which keeps it).
//! - [`Policy`]: one of the first two, chosen by file type.

use std::path::PathBuf;

use serde_json::Value as Json;
use wasmlayer_core::{Error, Limits};

pub mod admission;
pub mod builtins;
pub mod compile;
pub mod document;
pub mod memory;
pub mod native;
pub mod wasm_build;
pub mod wasm_host;

pub use native::{NativePolicy, Sources};
pub use wasm_host::{OpaWasmPolicy, WasmPolicySource};

/// A policy loaded from Rego source or from an OPA Wasm module or bundle.
#[derive(Debug)]
pub enum Policy {
    Native(NativePolicy),
    Wasm(Box<OpaWasmPolicy>),
}

impl Policy {
    /// Loads `.rego` files (and directories of them, with `.json` data), or
    /// a single `.wasm` (or `.wat`) module or OPA bundle (`.tar.gz`). `data` is merged
    /// into the data document.
    pub fn load(paths: &[PathBuf], data: Option<Json>) -> Result<Policy, Error> {
        Policy::from_source(&PolicySource::read(paths, data)?)
    }

    /// Builds a policy from what [`PolicySource::read`] read.
    pub fn from_source(source: &PolicySource) -> Result<Policy, Error> {
        match source {
            PolicySource::Wasm {
                source,
                data,
                origin,
            } => {
                let policy =
                    OpaWasmPolicy::new(policy_runtime()?, source, data, &Limits::default())
                        .map_err(|e| match e {
                            Error::Policy(m) => Error::policy(format!("{origin}: {m}")),
                            other => other,
                        })?;
                Ok(Policy::Wasm(Box::new(policy)))
            }
            PolicySource::Rego(sources) => Ok(Policy::Native(NativePolicy::new(sources)?)),
        }
    }

    /// Evaluates `entrypoint` (None: the policy's only package or
    /// entrypoint) and returns OPA's result set.
    pub fn eval(&mut self, entrypoint: Option<&str>, input: Option<&Json>) -> Result<Json, Error> {
        match self {
            Policy::Native(p) => p.eval(&native_entrypoint(p, entrypoint)?, input),
            Policy::Wasm(p) => p.eval(entrypoint, input),
        }
    }

    /// [`Policy::eval`] on an [`Input`]: a Wasm policy is given the input's
    /// text as it is, with no serialisation per evaluation.
    pub fn eval_input(
        &mut self,
        entrypoint: Option<&str>,
        input: Option<&Input>,
    ) -> Result<Json, Error> {
        match self {
            Policy::Native(p) => {
                p.eval(&native_entrypoint(p, entrypoint)?, input.map(Input::value))
            }
            Policy::Wasm(p) => p.eval_text(entrypoint, input.map(Input::text)),
        }
    }

    /// Like [`Policy::eval`], but a native evaluation runs on a worker
    /// thread, so that one past the memory limit ends with
    /// [`Error::MemoryLimit`] and the process goes on (see
    /// [`NativePolicy::eval_isolated`]). A Wasm policy is bounded by its
    /// instance's limits and evaluates in place.
    pub fn eval_isolated(
        &mut self,
        entrypoint: Option<&str>,
        input: Option<&Json>,
    ) -> Result<Json, Error> {
        match self {
            Policy::Native(p) => p.eval_isolated(&native_entrypoint(p, entrypoint)?, input),
            Policy::Wasm(p) => p.eval(entrypoint, input),
        }
    }

    /// Runs `f` with this policy where an evaluation past the memory limit
    /// ends with [`Error::MemoryLimit`] and the process goes on: Rego
    /// source on its worker thread (see [`NativePolicy::isolated`]); a Wasm
    /// policy, bounded by its instance's limits, here.
    pub fn isolated<T: Send + 'static>(
        &mut self,
        f: impl FnOnce(&mut Policy) -> T + Send + 'static,
    ) -> Result<T, Error> {
        match self {
            Policy::Native(p) => p.isolated(f),
            Policy::Wasm(_) => Ok(f(self)),
        }
    }

    /// What the last evaluation printed with Rego's `print`.
    pub fn prints(&self) -> &[String] {
        match self {
            Policy::Native(p) => p.prints(),
            Policy::Wasm(p) => p.prints(),
        }
    }

    /// Whether `entrypoint` exists in the policy (as a rule, package or
    /// Wasm entrypoint).
    pub fn has_entrypoint(&self, entrypoint: &str) -> bool {
        match self {
            Policy::Native(p) => {
                let path = native::normalize_entrypoint(entrypoint);
                p.rules().iter().any(|(r, _)| *r == path) || p.packages().contains(&path)
            }
            Policy::Wasm(p) => p.entrypoint_id(Some(entrypoint)).is_ok(),
        }
    }
}

/// An input document with its compact JSON text, made once where several
/// rules evaluate the same input (the webhook's `deny`, `violation` and
/// `allow`, and the hash of the input it logs).
#[derive(Debug, Clone)]
pub struct Input {
    value: Json,
    text: Vec<u8>,
}

impl Input {
    pub fn new(value: Json) -> Input {
        // A `serde_json::Value` always serialises (its keys are strings).
        let text = serde_json::to_vec(&value).unwrap_or_default();
        Input { value, text }
    }

    pub fn value(&self) -> &Json {
        &self.value
    }

    /// The document as compact JSON.
    pub fn text(&self) -> &[u8] {
        &self.text
    }
}

/// A policy as read from files, before it is compiled or parsed: plain
/// data, so it can be read in one place (or process) and built in another.
#[derive(Debug, Clone)]
pub enum PolicySource {
    /// An OPA Wasm module or bundle, with the data document to load it with.
    Wasm {
        source: WasmPolicySource,
        data: Json,
        origin: String,
    },
    /// Rego source files and their data.
    Rego(Sources),
}

impl PolicySource {
    /// Rego source is parsed as Rego v0 (see [`Sources::rego_v0`]); a Wasm
    /// module or bundle is compiled already, and stays as it is.
    pub fn with_rego_v0(mut self, rego_v0: bool) -> PolicySource {
        if let PolicySource::Rego(s) = &mut self {
            s.rego_v0 = rego_v0;
        }
        self
    }

    /// Reads `.rego` files (and directories of them, with `.json` data), or
    /// a single `.wasm` (or `.wat`) module or OPA bundle (`.tar.gz`). `data`
    /// is merged into the data document.
    pub fn read(paths: &[PathBuf], data: Option<Json>) -> Result<PolicySource, Error> {
        let wasm_like = |p: &PathBuf| {
            let s = p.to_string_lossy();
            s.ends_with(".wasm")
                || s.ends_with(".wat")
                || s.ends_with(".tar.gz")
                || s.ends_with(".tgz")
        };
        match paths {
            [] => Err(Error::usage("no policy given")),
            [one] if wasm_like(one) => Ok(PolicySource::Wasm {
                source: WasmPolicySource::read(one)?,
                data: data.unwrap_or(Json::Null),
                origin: one.display().to_string(),
            }),
            many if many.iter().any(wasm_like) => Err(Error::usage(
                "a Wasm policy or bundle is loaded alone, not with other files",
            )),
            many => {
                let mut sources = Sources::read(many)?;
                if let Some(d) = data {
                    sources.add_data(d, "--data")?;
                }
                Ok(PolicySource::Rego(sources))
            }
        }
    }
}

/// The runtime policy modules are compiled and loaded with, one per
/// process: Cranelift, no pooling, no fuel metering (it slows evaluation
/// down), and the compile cache `run` uses. The process's epoch ticker
/// (`wasmlayer_core::epoch`) advances the epoch of the engine a module runs
/// on every [`wasm_host::EPOCH_TICK`], which ends an evaluation past its
/// timeout.
pub fn policy_runtime() -> Result<&'static wasmlayer_core::Runtime, Error> {
    init_policy_runtime(|builder| builder)
}

/// Sets up [`policy_runtime`] with `configure` applied to its builder (for
/// example another compile cache: the shim's, which a container reaches
/// through an open directory). The first call in a process decides; later
/// ones return the runtime it built.
pub fn init_policy_runtime(
    configure: impl FnOnce(wasmlayer_core::RuntimeBuilder) -> wasmlayer_core::RuntimeBuilder,
) -> Result<&'static wasmlayer_core::Runtime, Error> {
    static RUNTIME: std::sync::OnceLock<wasmlayer_core::Runtime> = std::sync::OnceLock::new();
    if let Some(r) = RUNTIME.get() {
        return Ok(r);
    }
    let runtime = configure(wasmlayer_core::Runtime::builder().engine_options(
        wasmlayer_core::EngineOptions {
            fuel: false,
            pooling: None,
            without_p3: false,
        },
    ))
    .build()?;
    Ok(RUNTIME.get_or_init(|| runtime))
}

/// A YAML document as JSON.
pub fn yaml_to_json(text: &str) -> Result<Json, String> {
    let v = regorus::Value::from_yaml_str(text).map_err(|e| e.to_string())?;
    serde_json::to_value(&v).map_err(|e| e.to_string())
}

/// The entrypoint a native evaluation uses: the one given, or the policy's only one.
fn native_entrypoint(p: &NativePolicy, entrypoint: Option<&str>) -> Result<String, Error> {
    match entrypoint {
        Some(e) => Ok(e.to_string()),
        None => p.default_entrypoint(),
    }
}
