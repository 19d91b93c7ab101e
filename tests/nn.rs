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
    let mut args = vad_args();
    args.extend([s(&guest("nn-vad.wasm")), "/in/speech.wav".into()]);
    let r = run(&args);
    assert_eq!(r.code, 0, "{r:?}");
    let ours = segments(&r.stdout);
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
    assert_eq!(ours.len(), native.len(), "{r:?}\nnative: {native:?}");
    for (a, b) in ours.iter().zip(&native) {
        assert!(
            (a.0 - b.0).abs() <= 512 && (a.1 - b.1).abs() <= 512,
            "{ours:?} vs {native:?}"
        );
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

#[test]
fn text_recognition_matches_native_onnxruntime() {
    let mut args = ocr_args("ch_PP-OCRv4_det_infer.onnx", "ch_PP-OCRv4_rec_infer.onnx");
    args.insert(1, "-v".into());
    args.extend([
        s(&guest("nn-ocr.wasm")),
        "--keys".into(),
        "/models/ppocr_keys.txt".into(),
        "/in/text.png".into(),
    ]);
    let r = run(&args);
    assert_eq!(r.code, 0, "{r:?}");
    let native = python(
        "ocr_reference.py",
        &[
            "--det".into(),
            s(&model("ch_PP-OCRv4_det_infer.onnx")),
            "--rec".into(),
            s(&model("ch_PP-OCRv4_rec_infer.onnx")),
            "--keys".into(),
            s(&model("ppocr_keys.txt")),
            s(&inputs().join("text.png")),
        ],
    );
    assert_eq!(r.stdout, native);
    let expected = std::fs::read_to_string(inputs().join("text.txt")).unwrap();
    assert_eq!(
        r.stdout.trim(),
        expected.trim(),
        "the text that was rendered"
    );
    // `-v` meters the inference: two models, at least two inferences.
    assert!(
        r.stderr.contains("wasi-nn") && r.stderr.contains("models=2"),
        "{}",
        r.stderr
    );
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
    let gpu = |extra: &[&str]| {
        let mut args = vad_args();
        args.extend([
            "--dir-ro".into(),
            format!("{}::/models", s(&root().join("target/models"))),
        ]);
        args.extend(extra.iter().map(|a| a.to_string()));
        args.extend([
            s(&guest("nn-vad.wasm")),
            "--gpu".into(),
            "--model-file".into(),
            "/models/silero_vad.onnx".into(),
            "/in/speech.wav".into(),
        ]);
        run(&args)
    };
    let r = gpu(&[]);
    assert_ne!(r.code, 0, "{r:?}");
    assert!(
        r.stderr
            .contains("GPU execution requested, no CUDA provider available"),
        "{r:?}"
    );
    let r = gpu(&["--nn-fallback", "cpu"]);
    assert_eq!(r.code, 0, "{r:?}");
    assert!(!segments(&r.stdout).is_empty(), "{r:?}");
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
