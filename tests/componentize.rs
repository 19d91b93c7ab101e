//! `wasmlayer componentize`: p1 modules become p2 components that behave
//! like the modules; bad input is refused clearly.

mod common;
use common::transform::{check_example, Example, EXAMPLES};
use common::*;
use std::path::{Path, PathBuf};

fn componentize(module: &Path, out: &Path, extra: &[&str]) -> Run {
    let mut cmd = wasmlayer();
    cmd.arg("componentize")
        .arg(module)
        .arg("-o")
        .arg(out)
        .args(extra);
    run_with(&mut cmd)
}

fn kind_of(artifact: &Path) -> String {
    let r = run(["inspect", "--json", &s(artifact)]);
    assert_eq!(r.code, 0, "{r:?}");
    let v: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
    v["kind"].as_str().unwrap().to_string()
}

/// Componentizes one example and checks the component behaves like it.
fn round_trip(ex: &Example, dir: &Path) -> Vec<String> {
    let module = guest(ex.file);
    let component: PathBuf = dir.join(ex.file.replace(".wasm", ".component.wasm"));
    let r = componentize(&module, &component, &[]);
    if r.code != 0 {
        return vec![format!("{}: componentize failed: {r:?}", ex.file)];
    }
    if !r.stderr.contains("command adapter") {
        return vec![format!("{}: expected the command adapter: {r:?}", ex.file)];
    }
    if kind_of(&component) != "component" {
        return vec![format!("{}: the output is not a component", ex.file)];
    }
    check_example(
        &component,
        &Example {
            file: ex.file,
            lang: ex.lang,
            p2: true,
        },
    )
}

#[test]
fn componentized_c_and_go_behave_like_the_modules() {
    let dir = tempdir();
    let mut problems = Vec::new();
    for ex in EXAMPLES.iter().filter(|e| matches!(e.lang, "c" | "go")) {
        problems.extend(round_trip(ex, dir.path()));
    }
    assert!(
        problems.is_empty(),
        "{} problem(s):\n{}",
        problems.len(),
        problems.join("\n\n")
    );
}

#[test]
fn componentized_rust_cpp_and_assemblyscript_behave_like_the_modules() {
    let dir = tempdir();
    let mut problems = Vec::new();
    for ex in EXAMPLES
        .iter()
        .filter(|e| !e.p2 && matches!(e.lang, "rust" | "c++" | "assemblyscript"))
    {
        problems.extend(round_trip(ex, dir.path()));
    }
    assert!(
        problems.is_empty(),
        "{} problem(s):\n{}",
        problems.len(),
        problems.join("\n\n")
    );
}

/// Why the adapter's memory is reserved by default: with the adapter growing
/// memory for itself, Go's allocator overwrites the adapter's state.
#[test]
fn go_needs_the_reserved_adapter_memory() {
    let dir = tempdir();
    std::fs::write(dir.path().join("in.txt"), "go\n").unwrap();
    let grown = dir.path().join("grown.wasm");
    let r = componentize(
        &guest("transform-go.wasm"),
        &grown,
        &["--adapter-memory", "grow"],
    );
    assert_eq!(r.code, 0, "{r:?}");
    assert!(r.stderr.contains("adapter memory: grow)"), "{r:?}");
    let r = run([
        "run",
        "--dir",
        &format!("{}::/data", s(dir.path())),
        &s(&grown),
        "/data/in.txt",
        "/data/out.txt",
    ]);
    assert_eq!(r.code, 134, "expected the adapter to trap: {r:?}");
    assert!(r.stderr.contains("guest trapped"), "{r:?}");

    // C's allocator tolerates it: both placements work.
    let c = dir.path().join("c-grown.wasm");
    let r = componentize(
        &guest("transform-c.wasm"),
        &c,
        &["--adapter-memory", "grow"],
    );
    assert_eq!(r.code, 0, "{r:?}");
    let r = run([
        "run",
        "--dir",
        &format!("{}::/data", s(dir.path())),
        &s(&c),
        "/data/in.txt",
        "/data/out.txt",
    ]);
    assert_eq!(r.code, 0, "{r:?}");
    assert_eq!(
        std::fs::read_to_string(dir.path().join("out.txt")).unwrap(),
        "GO\n"
    );
}

