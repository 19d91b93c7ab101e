//! The ONNX backend behind wasi-nn: ONNX Runtime through `ort`, with every
//! tensor type wasi-nn and ONNX share (f32, f64, u8, i32, i64), an
//! explicit answer for execution targets the host cannot serve, and
//! metering of each inference.

use crate::Meter;
use ort::execution_providers::{CPUExecutionProvider, ExecutionProviderDispatch};
use ort::session::builder::GraphOptimizationLevel;
use ort::session::{Session, SessionInputValue};
use ort::tensor::TensorElementType;
use ort::value::{DynValue, Tensor as OrtTensor, ValueType};
use std::borrow::Cow;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use wasmtime_wasi_nn::backend::{
    BackendError, BackendExecutionContext, BackendFromDir, BackendGraph, BackendInner, Id,
    NamedTensor,
};
use wasmtime_wasi_nn::wit::{ExecutionTarget, GraphEncoding, TensorType};
use wasmtime_wasi_nn::{ExecutionContext, Graph, Tensor};

/// What the host does with a `gpu` (or `tpu`) target it cannot serve.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Fallback {
    /// Refuse: the guest gets an error.
    #[default]
    None,
    /// Run on the CPU instead.
    Cpu,
}

/// Why a call failed, as the guest's wasi-nn error carries it.
pub(crate) fn error(message: impl std::fmt::Display) -> BackendError {
    BackendError::BackendAccess(wasmtime::format_err!("{message}"))
}

/// Loads ONNX graphs for one store; graphs it loads count in `meter`.
pub struct OnnxBackend {
    pub(crate) fallback: Fallback,
    pub(crate) meter: Arc<Meter>,
    /// The guest's memory limit: a model larger than it is refused.
    pub(crate) max_model: Option<u64>,
    /// The models the guest was granted, and their digests once needed.
    pub(crate) granted: Vec<crate::registry::Model>,
    pub(crate) granted_digests: std::sync::OnceLock<std::collections::BTreeSet<String>>,
    /// Sessions shared with the other stores of the same extension.
    pub(crate) sessions: Arc<Sessions>,
}

/// What identifies a model for [`Sessions`]: a granted file as it is now,
/// or the SHA-256 of bytes a guest passed.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) enum ModelId {
    File {
        path: std::path::PathBuf,
        len: u64,
        modified: Option<std::time::SystemTime>,
    },
    Digest(String),
}

/// The sessions of the stores of one extension (one `run`, one serve
/// route): a model is loaded and optimised by ONNX Runtime once, and every
/// later store that loads it gets the same session (inference on one
/// session runs one at a time). A granted file that changes is loaded again.
/// The SHA-256 of each granted file is kept the same way, so a guest that
/// passes a model's bytes is checked against digests hashed once.
#[derive(Default)]
pub struct Sessions {
    sessions: Mutex<HashMap<(ModelId, u8), Arc<Shared>>>,
    digests: Mutex<HashMap<ModelId, String>>,
}

impl std::fmt::Debug for Sessions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let n = self.sessions.lock().map(|m| m.len()).unwrap_or(0);
        write!(f, "Sessions({n})")
    }
}

impl ModelId {
    /// The identity of the file at `path` as it is now.
    pub(crate) fn of_file(path: &std::path::Path) -> std::io::Result<(ModelId, u64)> {
        let meta = std::fs::metadata(path)?;
        let id = ModelId::File {
            path: path.to_path_buf(),
            len: meta.len(),
            modified: meta.modified().ok(),
        };
        Ok((id, meta.len()))
    }
}

