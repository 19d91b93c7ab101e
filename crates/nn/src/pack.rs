//! `nn pack`: an ONNX model made into a self-contained WebAssembly module
//! that runs it, with no wasi-nn and no ONNX Runtime on the host.
//!
//! The module is [`RUNNER_WASM`] — tract, a pure-Rust inference engine,
//! behind a command line and an `infer` export, built for wasm32-wasip1 by
//! this crate's build script from crates/nn-pack-runtime — with the model
//! linked in: the runner imports `wasmlayer:model.len` and
//! `wasmlayer:model.copy`, and [`pack`] turns those imports into defined
//! functions over a passive data segment holding the model
//! ([`wasmlayer_wasm_embed::link`]). The packed module imports WASI
//! preview 1 only.
//!
//! The packed module is a WASI command:
//!
//! ```text
//! model.wasm [--info] [--repeat N] INPUT.npy... [-o OUTDIR]
//! ```
//!
//! reads each input from a NumPy `.npy` file (in the order of the model's
//! inputs), runs the model and writes each output to
//! `OUTDIR/<output name>.npy`, or prints the outputs' shapes and a summary
//! without `-o`; `--info` prints the model's inputs and outputs. For
//! embedders it exports `alloc(len) -> ptr`, `dealloc(ptr, len)`,
//! `infer(ptr, len) -> i64` and `info() -> i64`, in this encoding (all
//! integers little-endian):
//!
//! ```text
//! request  = count:u32 tensor{count}           inputs, in the model's order
//! response = status:u32 payload                returned as (ptr << 32) | len;
//!            status 0: payload = count:u32 tensor{count}   the outputs
//!            status 1: payload = UTF-8 error message
//! tensor   = name_len:u32 name:u8{name_len}    UTF-8; may be empty in a request
//!            dtype:u32 rank:u32 dim:u64{rank}
//!            data                              product(dims) elements, C order
//! dtype    = 1 f32 | 2 f64 | 3 i64 | 4 i32 | 5 u8 | 6 i8 | 7 u16 | 8 i16
//!          | 9 u32 | 10 u64 | 11 bool (one byte) | 12 f16
//! ```
//!
//! The caller allocates the request with `alloc`, and frees both it and the
//! response with `dealloc`. A non-empty input name must be that of the
//! model's input at its position. `info()` returns a response whose payload
//! is the `--info` text. The module must be instantiated with WASI
//! preview 1 imports; `_start` need not run before `infer`.

use wasmlayer_core::Error;

// The runner's model loading, compiled here too: a model is checked exactly
// as the runner loads it.
#[allow(dead_code)]
#[path = "../../nn-pack-runtime/src/model.rs"]
mod model;

pub use model::TRACT_VERSION;

/// The runner: tract behind the command line and the `infer` export, built
/// for wasm32-wasip1 and shrunk with `wasm-opt -Os` by the build script. It
/// imports `wasmlayer:model.len` / `wasmlayer:model.copy`, which [`pack`]
/// links.
pub const RUNNER_WASM: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/nn-pack-runtime.wasm"));

/// The import module of the model's functions in [`RUNNER_WASM`].
const MODEL_IMPORTS: &str = "wasmlayer:model";

/// Packs an ONNX model into the runner (see the module documentation).
///
/// The model is checked natively first with tract, the engine the module
/// runs it with: bytes that are not an ONNX model, or a model with
/// operators tract does not implement (the error names them), fail here
/// rather than when the module runs; so does a model whose inputs are all
/// fully declared and that tract cannot analyse for them. Those are
/// [`Error::InvalidArtifact`]; a failure to link is [`Error::Host`].
pub fn pack(model: &[u8]) -> Result<Vec<u8>, Error> {
    check(model)?;
    wasmlayer_wasm_embed::link(
        RUNNER_WASM,
        &wasmlayer_wasm_embed::Embed {
            import_module: MODEL_IMPORTS,
            len: "len",
            copy: "copy",
            data: model,
            shrink_memory: None,
            globals: &[],
        },
    )
    .map_err(|e| Error::host(format!("cannot link the model into the runner: {e:#}")))
}

/// [`pack`], then wrapped into a WASI p2 component (the WASI preview 1
/// command adapter) that exports the runner's WIT world
/// `wasmlayer:nn/packed-model` (crates/nn-pack-runtime/wit/model.wit):
///
/// ```wit
/// info: func() -> result<string, string>;
/// infer: func(inputs: list<tensor>) -> result<list<tensor>, string>;
/// record tensor { name: string, ty: tensor-type, dims: list<u64>, data: list<u8> }
/// ```
///
/// beside `wasi:cli/run`, the same command line as the module's.
pub fn pack_component(model: &[u8]) -> Result<Vec<u8>, Error> {
    let module = pack(model)?;
    wasmlayer_componentize::componentize(&module, wasmlayer_componentize::AdapterMemory::Grow)
        .map(|c| c.component)
        .map_err(|e| Error::host(format!("cannot make the packed model a component: {e}")))
}

/// The WIT of the world a packed component exports.
pub const WORLD_WIT: &str = include_str!("../../nn-pack-runtime/wit/model.wit");

/// Loads the model as the runner does (which names the operators tract
/// lacks). When the model declares every input's type and shape in full,
/// tract also analyses and optimises it for them, as the runner will. A
/// model that leaves dimensions open, or has scalar integer or boolean
/// inputs (whose values may decide its branches), is analysed when it runs,
/// for the inputs it is given: tract's analysis without them rejects models
/// that run fine.
fn check(bytes: &[u8]) -> Result<(), Error> {
    let loaded = model::load(bytes).map_err(Error::invalid)?;
    let declared = loaded
        .inputs
        .iter()
        .map(|io| {
            let dims = io.shape.as_ref()?;
            let dims = dims
                .iter()
                .map(|d| d.as_deref()?.parse::<usize>().ok())
                .collect::<Option<Vec<_>>>()?;
            let dt = io.datum_type?;
            (!model::is_control(dt, &dims)).then_some((dt, dims, None))
        })
        .collect::<Option<Vec<_>>>();
    if let Some(inputs) = declared {
        model::plan(&loaded.model, &model::Signature(inputs)).map_err(Error::invalid)?;
    }
    Ok(())
}
