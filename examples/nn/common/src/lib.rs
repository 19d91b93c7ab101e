//! What the wasi-nn example guests share: loading a graph the host granted
//! by name, running it on f32/i64 tensors, and reporting errors as one line
//! on stderr with a non-zero exit code.
//!
//! Built for wasm32-wasip1, the guests speak the witx ABI
//! (`wasi_ephemeral_nn`) through the `wasi-nn` crate; built for
//! wasm32-wasip2, they are components importing `wasi:nn` (the WIT in
//! `wit/`, bound with wit-bindgen). The rest of a guest is the same for both.
//!
//! The host grants graphs by name (`--nn-graph NAME=FILE`, or the
//! `NAME.onnx` files of a directory with `--nn-dir DIR`); the guest asks for
//! them with `load_by_name`. A graph can also be loaded from the bytes of a
//! model file the guest reads (`load`), which is how a guest asks for the
//! GPU: only `load` carries an execution target. Outputs come back as
//! little-endian bytes.

use std::fmt;

#[cfg_attr(target_env = "p1", path = "witx.rs")]
#[cfg_attr(not(target_env = "p1"), path = "wit.rs")]
mod abi;

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

/// The element type of an input tensor.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TensorType {
    F32,
    I64,
}

/// An input tensor: the model's name for it, its element type, dimensions
/// and little-endian bytes. The witx ABI sets inputs by position (the order
/// of `run_f32`'s list), WIT by name.
pub struct Input<'a> {
    pub name: &'a str,
    pub ty: TensorType,
    pub dims: Vec<usize>,
    pub bytes: &'a [u8],
}

impl<'a> Input<'a> {
    pub fn f32(name: &'a str, dims: &[usize], data: &'a [f32]) -> Self {
        Input {
            name,
            ty: TensorType::F32,
            dims: dims.to_vec(),
            bytes: as_bytes(data),
        }
    }

    pub fn i64(name: &'a str, dims: &[usize], data: &'a [i64]) -> Self {
        Input {
            name,
            ty: TensorType::I64,
            dims: dims.to_vec(),
            bytes: as_bytes(data),
        }
    }
}

/// The bytes of a slice of plain numbers (wasm32 is little-endian, which is
/// what wasi-nn tensors are).
fn as_bytes<T: Copy>(data: &[T]) -> &[u8] {
    // SAFETY: f32 and i64 have no padding and every byte is initialised.
    unsafe { std::slice::from_raw_parts(data.as_ptr().cast::<u8>(), std::mem::size_of_val(data)) }
}

/// Where a guest gets a graph: a name the host granted, or a model file
/// the guest can read.
pub enum Source {
    Name(String),
    File(String),
}

/// A loaded graph.
pub struct Model {
    name: String,
    graph: abi::Graph,
}

impl Model {
    /// Loads the ONNX graph the host granted as `name` (`load_by_name`,
    /// which carries no execution target: the host runs it on the CPU).
    pub fn load(name: &str) -> Result<Model> {
        let graph = abi::load_by_name(name).map_err(|detail| {
            Error(format!(
                "cannot load graph {name}: {detail} (not granted, or the host could not load it; a grant is --nn-graph {name}=MODEL.onnx or --nn-dir DIR holding {name}.onnx)"
            ))
        })?;
        Ok(Model {
            name: name.to_string(),
            graph,
        })
    }

    /// Reads the ONNX model at `path` and loads it from its bytes (`load`),
    /// on the GPU when `gpu` is set, else on the CPU. This is the only way
    /// the ABI lets a guest choose the target.
    pub fn load_file(path: &str, gpu: bool) -> Result<Model> {
        let bytes = read_file(path)?;
        let graph = abi::load_bytes(&bytes, gpu)
            .map_err(|detail| Error(format!("cannot load graph {path}: {detail}")))?;
        Ok(Model {
            name: path.to_string(),
            graph,
        })
    }

    /// `load_file` for a file, `load` for a granted name.
    pub fn open(source: &Source, gpu: bool) -> Result<Model> {
        match source {
            Source::Name(name) if gpu => Err(Error(format!(
                "--gpu needs the model's file: a graph loaded by name ({name}) carries no execution target in wasi-nn"
            ))),
            Source::Name(name) => Model::load(name),
            Source::File(path) => Model::load_file(path, gpu),
        }
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// Runs the graph on `inputs` (all of the model's inputs, in its order)
    /// and returns its first outputs as f32 values, one for each entry of
    /// `outputs`: the number of values expected (a larger output is read
    /// too).
    pub fn run_f32(&self, inputs: &[Input], outputs: &[usize]) -> Result<Vec<Vec<f32>>> {
        abi::run_f32(&self.graph, inputs, outputs)
            .map_err(|e| Error(format!("graph {}: {e}", self.name)))
    }
}
