//! The runner of a packed model (`wasmlayer nn pack`): an ONNX model run by
//! tract, a pure-Rust inference engine, in a WASI preview 1 module.
//!
//! The runner gets its model through two imports, which packing links into
//! the module (over a passive data segment holding the model):
//!
//! ```wat
//! (import "wasmlayer:model" "len" (func (result i32)))   ;; the model's size
//! (import "wasmlayer:model" "copy" (func (param i32)))   ;; copy it to this address
//! ```
//!
//! The model is parsed on first use and kept; its optimised plan is kept for
//! the last input types and shapes it ran with (and the values of its scalar
//! integer and boolean inputs, which may decide branches of the model).
//!
//! # Command line (`_start`)
//!
//! ```text
//! model.wasm [--info] [--repeat N] INPUT.npy... [-o OUTDIR]
//! ```
//!
//! Each input is a NumPy `.npy` file (float32, float64, int64, int32,
//! uint8, and the other plain integer, bool and float16 types; C order),
//! given in the order of the model's inputs. Each output is written to
//! `OUTDIR/<output name>.npy` (characters other than letters, digits, `.`,
//! `-` and `_` in the name become `_`), or, without `-o`, its type, shape
//! and a summary are printed. `--info` prints the model's inputs and outputs
//! (names, types, shapes; `?` for a dimension the model leaves open).
//! `--repeat N` runs the model N more times on the same inputs and prints
//! the mean time of those runs on stderr (the first loads and plans it).
//! Errors go to stderr with exit status 1.
//!
//! # Exports for embedders
//!
//! The module also exports, for hosts that call it directly (after
//! instantiating it with WASI preview 1 imports; `_start` need not run):
//!
//! - `alloc(len: i32) -> i32` and `dealloc(ptr: i32, len: i32)`: memory in
//!   the module's linear memory (8-byte aligned), for requests and to free
//!   responses;
//! - `infer(ptr: i32, len: i32) -> i64`: runs the model on the request at
//!   `ptr..ptr+len` (which the caller still owns and frees) and returns a
//!   response buffer as `(ptr << 32) | len`, which the caller frees with
//!   `dealloc(ptr, len)`;
//! - `info() -> i64`: a response buffer whose payload is the `--info` text
//!   (UTF-8).
//!
//! Encoding (all integers little-endian):
//!
//! ```text
//! request  = count:u32 tensor{count}           inputs, in the model's order
//! response = status:u32 payload
//!            status 0: payload = count:u32 tensor{count}   the outputs
//!            status 1: payload = UTF-8 error message (the rest of the buffer)
//! tensor   = name_len:u32 name:u8{name_len}    UTF-8; may be empty in a request
//!            dtype:u32 rank:u32 dim:u64{rank}
//!            data                              product(dims) elements, C order
//! dtype    = 1 f32 | 2 f64 | 3 i64 | 4 i32 | 5 u8 | 6 i8 | 7 u16 | 8 i16
//!          | 9 u32 | 10 u64 | 11 bool (one byte) | 12 f16
//! ```
//!
//! A non-empty input name must be the name of the model's input at that
//! position.
//!
//! # The `packed-model` world
//!
//! The module also carries the component type of the WIT world
//! `wasmlayer:nn/packed-model` (wit/model.wit, exported by `component`):
//! `info() -> result<string, string>` and `infer(list<tensor>) ->
//! result<list<tensor>, string>`, tensors as records. `nn pack --component`
//! wraps the packed module into a component that exports it, beside the
//! command line as `wasi:cli/run`.

mod component;
mod model;
mod npy;
mod wire;

use std::sync::Mutex;

use model::Loaded;
use tract_onnx::prelude::*;

#[link(wasm_import_module = "wasmlayer:model")]
extern "C" {
    /// The model's size in bytes.
    #[link_name = "len"]
    fn model_len() -> i32;
    /// Copies the model to `dst`, which has room for `model_len()` bytes.
    #[link_name = "copy"]
    fn model_copy(dst: *mut u8);
}