impl Sessions {
    /// The SHA-256 of the file at `path`, hashed again only when the file
    /// changed since the last time.
    pub(crate) fn file_digest(&self, path: &std::path::Path) -> std::io::Result<String> {
        let (id, _) = ModelId::of_file(path)?;
        if let Some(d) = self
            .digests
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&id)
        {
            return Ok(d.clone());
        }
        let digest = crate::registry::sha256_file(path)?;
        let mut map = self.digests.lock().unwrap_or_else(|p| p.into_inner());
        map.retain(|old, _| !matches!(old, ModelId::File { path: p, .. } if p == path));
        map.insert(id, digest.clone());
        Ok(digest)
    }

    fn get(&self, key: &(ModelId, u8)) -> Option<Arc<Shared>> {
        self.sessions
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(key)
            .cloned()
    }

    /// Keeps `shared` for `key` (dropping what an older version of the same
    /// file had), or returns the session another store put there first.
    fn insert(&self, key: (ModelId, u8), shared: Arc<Shared>) -> Arc<Shared> {
        let mut map = self.sessions.lock().unwrap_or_else(|p| p.into_inner());
        if let (ModelId::File { path, .. }, target) = &key {
            map.retain(|(id, t), _| {
                !(t == target && matches!(id, ModelId::File { path: p, .. } if p == path))
            });
        }
        map.entry(key).or_insert(shared).clone()
    }
}

fn target_code(t: ExecutionTarget) -> u8 {
    match t {
        ExecutionTarget::Cpu => 0,
        ExecutionTarget::Gpu => 1,
        ExecutionTarget::Tpu => 2,
    }
}

/// wasi-nn's handle on an [`OnnxBackend`] shared by a store's contexts.
pub(crate) struct Loader(pub(crate) Arc<OnnxBackend>);

impl OnnxBackend {
    /// Builds a session from a model's bytes, not shared; `name` names it
    /// in errors.
    #[cfg(test)]
    pub(crate) fn session(
        &self,
        name: &str,
        model: &[u8],
        target: ExecutionTarget,
    ) -> Result<Graph, BackendError> {
        self.graph(
            name,
            None,
            model.len() as u64,
            || Ok(model.to_vec()),
            target,
        )
    }

    /// The graph of a model of `len` bytes: the session the extension's
    /// stores share for `id` on `target`, or a new one from the bytes
    /// `read` gives (kept for the others when `id` is given). `name` names
    /// it in errors.
    pub(crate) fn graph(
        &self,
        name: &str,
        id: Option<ModelId>,
        len: u64,
        read: impl FnOnce() -> Result<Vec<u8>, BackendError>,
        target: ExecutionTarget,
    ) -> Result<Graph, BackendError> {
        if let Some(max) = self.max_model {
            if len > max {
                return Err(error(format!(
                    "model {name} ({len} bytes) is larger than the guest's memory limit ({max} bytes)"
                )));
            }
        }
        crate::runtime_lib::ensure().map_err(error)?;
        let providers = self.providers(target)?;
        let key = id.map(|id| (id, target_code(target)));
        let started = Instant::now();
        let (shared, took) = match key.as_ref().and_then(|k| self.sessions.get(k)) {
            Some(shared) => (shared, Duration::ZERO),
            None => {
                let model = read()?;
                let shared = Arc::new(Shared::load(name, &model, providers)?);
                let shared = match key {
                    Some(key) => self.sessions.insert(key, shared),
                    None => shared,
                };
                tracing::debug!(model = name, bytes = len, "wasi-nn graph loaded");
                (shared, started.elapsed())
            }
        };
        self.meter.loaded(len, took);
        let graph: Box<dyn BackendGraph> = Box::new(OnnxGraph {
            shared,
            meter: self.meter.clone(),
        });
        Ok(graph.into())
    }

    fn providers(
        &self,
        target: ExecutionTarget,
    ) -> Result<Vec<ExecutionProviderDispatch>, BackendError> {
        let cpu = || Ok(vec![CPUExecutionProvider::default().build()]);
        let unavailable = |what: &str| {
            if self.fallback == Fallback::Cpu {
                tracing::info!("{what}; running on the CPU (--nn-fallback cpu)");
                cpu()
            } else {
                Err(error(format!(
                    "{what} (run with --nn-fallback cpu to use the CPU instead)"
                )))
            }
        };
        match target {
            ExecutionTarget::Cpu => cpu(),
            ExecutionTarget::Gpu => match cuda() {
                Some(p) => Ok(vec![p]),
                None => unavailable("GPU execution requested, no CUDA provider available"),
            },
            ExecutionTarget::Tpu => {
                unavailable("TPU execution requested, no TPU provider available")
            }
        }
    }
}

