//! What the wasi-nn example guests share: loading a graph the host granted
//! by name, running it on f32/i64 tensors, and reporting errors as one line
//! on stderr with a non-zero exit code.
//!
//! The guests speak the witx ABI (`wasi_ephemeral_nn`) through the `wasi-nn`
//! crate. The host grants graphs by name (`--nn-graph NAME=FILE`, or the
//! `NAME.onnx` files of a directory with `--nn-dir DIR`); the guest asks for
//! them with `load_by_name`. A graph can also be loaded from the bytes of a
//! model file the guest reads (`load`), which is how a guest asks for the
//! GPU: only `load` carries an execution target. Outputs come back as
//! little-endian bytes.

use std::fmt;

pub use wasi_nn::TensorType;
use wasi_nn::{ExecutionTarget, GraphBuilder, GraphEncoding};

/// An error with the message the guest prints before exiting.
#[derive(Debug)]
pub struct Error(pub String);

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl From<String> for Error {
    fn from(s: String) -> Self {
        Error(s)
    }
}

impl From<&str> for Error {
    fn from(s: &str) -> Self {
        Error(s.to_string())
    }
}

pub type Result<T> = std::result::Result<T, Error>;

/// Prints `PROGRAM: MESSAGE` on stderr and exits with `code`.
pub fn fail(program: &str, code: i32, message: impl fmt::Display) -> ! {
    eprintln!("{program}: {message}");
    std::process::exit(code)
}

/// Reads a file the guest was given, with the path in the error.
pub fn read_file(path: &str) -> Result<Vec<u8>> {
    std::fs::read(path).map_err(|e| Error(format!("cannot read {path}: {e}")))
}

/// Describes a wasi-nn error in the words of what the guest was doing.
fn nn_error(what: &str, e: wasi_nn::Error) -> Error {
    let detail = match &e {
        wasi_nn::Error::BackendError(b) => {
            // The crate's messages all start with this prefix.
            let s = b.to_string();
            s.trim_start_matches("WASI-NN Backend Error: ").to_string()
        }
        wasi_nn::Error::IoError(io) => io.to_string(),
    };
    Error(format!("{what}: {detail}"))
}

/// An input tensor: its element type, dimensions and little-endian bytes.
pub struct Input<'a> {
    pub ty: TensorType,
    pub dims: Vec<usize>,
    pub bytes: &'a [u8],
}

impl<'a> Input<'a> {
    pub fn f32(dims: &[usize], data: &'a [f32]) -> Self {
        Input { ty: TensorType::F32, dims: dims.to_vec(), bytes: as_bytes(data) }
    }

    pub fn i64(dims: &[usize], data: &'a [i64]) -> Self {
        Input { ty: TensorType::I64, dims: dims.to_vec(), bytes: as_bytes(data) }
    }
}

/// The bytes of a slice of plain numbers (wasm32 is little-endian, which is
/// what wasi-nn tensors are).
fn as_bytes<T: Copy>(data: &[T]) -> &[u8] {
    // SAFETY: f32 and i64 have no padding and every byte is initialised.
    unsafe { std::slice::from_raw_parts(data.as_ptr().cast::<u8>(), std::mem::size_of_val(data)) }
}

/// The most f32 values read from one output (1 GiB).
const MAX_OUTPUT_VALUES: usize = 1 << 28;

/// Where a guest gets a graph: a name the host granted, or a model file
/// the guest can read.
pub enum Source {
    Name(String),
    File(String),
}

/// A loaded graph.
pub struct Model {
    name: String,
    graph: wasi_nn::Graph,
}

impl Model {
    /// Loads the ONNX graph the host granted as `name` (`load_by_name`,
    /// which carries no execution target: the host runs it on the CPU).
    pub fn load(name: &str) -> Result<Model> {
        let graph = GraphBuilder::new(GraphEncoding::Onnx, ExecutionTarget::CPU).build_from_cache(name).map_err(|e| {
            let mut err = nn_error(&format!("cannot load graph {name}"), e);
            err.0.push_str(&format!(
                " (not granted, or the host could not load it; a grant is --nn-graph {name}=MODEL.onnx or --nn-dir DIR holding {name}.onnx)"
            ));
            err
        })?;
        Ok(Model { name: name.to_string(), graph })
    }

    /// Reads the ONNX model at `path` and loads it from its bytes (`load`),
    /// on the GPU when `gpu` is set, else on the CPU. This is the only way
    /// the ABI lets a guest choose the target.
    pub fn load_file(path: &str, gpu: bool) -> Result<Model> {
        let bytes = read_file(path)?;
        let target = if gpu { ExecutionTarget::GPU } else { ExecutionTarget::CPU };
        let graph = GraphBuilder::new(GraphEncoding::Onnx, target)
            .build_from_bytes([&bytes])
            .map_err(|e| nn_error(&format!("cannot load graph {path}"), e))?;
        Ok(Model { name: path.to_string(), graph })
    }

    /// `load_file` for a file, `load` for a granted name.
    pub fn open(source: &Source, gpu: bool) -> Result<Model> {
        match source {
            Source::Name(name) if gpu => Err(Error(format!(
                "--gpu needs the model's file: a graph loaded by name ({name}) carries no execution target in the wasi_ephemeral_nn ABI"
            ))),
            Source::Name(name) => Model::load(name),
            Source::File(path) => Model::load_file(path, gpu),
        }
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// Runs the graph on `inputs` (in the model's input order) and returns
    /// its first outputs as f32 values, one for each entry of `outputs`:
    /// the number of values expected (a larger output is read too).
    pub fn run_f32(&self, inputs: &[Input], outputs: &[usize]) -> Result<Vec<Vec<f32>>> {
        let name = &self.name;
        let mut ctx = self
            .graph
            .init_execution_context()
            .map_err(|e| nn_error(&format!("graph {name}: cannot create an execution context"), e))?;
        for (i, input) in inputs.iter().enumerate() {
            ctx.set_input(i, input.ty, &input.dims, input.bytes).map_err(|e| {
                nn_error(&format!("graph {name}: input {i} (shape {:?}) rejected", input.dims), e)
            })?;
        }
        ctx.compute().map_err(|e| nn_error(&format!("graph {name}: inference failed"), e))?;
        let mut results = Vec::with_capacity(outputs.len());
        for (i, &expected) in outputs.iter().enumerate() {
            // wasi-nn tells the size only once the buffer is large enough:
            // start from what the caller expects, grow on TOO_LARGE.
            let mut len = expected.max(1);
            let values = loop {
                let mut buf = vec![0f32; len];
                match ctx.get_output(i, &mut buf) {
                    Ok(bytes) if bytes % 4 == 0 && bytes / 4 <= len => {
                        buf.truncate(bytes / 4);
                        break buf;
                    }
                    Ok(bytes) => {
                        return Err(Error(format!("graph {name}: output {i} has {bytes} bytes, not f32 values")));
                    }
                    Err(e) if e.to_string().contains("Too Large") && len < MAX_OUTPUT_VALUES => {
                        len = (len * 4).min(MAX_OUTPUT_VALUES);
                    }
                    Err(e) => return Err(nn_error(&format!("graph {name}: cannot read output {i}"), e)),
                }
            };
            results.push(values);
        }
        Ok(results)
    }
}