/// The plan optimised for a signature of the inputs.
type Plan = (model::Signature, Arc<TypedRunnableModel>);

struct Engine {
    loaded: Loaded,
    plan: Option<Plan>,
}

static ENGINE: Mutex<Option<Result<Engine, String>>> = Mutex::new(None);

/// Runs `f` on the engine, loading the model first if needed.
fn with_engine<R>(f: impl FnOnce(&mut Engine) -> Result<R, String>) -> Result<R, String> {
    let mut guard = ENGINE.lock().unwrap_or_else(|e| e.into_inner());
    let engine = guard.get_or_insert_with(|| {
        let len = usize::try_from(unsafe { model_len() }).unwrap_or(0);
        let mut bytes = vec![0u8; len];
        // Safety: `bytes` has room for the model's `len` bytes.
        unsafe { model_copy(bytes.as_mut_ptr()) };
        model::load(&bytes).map(|loaded| Engine { loaded, plan: None })
    });
    match engine {
        Ok(engine) => f(engine),
        Err(e) => Err(e.clone()),
    }
}

impl Engine {
    fn info(&self) -> String {
        let mut s = String::from("inputs:\n");
        for io in &self.loaded.inputs {
            s.push_str(&format!("  {io}\n"));
        }
        s.push_str("outputs:\n");
        for io in &self.loaded.outputs {
            s.push_str(&format!("  {io}\n"));
        }
        s
    }

    /// Runs the model on `inputs` (given in the model's input order; a
    /// non-empty name must match), returning the named outputs.
    fn run(&mut self, inputs: Vec<(String, Tensor)>) -> Result<Vec<(String, Tensor)>, String> {
        let declared = &self.loaded.inputs;
        if inputs.len() != declared.len() {
            return Err(format!(
                "the model takes {} input{} ({}), {} given",
                declared.len(),
                if declared.len() == 1 { "" } else { "s" },
                declared
                    .iter()
                    .map(|io| io.to_string())
                    .collect::<Vec<_>>()
                    .join("; "),
                inputs.len()
            ));
        }
        for ((name, t), io) in inputs.iter().zip(declared) {
            check_input(name, t, io)?;
        }
        let signature = model::Signature::of(inputs.iter().map(|(_, t)| t));
        let plan = match &self.plan {
            Some((s, plan)) if *s == signature => plan.clone(),
            _ => {
                self.plan = None;
                let plan = model::plan(&self.loaded.model, &signature)?;
                self.plan = Some((signature, plan.clone()));
                plan
            }
        };
        let outputs = plan
            .run(inputs.into_iter().map(|(_, t)| t.into_tvalue()).collect())
            .map_err(|e| format!("inference failed: {e:#}"))?;
        Ok(self
            .loaded
            .outputs
            .iter()
            .zip(outputs)
            .map(|(io, t)| (io.name.clone(), t.into_tensor()))
            .collect())
    }
}

/// Checks an input against what the model declares, for a clearer message
/// than tract's analysis gives.
fn check_input(name: &str, t: &Tensor, io: &model::Io) -> Result<(), String> {
    if !name.is_empty() && name != io.name {
        return Err(format!(
            "input `{name}` given where the model takes `{}`",
            io.name
        ));
    }
    let got = format!("{} {:?}", model::dtype_name(t.datum_type()), t.shape());
    if let Some(dt) = io.datum_type {
        if dt.unquantized() != t.datum_type() {
            return Err(format!("input {io}: got {got}"));
        }
    }
    if let Some(dims) = &io.shape {
        let fits = dims.len() == t.rank()
            && dims.iter().zip(t.shape()).all(|(d, n)| {
                match d.as_deref().map(str::parse::<usize>) {
                    Some(Ok(d)) => d == *n,
                    _ => true,
                }
            });
        if !fits {
            return Err(format!("input {io}: got {got}"));
        }
    }
    Ok(())
}