/// The CUDA execution provider, when the ONNX Runtime library loaded has
/// it and can use it (a CUDA-enabled build on a machine with a GPU).
fn cuda() -> Option<ExecutionProviderDispatch> {
    use ort::execution_providers::{CUDAExecutionProvider, ExecutionProvider};
    let p = CUDAExecutionProvider::default();
    match p.is_available() {
        Ok(true) => Some(p.build().error_on_failure()),
        _ => None,
    }
}

impl BackendInner for Loader {
    fn encoding(&self) -> GraphEncoding {
        GraphEncoding::Onnx
    }

    fn load(&mut self, builders: &[&[u8]], target: ExecutionTarget) -> Result<Graph, BackendError> {
        match builders {
            [model] => {
                // The witx ABI carries only an error code to the guest:
                // the reason goes to the host's log.
                crate::registry::check_granted_bytes(&self.0, model)
                    .and_then(|digest| {
                        self.0.graph(
                            "(from the guest)",
                            Some(ModelId::Digest(digest)),
                            model.len() as u64,
                            || Ok(model.to_vec()),
                            target,
                        )
                    })
                    .inspect_err(|e| {
                        tracing::warn!(
                            "wasi-nn: cannot load the guest's model: {}",
                            crate::registry::describe(e)
                        )
                    })
            }
            _ => Err(BackendError::InvalidNumberOfBuilders(1, builders.len())),
        }
    }

    fn as_dir_loadable(&mut self) -> Option<&mut dyn BackendFromDir> {
        None
    }
}

/// A tensor the model declares: its name, element type and dimensions
/// (-1 where free).
#[derive(Debug, Clone)]
struct Slot {
    name: String,
    ty: TensorElementType,
    dims: Vec<i64>,
}

impl Slot {
    fn of(name: &str, vt: &ValueType) -> Result<Slot, BackendError> {
        match vt {
            ValueType::Tensor { ty, shape, .. } => Ok(Slot {
                name: name.to_string(),
                ty: *ty,
                dims: shape.to_vec(),
            }),
            other => Err(error(format!(
                "the model's {name} is a {other:?}, not a tensor; wasi-nn passes tensors only"
            ))),
        }
    }

    /// Whether `t` fits this slot: type, rank, fixed dimensions and size.
    fn check(&self, t: &Tensor) -> Result<(), BackendError> {
        let want = wasi_type(self.ty);
        if want != Some(t.ty) {
            return Err(error(format!(
                "input {}: tensor type {:?}, the model expects {}",
                self.name,
                t.ty,
                describe_type(self.ty)
            )));
        }
        let shape_ok = self.dims.len() == t.dimensions.len()
            && self
                .dims
                .iter()
                .zip(&t.dimensions)
                .all(|(&m, &d)| m < 0 || m == i64::from(d));
        if !shape_ok {
            return Err(error(format!(
                "input {}: shape {:?}, the model expects {} (-1: any)",
                self.name,
                t.dimensions,
                format_dims(&self.dims)
            )));
        }
        let count: u64 = t.dimensions.iter().map(|&d| u64::from(d)).product();
        let size = element_size(t.ty).unwrap_or(0) as u64;
        if count.checked_mul(size) != Some(t.data.len() as u64) {
            return Err(error(format!(
                "input {}: shape {:?} of {:?} needs {} bytes of data, the tensor has {}",
                self.name,
                t.dimensions,
                t.ty,
                count.saturating_mul(size),
                t.data.len()
            )));
        }
        Ok(())
    }
}

fn format_dims(d: &[i64]) -> String {
    format!(
        "[{}]",
        d.iter().map(i64::to_string).collect::<Vec<_>>().join(", ")
    )
}

