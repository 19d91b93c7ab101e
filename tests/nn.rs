//! wasi-nn end to end: real trained models (PP-OCRv4 text detection and
//! recognition from RapidOCR's wheel, Silero VAD from silero-vad's; see
//! scripts/models.sh) run by Rust guests through ONNX Runtime, checked
//! against the same models run natively by the `onnxruntime` Python
//! package on the same inputs (tests/nn/*.py), plus grants, admission and
//! bad input.

mod common;
use common::*;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

fn model(name: &str) -> PathBuf {
    let p = root().join("target/models").join(name);
    assert!(
        p.is_file(),
        "{} is missing: run scripts/models.sh",
        p.display()
    );
    p
}

/// The inputs tests/nn/make_inputs.py makes (an image of text, a WAV of
/// speech with silences), made once per test binary.
fn inputs() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let dir = root().join("target/nn-inputs");
        let o = Command::new("python3")
            .arg(root().join("tests/nn/make_inputs.py"))
            .arg(&dir)
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        dir
    })
}

fn python(script: &str, args: &[String]) -> String {
    let o = Command::new("python3")
        .arg(root().join("tests/nn").join(script))
        .args(args)
        .output()
        .unwrap();
    assert!(
        o.status.success(),
        "{script}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8(o.stdout).unwrap()
}

fn vad_args() -> Vec<String> {
    vec![
        "run".into(),
        "--nn-graph".into(),
        format!("vad={}", s(&model("silero_vad.onnx"))),
        "--dir-ro".into(),
        format!("{}::/in", s(inputs())),
    ]
}

/// `start end` sample pairs, one per line.
fn segments(text: &str) -> Vec<(i64, i64)> {
    text.lines()
        .filter_map(|l| {
            let mut it = l.split_whitespace();
            Some((it.next()?.parse().ok()?, it.next()?.parse().ok()?))
        })
        .collect()
}

#[test]
fn voice_activity_matches_native_onnxruntime_within_a_frame() {
    let native = segments(&python(
        "vad_reference.py",
        &[
            "--model".into(),
            s(&model("silero_vad.onnx")),
            s(&inputs().join("speech.wav")),
        ],
    ));
    assert!(
        native.len() >= 2,
        "the speech has several phrases: {native:?}"
    );
    // The core module speaks the witx ABI, the component wasi:nn's WIT.
    for guest_name in ["nn-vad.wasm", "nn-vad-p2.wasm"] {
        let mut args = vad_args();
        args.extend([s(&guest(guest_name)), "/in/speech.wav".into()]);
        let r = run(&args);
        assert_eq!(r.code, 0, "{guest_name}: {r:?}");
        let ours = segments(&r.stdout);
        assert_eq!(
            ours.len(),
            native.len(),
            "{guest_name}: {r:?}\nnative: {native:?}"
        );
        for (a, b) in ours.iter().zip(&native) {
            assert!(
                (a.0 - b.0).abs() <= 512 && (a.1 - b.1).abs() <= 512,
                "{guest_name}: {ours:?} vs {native:?}"
            );
        }
    }
}

fn ocr_args(det: &str, rec: &str) -> Vec<String> {
    vec![
        "run".into(),
        "--nn-graph".into(),
        format!("det={}", s(&model(det))),
        "--nn-graph".into(),
        format!("rec={}", s(&model(rec))),
        "--dir-ro".into(),
        format!("{}::/in", s(inputs())),
        "--dir-ro".into(),
        format!("{}::/models", s(&root().join("target/models"))),
    ]
}

/// What `tests/nn/ocr_reference.py` reads in `image` with RapidOCR's own
/// pipeline on native ONNX Runtime.
fn native_ocr(image: &Path, boxes: bool) -> String {
    let mut args = vec![
        "--det".into(),
        s(&model("ch_PP-OCRv4_det_infer.onnx")),
        "--rec".into(),
        s(&model("ch_PP-OCRv4_rec_infer.onnx")),
        "--keys".into(),
        s(&model("ppocr_keys.txt")),
    ];
    if boxes {
        args.push("--boxes".into());
    }
    args.push(s(image));
    python("ocr_reference.py", &args)
}

#[test]
fn text_recognition_matches_native_onnxruntime() {
    let native = native_ocr(&inputs().join("text.png"), false);
    let expected = std::fs::read_to_string(inputs().join("text.txt")).unwrap();
    assert_eq!(native.trim(), expected.trim(), "the text that was rendered");
    for guest_name in ["nn-ocr.wasm", "nn-ocr-p2.wasm"] {
        let mut args = ocr_args("ch_PP-OCRv4_det_infer.onnx", "ch_PP-OCRv4_rec_infer.onnx");
        args.insert(1, "-v".into());
        args.extend([
            s(&guest(guest_name)),
            "--keys".into(),
            "/models/ppocr_keys.txt".into(),
            "/in/text.png".into(),
        ]);
        let r = run(&args);
        assert_eq!(r.code, 0, "{guest_name}: {r:?}");
        assert_eq!(r.stdout, native, "{guest_name}");
        // `-v` meters the inference: two models, at least two inferences.
        assert!(
            r.stderr.contains("wasi-nn") && r.stderr.contains("models=2"),
            "{guest_name}: {}",
            r.stderr
        );
    }
}

#[test]
fn a_directory_grant_serves_its_models_by_name() {
    let mut args = vec![
        "run".into(),
        "--nn-dir".into(),
        s(&root().join("target/models")),
        "--dir-ro".into(),
        format!("{}::/in", s(inputs())),
    ];
    args.extend([
        s(&guest("nn-vad.wasm")),
        "--model".into(),
        "silero_vad".into(),
        "/in/speech.wav".into(),
    ]);
    let r = run(&args);
    assert_eq!(r.code, 0, "{r:?}");
    assert!(!segments(&r.stdout).is_empty(), "{r:?}");
}

#[test]
fn no_grant_no_model() {
    // Without a grant the guest's load fails with the wasi-nn error; a
    // name outside the grant is not a host path.
    let r = run([
        "run".into(),
        "--dir-ro".into(),
        format!("{}::/in", s(inputs())),
        s(&guest("nn-vad.wasm")),
        "--model".into(),
        s(&model("silero_vad.onnx")),
        "/in/speech.wav".into(),
    ]);
    assert_ne!(r.code, 0, "{r:?}");
    assert!(r.stdout.is_empty(), "{r:?}");
    assert!(r.stderr.to_lowercase().contains("not"), "{r:?}");
}

#[test]
fn a_policy_decides_by_the_models_digest() {
    let dir = tempdir();
    let digest = {
        use sha2::Digest;
        let bytes = std::fs::read(model("silero_vad.onnx")).unwrap();
        let d = sha2::Sha256::digest(&bytes);
        d.iter().map(|b| format!("{b:02x}")).collect::<String>()
    };
    let policy = dir.path().join("models.rego");
    std::fs::write(
        &policy,
        format!(
            r#"package wasmlayer.admission

default allow := false

allow if count(reasons) == 0

reasons contains sprintf("model %s is not approved", [g.name]) if {{
	some g in input.requested.nn_graphs
	g.sha256 != "{digest}"
}}
"#
        ),
    )
    .unwrap();
    let mut args = vad_args();
    args.extend(["--policy".into(), s(&policy)]);
    let mut ok = args.clone();
    ok.extend([s(&guest("nn-vad.wasm")), "/in/speech.wav".into()]);
    let r = run(&ok);
    assert_eq!(r.code, 0, "{r:?}");
    // Another model under the same name: denied with the reason.
    let mut other = args.clone();
    other[2] = format!("vad={}", s(&model("ch_PP-OCRv4_det_infer.onnx")));
    other.extend([s(&guest("nn-vad.wasm")), "/in/speech.wav".into()]);
    let r = run(&other);
    assert_eq!(r.code, 77, "{r:?}");
    assert!(r.stderr.contains("model vad is not approved"), "{r:?}");
}

#[test]
fn bad_models_tensors_and_libraries_are_clear_errors() {
    let wav = "/in/speech.wav".to_string();
    // Not ONNX.
    let mut args = vad_args();
    args[2] = format!("vad={}", s(&guest("hello-p1.wasm")));
    args.extend([s(&guest("nn-vad.wasm")), wav.clone()]);
    let r = run(&args);
    assert_ne!(r.code, 0, "{r:?}");
    assert!(r.stderr.contains("cannot load graph vad"), "{r:?}");

    // A missing model file: refused before the guest runs.
    let mut args = vad_args();
    args[2] = "vad=/nonexistent/model.onnx".into();
    args.extend([s(&guest("nn-vad.wasm")), wav.clone()]);
    let r = run(&args);
    assert_eq!(r.code, 2, "{r:?}");
    assert!(
        r.stderr.contains("/nonexistent/model.onnx: no such file"),
        "{r:?}"
    );

    // A tensor of the wrong shape: the VAD's audio given to the detector.
    let mut args = vad_args();
    args[2] = format!("vad={}", s(&model("ch_PP-OCRv4_det_infer.onnx")));
    args.extend([s(&guest("nn-vad.wasm")), wav.clone()]);
    let r = run(&args);
    assert_ne!(r.code, 0, "{r:?}");

    // A model larger than the memory limit.
    let mut args = vad_args();
    args.extend(["--max-memory".into(), "2MiB".into()]);
    args.extend([s(&guest("nn-vad.wasm")), wav.clone()]);
    let r = run(&args);
    assert_ne!(r.code, 0, "{r:?}");
    assert!(
        r.stderr.contains("larger than the guest's memory limit"),
        "{r:?}"
    );

    // No ONNX Runtime: where it looked and how to point at one.
    let mut args = vad_args();
    args.extend([s(&guest("nn-vad.wasm")), wav.clone()]);
    let r = run_with(
        wasmlayer()
            .args(&args)
            .env("WASMLAYER_ORT_LIB", "/nonexistent/libonnxruntime.so"),
    );
    assert_eq!(r.code, 2, "{r:?}");
    assert!(
        r.stderr
            .contains("WASMLAYER_ORT_LIB names /nonexistent/libonnxruntime.so"),
        "{r:?}"
    );
    let r = run_with(wasmlayer().args(&args).env("PATH", "/nonexistent"));
    assert_eq!(r.code, 2, "{r:?}");
    assert!(
        r.stderr.contains("not found; looked in") && r.stderr.contains("WASMLAYER_ORT_LIB"),
        "{r:?}"
    );
}

#[test]
fn gpu_without_cuda_is_an_error_unless_the_cpu_fallback_is_asked_for() {
    // A target travels with `load` (bytes the guest read from a granted
    // model), not with `load_by_name`.
    for guest_name in ["nn-vad.wasm", "nn-vad-p2.wasm"] {
        let gpu = |extra: &[&str]| {
            let mut args = vad_args();
            args.extend([
                "--dir-ro".into(),
                format!("{}::/models", s(&root().join("target/models"))),
            ]);
            args.extend(extra.iter().map(|a| a.to_string()));
            args.extend([
                s(&guest(guest_name)),
                "--gpu".into(),
                "--model-file".into(),
                "/models/silero_vad.onnx".into(),
                "/in/speech.wav".into(),
            ]);
            run(&args)
        };
        let r = gpu(&[]);
        assert_ne!(r.code, 0, "{guest_name}: {r:?}");
        assert!(
            r.stderr
                .contains("GPU execution requested, no CUDA provider available"),
            "{guest_name}: {r:?}"
        );
        let r = gpu(&["--nn-fallback", "cpu"]);
        assert_eq!(r.code, 0, "{guest_name}: {r:?}");
        assert!(!segments(&r.stdout).is_empty(), "{guest_name}: {r:?}");
    }
}

#[test]
fn nn_pack_makes_a_module_that_runs_without_wasi_nn() {
    let dir = tempdir();
    let out = dir.path().join("vad.wasm");
    let r = run([
        "nn".into(),
        "pack".into(),
        s(&model("silero_vad.onnx")),
        "-o".into(),
        s(&out),
    ]);
    assert_eq!(r.code, 0, "{r:?}");
    // No wasi-nn grant: the model is inside.
    let r = run(["run".into(), s(&out), "--info".into()]);
    assert_eq!(r.code, 0, "{r:?}");
    for name in ["input", "state", "sr", "output", "stateN"] {
        assert!(r.stdout.contains(name), "{r:?}");
    }
    // As a component: the same command line as `wasi:cli/run`, and the
    // WIT world `nn wit` prints exported (crates/nn/tests/pack.rs calls it).
    let component = dir.path().join("vad.component.wasm");
    let r = run([
        "nn".into(),
        "pack".into(),
        "--component".into(),
        s(&model("silero_vad.onnx")),
        "-o".into(),
        s(&component),
    ]);
    assert_eq!(r.code, 0, "{r:?}");
    let r = run(["inspect".into(), s(&component)]);
    assert!(r.stdout.contains("component"), "{r:?}");
    assert!(r.stdout.contains("wasmlayer:nn/model@0.1.0"), "{r:?}");
    let r = run(["run".into(), s(&component), "--info".into()]);
    assert_eq!(r.code, 0, "{r:?}");
    assert!(r.stdout.contains("stateN"), "{r:?}");
    let r = run(["nn", "wit"]);
    assert!(
        r.stdout.contains("package wasmlayer:nn@0.1.0;") && r.stdout.contains("world packed-model"),
        "{r:?}"
    );

    // Not a model: a clear error naming the file, nothing written.
    let bad = dir.path().join("bad.wasm");
    let r = run([
        "nn".into(),
        "pack".into(),
        s(&guest("hello-p1.wasm")),
        "-o".into(),
        s(&bad),
    ]);
    assert_eq!(r.code, 126, "{r:?}");
    assert!(
        r.stderr.contains("hello-p1.wasm") && r.stderr.contains("not an ONNX model"),
        "{r:?}"
    );
    assert!(!bad.exists());
}

#[test]
fn serve_reads_text_over_http_and_meters_the_inference() {
    use common::serve::*;
    let dir = tempdir();
    let det = model("ch_PP-OCRv4_det_infer.onnx");
    let rec = model("ch_PP-OCRv4_rec_infer.onnx");
    let manifest = write_manifest(
        dir.path(),
        &format!(
            r#"
[server]
pool_size = 16
max_instance_memory = "256MiB"

[[route]]
path = "/ocr"
component = "{ocr}"
nn_graphs = {{ det = "{det}", rec = "{rec}" }}
dirs_ro = ["{models}::/models"]
max_memory = "256MiB"
timeout = "60s"

[[route]]
path = "/ungranted"
component = "{ocr}"
dirs_ro = ["{models}::/models"]
max_memory = "256MiB"
"#,
            ocr = s(&guest("http-ocr.wasm")),
            det = s(&det),
            rec = s(&rec),
            models = s(&root().join("target/models")),
        ),
    );
    let server = Server::start(&[&s(&manifest)]);
    let png = std::fs::read(inputs().join("text.png")).unwrap();

    let (status, body) = post(&server.url("/ocr"), &png);
    let text = String::from_utf8_lossy(&body).to_string();
    assert_eq!(status, 200, "{text}");
    assert_eq!(text, native_ocr(&inputs().join("text.png"), false));
    let (status, body) = post(&server.url("/ocr?boxes"), &png);
    assert_eq!(status, 200);
    assert_eq!(
        String::from_utf8_lossy(&body),
        native_ocr(&inputs().join("text.png"), true)
    );

    // Not a PNG, the wrong method, no grant: each answered with the reason.
    let (status, body) = post(&server.url("/ocr"), b"GIF89a not a png");
    assert_eq!(status, 400, "{}", String::from_utf8_lossy(&body));
    assert!(String::from_utf8_lossy(&body).contains("PNG"));
    let (status, headers, _) = get(&server.url("/ocr"));
    assert_eq!(status, 405);
    assert!(headers.to_lowercase().contains("allow: post"), "{headers}");
    let (status, body) = post(&server.url("/ungranted"), &png);
    let why = String::from_utf8_lossy(&body);
    assert_eq!(status, 500, "{why}");
    assert!(why.contains("cannot load graph det"), "{why}");

    // The access log meters each request's inference; the metrics sum it.
    let model_bytes =
        std::fs::metadata(&det).unwrap().len() + std::fs::metadata(&rec).unwrap().len();
    // (A request's line is written as its record drops: wait for both.)
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let ocr = loop {
        let ocr: Vec<_> = server
            .access_log()
            .into_iter()
            .filter(|l| l["route"] == "/ocr" && l["status"] == 200)
            .collect();
        if ocr.len() >= 2 || std::time::Instant::now() > deadline {
            break ocr;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    };
    assert_eq!(ocr.len(), 2, "{ocr:?}");
    let mut inferences = 0;
    for line in &ocr {
        let n = line["nn_inferences"].as_u64().unwrap_or(0);
        // One detection and at least one recognition batch.
        assert!(n >= 2, "{line}");
        assert!(line["nn_time_us"].as_u64().unwrap_or(0) > 0, "{line}");
        assert_eq!(line["nn_model_bytes"].as_u64(), Some(model_bytes), "{line}");
        inferences += n;
    }
    let m = server.metrics();
    assert_eq!(
        metric(&m, r#"wasmlayer_nn_inferences_total{route="/ocr"}"#),
        Some(inferences as f64),
        "{m}"
    );
    assert_eq!(
        metric(&m, r#"wasmlayer_request_nn_seconds_count{route="/ocr"}"#),
        Some(2.0),
        "{m}"
    );
    assert!(
        metric(&m, r#"wasmlayer_request_nn_model_bytes_sum{route="/ocr"}"#)
            == Some(2.0 * model_bytes as f64),
        "{m}"
    );
}