// ---------------------------------------------------------------------------
// Exports for embedders.

extern "C" {
    /// The module's constructors, which the linker synthesises; they
    /// register tract's kernels (the `inventory` crate).
    fn __wasm_call_ctors();
}

/// Whether the constructors ran: `_start` runs them before `main`.
static CONSTRUCTED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Runs the constructors once, for a host that calls the exports without
/// `_start` (the linker does not do it for them).
fn construct() {
    if !CONSTRUCTED.swap(true, std::sync::atomic::Ordering::Relaxed) {
        // Safety: they run once per instance, before anything reads what
        // they set up.
        unsafe { __wasm_call_ctors() }
    }
}

const ALIGN: usize = 8;

fn layout(len: usize) -> Option<std::alloc::Layout> {
    std::alloc::Layout::from_size_align(len, ALIGN).ok()
}

/// Allocates `len` bytes (8-byte aligned); 0 if it cannot.
#[no_mangle]
pub extern "C" fn alloc(len: usize) -> *mut u8 {
    construct();
    match layout(len) {
        Some(_) if len == 0 => ALIGN as *mut u8,
        // Safety: the layout has a non-zero size.
        Some(l) => unsafe { std::alloc::alloc(l) },
        None => std::ptr::null_mut(),
    }
}

/// Frees what [`alloc`] (or a response of [`infer`] or [`info`]) returned.
///
/// # Safety
/// `ptr` and `len` are those of one such allocation, not yet freed.
#[no_mangle]
pub unsafe extern "C" fn dealloc(ptr: *mut u8, len: usize) {
    if let (Some(l), false) = (layout(len), len == 0 || ptr.is_null()) {
        unsafe { std::alloc::dealloc(ptr, l) }
    }
}

/// A response buffer, returned as `(ptr << 32) | len`.
fn respond(bytes: &[u8]) -> u64 {
    let ptr = alloc(bytes.len());
    if ptr.is_null() {
        return 0;
    }
    // Safety: `ptr` has room for `bytes.len()` bytes.
    unsafe { std::ptr::copy_nonoverlapping(bytes.as_ptr(), ptr, bytes.len()) };
    ((ptr as usize as u64) << 32) | bytes.len() as u64
}

/// Runs the model on an encoded request (see the crate documentation).
///
/// # Safety
/// `ptr..ptr+len` is memory of this module.
#[no_mangle]
pub unsafe extern "C" fn infer(ptr: *const u8, len: usize) -> u64 {
    construct();
    let request: &[u8] = if len == 0 {
        &[]
    } else {
        // Safety: the caller passes a buffer of this module's memory.
        unsafe { std::slice::from_raw_parts(ptr, len) }
    };
    let result = wire::decode(request)
        .and_then(|inputs| with_engine(|e| e.run(inputs)))
        .and_then(|outputs| wire::encode(&outputs));
    match result {
        Ok(bytes) => respond(&bytes),
        Err(e) => respond(&wire::encode_error(&e)),
    }
}

/// The model's inputs and outputs, as `--info` prints them.
#[no_mangle]
pub extern "C" fn info() -> u64 {
    construct();
    match with_engine(|e| Ok(e.info())) {
        Ok(text) => {
            let mut bytes = wire::OK.to_le_bytes().to_vec();
            bytes.extend_from_slice(text.as_bytes());
            respond(&bytes)
        }
        Err(e) => respond(&wire::encode_error(&e)),
    }
}

// ---------------------------------------------------------------------------
// The command line.

const USAGE: &str = "usage: model.wasm [--info] [--repeat N] INPUT.npy... [-o OUTDIR]";

fn main() {
    CONSTRUCTED.store(true, std::sync::atomic::Ordering::Relaxed);
    if let Err(e) = cli() {
        eprintln!("error: {e}");
        std::process::exit(1);
    }
}