fn wasi_type(t: TensorElementType) -> Option<TensorType> {
    Some(match t {
        TensorElementType::Float32 => TensorType::Fp32,
        TensorElementType::Float64 => TensorType::Fp64,
        TensorElementType::Uint8 => TensorType::U8,
        TensorElementType::Int32 => TensorType::I32,
        TensorElementType::Int64 => TensorType::I64,
        _ => return None,
    })
}

fn describe_type(t: TensorElementType) -> String {
    match wasi_type(t) {
        Some(w) => format!("{w:?}"),
        None => format!("{t:?}, which wasi-nn cannot pass"),
    }
}

fn element_size(t: TensorType) -> Option<usize> {
    match t {
        TensorType::Fp32 | TensorType::I32 => Some(4),
        TensorType::Fp64 | TensorType::I64 => Some(8),
        TensorType::U8 => Some(1),
        TensorType::Fp16 | TensorType::Bf16 => None,
    }
}

/// A loaded model: its session and what it declares.
pub struct Shared {
    session: Mutex<Session>,
    inputs: Vec<Slot>,
    outputs: Vec<Slot>,
}

impl Shared {
    fn load(
        name: &str,
        model: &[u8],
        providers: Vec<ExecutionProviderDispatch>,
    ) -> Result<Shared, BackendError> {
        let session = Session::builder()
            .and_then(|b| b.with_execution_providers(providers))
            .and_then(|b| b.with_optimization_level(GraphOptimizationLevel::Level3))
            .and_then(|b| b.commit_from_memory(model))
            .map_err(|e| error(format!("model {name}: {e}")))?;
        let inputs = session
            .inputs
            .iter()
            .map(|i| Slot::of(&i.name, &i.input_type))
            .collect::<Result<Vec<_>, _>>()?;
        let outputs = session
            .outputs
            .iter()
            .map(|o| Slot::of(&o.name, &o.output_type))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Shared {
            session: Mutex::new(session),
            inputs,
            outputs,
        })
    }
}

/// A store's graph: a shared session, metered for the store.
struct OnnxGraph {
    shared: Arc<Shared>,
    meter: Arc<Meter>,
}

impl BackendGraph for OnnxGraph {
    fn init_execution_context(&self) -> Result<ExecutionContext, BackendError> {
        let n_in = self.shared.inputs.len();
        let n_out = self.shared.outputs.len();
        let ctx: Box<dyn BackendExecutionContext> = Box::new(OnnxContext {
            graph: self.shared.clone(),
            meter: self.meter.clone(),
            inputs: vec![None; n_in],
            outputs: vec![None; n_out],
        });
        Ok(ctx.into())
    }
}

struct OnnxContext {
    graph: Arc<Shared>,
    meter: Arc<Meter>,
    inputs: Vec<Option<Tensor>>,
    outputs: Vec<Option<Tensor>>,
}

fn find(id: &Id, slots: &[Slot], what: &str) -> Result<usize, BackendError> {
    match id {
        Id::Index(i) => {
            let i = *i as usize;
            if i < slots.len() {
                Ok(i)
            } else {
                Err(error(format!(
                    "no {what} {i}: the model has {} {what}s",
                    slots.len()
                )))
            }
        }
        Id::Name(n) => slots.iter().position(|s| &s.name == n).ok_or_else(|| {
            let names: Vec<&str> = slots.iter().map(|s| s.name.as_str()).collect();
            error(format!(
                "no {what} named {n:?}: the model's are {}",
                names.join(", ")
            ))
        }),
    }
}