#[test]
fn text_modules_and_reactors_are_componentized() {
    let dir = tempdir();
    let wat = dir.path().join("exit3.wat");
    std::fs::write(
        &wat,
        r#"(module
             (import "wasi_snapshot_preview1" "proc_exit" (func $exit (param i32)))
             (memory (export "memory") 1)
             (func (export "_start") (call $exit (i32.const 3))))"#,
    )
    .unwrap();
    let out = dir.path().join("exit3.wasm");
    let r = componentize(&wat, &out, &[]);
    assert_eq!(r.code, 0, "{r:?}");
    // WASI p2's exit carries success or failure only.
    let r = run(["run", &s(&out)]);
    assert_eq!(r.code, 1, "{r:?}");

    let reactor = dir.path().join("reactor.wat");
    std::fs::write(
        &reactor,
        r#"(module
             (import "wasi_snapshot_preview1" "random_get" (func (param i32 i32) (result i32)))
             (memory (export "memory") 1)
             (func (export "_initialize")))"#,
    )
    .unwrap();
    let out = dir.path().join("reactor.wasm");
    let r = componentize(&reactor, &out, &[]);
    assert_eq!(r.code, 0, "{r:?}");
    assert!(r.stderr.contains("reactor adapter"), "{r:?}");
    assert_eq!(kind_of(&out), "component");
    // A reactor has no `wasi:cli/run` to call.
    let r = run(["run", &s(&out)]);
    assert_eq!(r.code, 126, "{r:?}");
}

#[test]
fn bad_input_is_refused_and_nothing_is_written() {
    let dir = tempdir();
    let out = dir.path().join("out.wasm");
    let cases: Vec<(PathBuf, i32, &str)> = vec![
        (guest("transform-rust-p2.wasm"), 126, "already a component"),
        (dir.path().join("missing.wasm"), 127, "file not found"),
        (write(dir.path(), "garbage.wasm", b"\0asm\x01\0\0\0\x01\xff"), 126, "malformed"),
        (write(dir.path(), "text.wasm", b"hello"), 126, ""),
        (
            write(dir.path(), "env.wat", br#"(module (import "env" "log" (func)) (memory (export "memory") 1) (func (export "_start")))"#),
            126,
            "env::log",
        ),
        (write(dir.path(), "nomem.wat", br#"(module (func (export "_start")))"#), 126, "memory"),
    ];
    for (input, code, message) in cases {
        let r = componentize(&input, &out, &[]);
        assert_eq!(r.code, code, "{}: {r:?}", input.display());
        assert!(
            r.stderr.starts_with("error: "),
            "{}: {r:?}",
            input.display()
        );
        assert!(r.stderr.contains(message), "{}: {r:?}", input.display());
        assert!(
            !out.exists(),
            "{}: output written on failure",
            input.display()
        );
    }
    let r = componentize(
        &guest("transform-c.wasm"),
        &out,
        &["--adapter-memory", "sideways"],
    );
    assert_eq!(r.code, 2, "{r:?}");
}

fn write(dir: &Path, name: &str, bytes: &[u8]) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, bytes).unwrap();
    p
}

#[test]
fn modules_componentize_cannot_take_are_refused_with_the_reason() {
    let dir = tempdir();
    let out = dir.path().join("out.wasm");
    let cases: Vec<(PathBuf, &str)> = vec![
        (
            write(
                dir.path(),
                "full.wat",
                br#"(module (memory (export "memory") 65536) (func (export "_start")))"#,
            ),
            "65536 pages",
        ),
        (
            write(
                dir.path(),
                "invalid.wat",
                br#"(module (memory (export "memory") 1) (func (export "_start") i32.add))"#,
            ),
            "invalid WebAssembly module",
        ),
    ];
    for (input, message) in cases {
        let r = componentize(&input, &out, &[]);
        assert_eq!(r.code, 126, "{}: {r:?}", input.display());
        assert!(
            r.stderr.starts_with("error: ") && r.stderr.contains(message),
            "{}: {r:?}",
            input.display()
        );
        assert_eq!(r.stderr.lines().count(), 1, "{r:?}");
        assert!(!out.exists());
    }
}

#[test]
fn componentize_does_not_read_a_device_without_end() {
    let dir = tempdir();
    let out = dir.path().join("out.wasm");
    let r = componentize(Path::new("/dev/zero"), &out, &[]);
    assert_eq!(r.code, 126, "{r:?}");
    assert!(r.stderr.contains("unrecognised header"), "{r:?}");
}

#[test]
fn a_preview1_import_of_a_missing_type_is_refused_not_a_panic() {
    // 44 bytes: one function type, and a preview1 import naming type 5.
    let mut module = b"\0asm\x01\0\0\0\x01\x04\x01\x60\0\0".to_vec();
    let name = b"wasi_snapshot_preview1";
    let mut import = vec![1, name.len() as u8];
    import.extend_from_slice(name);
    import.extend_from_slice(&[1, b'x', 0, 5]);
    module.extend_from_slice(&[2, import.len() as u8]);
    module.extend_from_slice(&import);
    let dir = tempdir();
    let input = dir.path().join("bad.wasm");
    std::fs::write(&input, &module).unwrap();
    let out = dir.path().join("out.wasm");
    for extra in [&[][..], &["--adapter-memory", "grow"][..]] {
        let r = componentize(&input, &out, extra);
        assert_eq!(r.code, 126, "{r:?}");
        assert!(
            r.stderr.contains("invalid WebAssembly module") && r.stderr.contains("unknown type 5"),
            "{r:?}"
        );
        assert!(!r.stderr.contains("panicked"), "{r:?}");
        assert!(!out.exists());
    }
}