fn cli() -> Result<(), String> {
    let mut info = false;
    let mut repeat = 0u32;
    let mut out_dir = None;
    let mut inputs = Vec::new();
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--info" => info = true,
            "--repeat" => {
                let n = args.next().ok_or("--repeat needs a count")?;
                repeat = n.parse().map_err(|_| format!("--repeat {n}: not a count"))?;
            }
            "-o" | "--output" => {
                out_dir = Some(args.next().ok_or("-o needs a directory")?);
            }
            "-h" | "--help" => {
                println!("{USAGE}");
                return Ok(());
            }
            s if s.starts_with("--output=") => out_dir = Some(s["--output=".len()..].to_string()),
            s if s.starts_with('-') && s.len() > 1 => {
                return Err(format!("unknown option {s}\n{USAGE}"));
            }
            _ => inputs.push(arg),
        }
    }
    if info {
        print!("{}", with_engine(|e| Ok(e.info()))?);
        if inputs.is_empty() {
            return Ok(());
        }
    }
    let tensors = inputs
        .iter()
        .map(|path| {
            let bytes = std::fs::read(path).map_err(|e| format!("cannot read {path}: {e}"))?;
            npy::read(&bytes)
                .map(|t| (String::new(), t))
                .map_err(|e| format!("{path}: {e}"))
        })
        .collect::<Result<Vec<_>, String>>()?;
    let outputs = if repeat == 0 {
        with_engine(|e| e.run(tensors))?
    } else {
        // The first run loads and plans the model; the timed ones reuse it.
        let outputs = with_engine(|e| e.run(tensors.clone()))?;
        let started = std::time::Instant::now();
        for _ in 0..repeat {
            with_engine(|e| e.run(tensors.clone()))?;
        }
        let mean = started.elapsed().as_secs_f64() / f64::from(repeat);
        eprintln!("{repeat} inferences after the first: {:.1} µs each", mean * 1e6);
        outputs
    };
    match out_dir {
        Some(dir) => {
            std::fs::create_dir_all(&dir).map_err(|e| format!("cannot create {dir}: {e}"))?;
            for (name, t) in &outputs {
                let path = std::path::Path::new(&dir).join(format!("{}.npy", file_name(name)));
                let bytes = npy::write(t).map_err(|e| format!("output {name}: {e}"))?;
                std::fs::write(&path, bytes)
                    .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
                println!(
                    "{name}: {} {:?} -> {}",
                    model::dtype_name(t.datum_type()),
                    t.shape(),
                    path.display()
                );
            }
        }
        None => {
            for (name, t) in &outputs {
                println!("{name}: {}", summary(t));
            }
        }
    }
    Ok(())
}

/// An output name as a file name.
fn file_name(name: &str) -> String {
    let s: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "._-".contains(c) {
                c
            } else {
                '_'
            }
        })
        .collect();
    match s.as_str() {
        "" | "." | ".." => format!("output{s}"),
        _ => s,
    }
}

/// Type, shape, and for numbers min / max / mean and the first values.
fn summary(t: &Tensor) -> String {
    let mut s = format!("{} {:?}", model::dtype_name(t.datum_type()), t.shape());
    let Ok(plain) = npy::plain(t) else { return s };
    let Ok(values) = plain.cast_to::<f64>() else {
        return s;
    };
    let Ok(view) = values.try_as_plain_ram() else {
        return s;
    };
    let Ok(values) = view.as_slice::<f64>() else {
        return s;
    };
    if values.is_empty() {
        return s;
    }
    let (min, max, sum) = values.iter().fold(
        (f64::INFINITY, f64::NEG_INFINITY, 0.0),
        |(lo, hi, sum), v| (lo.min(*v), hi.max(*v), sum + v),
    );
    s.push_str(&format!(
        " min {min:.6} max {max:.6} mean {:.6} [{}{}]",
        sum / values.len() as f64,
        values
            .iter()
            .take(6)
            .map(|v| format!("{v:.6}"))
            .collect::<Vec<_>>()
            .join(", "),
        if values.len() > 6 { ", ..." } else { "" }
    ));
    s
}