/// A tensor's bytes as ONNX Runtime's value.
fn to_value(t: &Tensor) -> Result<DynValue, BackendError> {
    fn make<
        T: ort::tensor::PrimitiveTensorElementType + std::fmt::Debug + Clone + 'static,
        const N: usize,
    >(
        t: &Tensor,
        from: fn([u8; N]) -> T,
    ) -> Result<DynValue, BackendError> {
        let data: Vec<T> = t.data.as_chunks::<N>().0.iter().map(|c| from(*c)).collect();
        let dims: Vec<i64> = t.dimensions.iter().map(|&d| i64::from(d)).collect();
        OrtTensor::from_array((dims, data))
            .map(|v| v.into_dyn())
            .map_err(|e| error(format!("input tensor: {e}")))
    }
    match t.ty {
        TensorType::Fp32 => make(t, f32::from_le_bytes),
        TensorType::Fp64 => make(t, f64::from_le_bytes),
        TensorType::U8 => make(t, |b: [u8; 1]| b[0]),
        TensorType::I32 => make(t, i32::from_le_bytes),
        TensorType::I64 => make(t, i64::from_le_bytes),
        other => Err(BackendError::UnsupportedTensorType(format!("{other:?}"))),
    }
}

/// ONNX Runtime's output as a wasi-nn tensor (little-endian bytes).
fn from_value(name: &str, v: &DynValue) -> Result<Tensor, BackendError> {
    fn take<T: ort::tensor::PrimitiveTensorElementType + Copy, const N: usize>(
        v: &DynValue,
        ty: TensorType,
        to: fn(T) -> [u8; N],
    ) -> Result<Tensor, BackendError> {
        let (shape, data) = v.try_extract_tensor::<T>().map_err(error)?;
        let dimensions = shape
            .iter()
            .map(|&d| u32::try_from(d).map_err(|_| error(format!("output dimension {d}"))))
            .collect::<Result<Vec<_>, _>>()?;
        let mut bytes = Vec::with_capacity(data.len() * N);
        for &x in data {
            bytes.extend_from_slice(&to(x));
        }
        Ok(Tensor::new(dimensions, ty, bytes))
    }
    let ty = match v.dtype() {
        ValueType::Tensor { ty, .. } => *ty,
        other => return Err(error(format!("output {name} is a {other:?}, not a tensor"))),
    };
    match ty {
        TensorElementType::Float32 => take(v, TensorType::Fp32, f32::to_le_bytes),
        TensorElementType::Float64 => take(v, TensorType::Fp64, f64::to_le_bytes),
        TensorElementType::Uint8 => take(v, TensorType::U8, |x: u8| [x]),
        TensorElementType::Int32 => take(v, TensorType::I32, i32::to_le_bytes),
        TensorElementType::Int64 => take(v, TensorType::I64, i64::to_le_bytes),
        // Booleans travel as u8 (0 or 1).
        TensorElementType::Bool => take(v, TensorType::U8, |x: bool| [u8::from(x)]),
        other => Err(error(format!(
            "output {name} has elements of type {other:?}, which wasi-nn cannot pass"
        ))),
    }
}

impl OnnxContext {
    fn run(&mut self) -> Result<(), BackendError> {
        let g = &self.graph;
        let mut values: Vec<(Cow<'_, str>, SessionInputValue<'_>)> = Vec::new();
        for (slot, t) in g.inputs.iter().zip(&self.inputs) {
            let t = t
                .as_ref()
                .ok_or_else(|| error(format!("input {} was not set", slot.name)))?;
            values.push((Cow::Borrowed(slot.name.as_str()), to_value(t)?.into()));
        }
        let started = Instant::now();
        let mut session = g.session.lock().unwrap_or_else(|p| p.into_inner());
        let outputs = session
            .run(values)
            .map_err(|e| error(format!("inference: {e}")))?;
        let elapsed = started.elapsed();
        for (i, slot) in g.outputs.iter().enumerate() {
            let v = outputs
                .get(&slot.name)
                .ok_or_else(|| error(format!("no output {}", slot.name)))?;
            self.outputs[i] = Some(from_value(&slot.name, v)?);
        }
        self.meter.inferred(elapsed);
        Ok(())
    }
}

impl BackendExecutionContext for OnnxContext {
    fn set_input(&mut self, id: Id, tensor: &Tensor) -> Result<(), BackendError> {
        let i = find(&id, &self.graph.inputs, "input")?;
        self.graph.inputs[i].check(tensor)?;
        self.inputs[i] = Some(tensor.clone());
        Ok(())
    }

    fn get_output(&mut self, id: Id) -> Result<Tensor, BackendError> {
        let i = find(&id, &self.graph.outputs, "output")?;
        self.outputs[i].clone().ok_or_else(|| {
            error(format!(
                "output {} is not computed yet",
                self.graph.outputs[i].name
            ))
        })
    }

    fn compute(
        &mut self,
        inputs: Option<Vec<NamedTensor>>,
    ) -> Result<Option<Vec<NamedTensor>>, BackendError> {
        match inputs {
            // witx: the inputs were set one by one.
            None => self.run().map(|()| None),
            // WIT: inputs by name (or index), outputs returned by name.
            Some(named) => {
                self.inputs.iter_mut().for_each(|t| *t = None);
                for n in named {
                    let id = match n.name.parse::<u32>() {
                        Ok(i) if !self.graph.inputs.iter().any(|s| s.name == n.name) => {
                            Id::Index(i)
                        }
                        _ => Id::Name(n.name.clone()),
                    };
                    self.set_input(id, &n.tensor)?;
                }
                self.run()?;
                Ok(Some(
                    self.graph
                        .outputs
                        .iter()
                        .zip(&self.outputs)
                        .filter_map(|(s, t)| {
                            t.clone().map(|tensor| NamedTensor {
                                name: s.name.clone(),
                                tensor,
                            })
                        })
                        .collect(),
                ))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Silero VAD (scripts/models.sh fetches it): inputs `input` f32
    /// [batch, samples], `state` f32 [2, batch, 128] and `sr` i64.
    fn silero() -> (std::path::PathBuf, Vec<u8>) {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../target/models/silero_vad.onnx");
        let bytes = std::fs::read(&path).expect("run scripts/models.sh");
        (path, bytes)
    }

    fn backend(fallback: Fallback, max_model: Option<u64>) -> OnnxBackend {
        OnnxBackend {
            fallback,
            meter: Arc::default(),
            max_model,
            granted: Vec::new(),
            granted_digests: Default::default(),
            sessions: Default::default(),
        }
    }

    fn f32s(v: &[f32]) -> Vec<u8> {
        v.iter().flat_map(|x| x.to_le_bytes()).collect()
    }

    fn message(e: BackendError) -> String {
        crate::registry::describe(&e)
    }

    /// The error of a load that must fail.
    fn refused(r: Result<Graph, BackendError>) -> String {
        match r {
            Ok(_) => panic!("the load succeeded"),
            Err(e) => message(e),
        }
    }

    #[test]
    fn runs_a_real_model_with_f32_and_i64_inputs_and_checks_what_it_is_given() {
        let (_, model) = silero();
        let b = backend(Fallback::None, None);
        let graph = b.session("silero", &model, ExecutionTarget::Cpu).unwrap();
        let mut ctx = graph.init_execution_context().unwrap();
        let input = Tensor::new(vec![1, 576], TensorType::Fp32, f32s(&[0.0; 576]));
        let state = Tensor::new(vec![2, 1, 128], TensorType::Fp32, f32s(&[0.0; 256]));
        let sr = Tensor::new(vec![], TensorType::I64, 16000i64.to_le_bytes().to_vec());

        // Wrong type, wrong rank, too little data, unknown names: errors
        // that say what the model expects.
        let e = message(
            ctx.set_input(
                Id::Name("sr".into()),
                &Tensor::new(vec![], TensorType::Fp32, f32s(&[16000.0])),
            )
            .unwrap_err(),
        );
        assert!(e.contains("input sr") && e.contains("I64"), "{e}");
        let e = message(
            ctx.set_input(
                Id::Name("state".into()),
                &Tensor::new(vec![2, 128], TensorType::Fp32, f32s(&[0.0; 256])),
            )
            .unwrap_err(),
        );
        assert!(
            e.contains("shape [2, 128]") && e.contains("[2, -1, 128]"),
            "{e}"
        );
        let e = message(
            ctx.set_input(
                Id::Name("input".into()),
                &Tensor::new(vec![1, 576], TensorType::Fp32, f32s(&[0.0; 10])),
            )
            .unwrap_err(),
        );
        assert!(e.contains("needs 2304 bytes"), "{e}");
        let e = message(ctx.set_input(Id::Name("nope".into()), &input).unwrap_err());
        assert!(e.contains("no input named \"nope\""), "{e}");
        let e = message(ctx.set_input(Id::Index(7), &input).unwrap_err());
        assert!(e.contains("no input 7"), "{e}");
        // Computing before every input is set.
        ctx.set_input(Id::Name("input".into()), &input).unwrap();
        let e = message(ctx.compute().unwrap_err());
        assert!(e.contains("was not set"), "{e}");

        ctx.set_input(Id::Name("state".into()), &state).unwrap();
        ctx.set_input(Id::Name("sr".into()), &sr).unwrap();
        ctx.compute().unwrap();
        let prob = ctx.get_output(Id::Index(0)).unwrap();
        assert_eq!(prob.dimensions, vec![1, 1]);
        assert_eq!(prob.ty, TensorType::Fp32);
        let p = f32::from_le_bytes(prob.data[..4].try_into().unwrap());
        assert!((0.0..=1.0).contains(&p), "{p}");
        let next = ctx.get_output(Id::Index(1)).unwrap();
        assert_eq!(next.dimensions, vec![2, 1, 128]);
        // The WIT form: inputs by name, outputs returned.
        let out = ctx
            .compute_with_io(vec![
                NamedTensor {
                    name: "input".into(),
                    tensor: input.clone(),
                },
                NamedTensor {
                    name: "state".into(),
                    tensor: next,
                },
                NamedTensor {
                    name: "sr".into(),
                    tensor: sr.clone(),
                },
            ])
            .unwrap();
        assert_eq!(out.len(), 2);
        let m = b.meter.read();
        assert_eq!((m.inferences, m.models), (2, 1));
        assert_eq!(m.model_bytes, model.len() as u64);
    }

    #[test]
    fn stores_of_one_extension_share_a_models_session() {
        let (path, model) = silero();
        let sessions = Arc::new(Sessions::default());
        let store = || OnnxBackend {
            sessions: sessions.clone(),
            ..backend(Fallback::None, None)
        };
        let meta = std::fs::metadata(&path).unwrap();
        let id = ModelId::File {
            path: path.clone(),
            len: meta.len(),
            modified: meta.modified().ok(),
        };
        let reads = std::sync::atomic::AtomicUsize::new(0);
        let read = || {
            reads.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            Ok(model.clone())
        };
        let (first, second) = (store(), store());
        let a = first
            .graph(
                "vad",
                Some(id.clone()),
                meta.len(),
                read,
                ExecutionTarget::Cpu,
            )
            .unwrap();
        let b = second
            .graph(
                "vad",
                Some(id.clone()),
                meta.len(),
                read,
                ExecutionTarget::Cpu,
            )
            .unwrap();
        assert_eq!(
            reads.load(std::sync::atomic::Ordering::SeqCst),
            1,
            "read and loaded once"
        );
        // Each store meters its own use: the model's bytes, and load time
        // only where it was loaded.
        let (m1, m2) = (first.meter.read(), second.meter.read());
        assert_eq!((m1.models, m1.model_bytes), (1, meta.len()));
        assert_eq!((m2.models, m2.model_bytes), (1, meta.len()));
        assert!(m1.load_time > Duration::ZERO);
        assert_eq!(m2.load_time, Duration::ZERO);
        // Both run, each metered for its store.
        for (graph, b) in [(&a, &first), (&b, &second)] {
            let mut ctx = graph.init_execution_context().unwrap();
            let inputs = [
                Tensor::new(vec![1, 576], TensorType::Fp32, f32s(&[0.0; 576])),
                Tensor::new(vec![2, 1, 128], TensorType::Fp32, f32s(&[0.0; 256])),
                Tensor::new(vec![], TensorType::I64, 16000i64.to_le_bytes().to_vec()),
            ];
            for (i, t) in inputs.iter().enumerate() {
                ctx.set_input(Id::Index(i as u32), t).unwrap();
            }
            ctx.compute().unwrap();
            assert_eq!(b.meter.read().inferences, 1);
        }
        // Another target, or a file that changed, is another session.
        let changed = ModelId::File {
            path,
            len: meta.len(),
            modified: None,
        };
        store()
            .graph("vad", Some(changed), meta.len(), read, ExecutionTarget::Cpu)
            .unwrap();
        assert_eq!(reads.load(std::sync::atomic::Ordering::SeqCst), 2);
        assert_eq!(
            sessions.sessions.lock().unwrap().len(),
            1,
            "the older version is dropped"
        );
    }

    #[test]
    fn refuses_what_is_not_a_model_a_model_too_large_and_an_unserved_target() {
        let (_, model) = silero();
        let b = backend(Fallback::None, None);
        let e = refused(b.session("junk", b"not a model at all", ExecutionTarget::Cpu));
        assert!(e.starts_with("model junk:"), "{e}");
        let e = refused(backend(Fallback::None, Some(1 << 20)).session(
            "silero",
            &model,
            ExecutionTarget::Cpu,
        ));
        assert!(
            e.contains("larger than the guest's memory limit (1048576 bytes)"),
            "{e}"
        );
        // An ONNX Runtime (or a machine) without a usable CUDA provider,
        // as here: the CPU-only onnxruntime from PyPI.
        if cuda().is_none() {
            let e = refused(b.session("silero", &model, ExecutionTarget::Gpu));
            assert!(
                e.contains("GPU execution requested, no CUDA provider available"),
                "{e}"
            );
        }
        let e = refused(b.session("silero", &model, ExecutionTarget::Tpu));
        assert!(e.contains("TPU execution requested"), "{e}");
        // With the fallback, the CPU serves it.
        backend(Fallback::Cpu, None)
            .session("silero", &model, ExecutionTarget::Gpu)
            .unwrap();
    }

    #[test]
    fn a_guest_supplied_model_must_be_a_granted_one() {
        let (path, model) = silero();
        let b = backend(Fallback::None, None);
        let e = message(crate::registry::check_granted_bytes(&b, &model).unwrap_err());
        assert!(e.contains("is not one it was granted"), "{e}");
        let mut b = backend(Fallback::None, None);
        b.granted = vec![crate::registry::Model {
            name: "vad".into(),
            path,
        }];
        crate::registry::check_granted_bytes(&b, &model).unwrap();
    }

    #[test]
    fn a_granted_files_digest_is_hashed_once_until_the_file_changes() {
        let dir = std::env::temp_dir().join(format!("wasmlayer-nn-digest-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("model.onnx");
        std::fs::write(&file, b"first").unwrap();
        let sessions = Sessions::default();
        let first = sessions.file_digest(&file).unwrap();
        assert_eq!(
            first,
            hex::encode(<sha2::Sha256 as sha2::Digest>::digest(b"first"))
        );
        assert_eq!(sessions.file_digest(&file).unwrap(), first);
        assert_eq!(sessions.digests.lock().unwrap().len(), 1);
        // A changed file (here, a different length) is hashed again, and
        // the digest of its older version is dropped.
        std::fs::write(&file, b"second version").unwrap();
        let second = sessions.file_digest(&file).unwrap();
        assert_eq!(
            second,
            hex::encode(<sha2::Sha256 as sha2::Digest>::digest(b"second version"))
        );
        assert_eq!(sessions.digests.lock().unwrap().len(), 1);
        assert!(sessions.file_digest(&dir.join("missing.onnx")).is_err());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
