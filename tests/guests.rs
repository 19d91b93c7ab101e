//! The `transform` example in every language, run end to end under
//! `wasmlayer run`: same output, same files, same exit codes. Also: the
//! example build scripts fail clearly when a toolchain is missing.

mod common;
use common::transform::{check_example, EXAMPLES};
use common::*;
use std::path::PathBuf;

#[test]
fn every_language_behaves_the_same() {
    let mut problems = Vec::new();
    for ex in EXAMPLES {
        problems.extend(check_example(&guest(ex.file), ex));
    }
    assert!(
        problems.is_empty(),
        "{} problem(s):\n{}",
        problems.len(),
        problems.join("\n\n")
    );
}

#[test]
fn examples_are_what_they_claim() {
    for ex in EXAMPLES {
        let r = run(["inspect", "--json", &s(&guest(ex.file))]);
        assert_eq!(r.code, 0, "{r:?}");
        let v: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
        let kind = if ex.p2 { "component" } else { "module" };
        assert_eq!(v["kind"], kind, "{}", ex.file);
        // The seed figure: guest modules under 2 MB. Go's runtime is the one
        // exception, documented in docs/guests.md.
        let size = v["size"].as_u64().unwrap();
        if ex.lang != "go" {
            assert!(size < 2_000_000, "{} is {size} bytes", ex.file);
        }
    }
}

fn build_script() -> PathBuf {
    root().join("scripts/build-guests.sh")
}

/// Runs scripts/build-guests.sh GROUP with one toolchain pointed elsewhere.
fn build_without(group: &str, var: &str) -> Run {
    let out = tempdir();
    let o = std::process::Command::new("bash")
        .arg(build_script())
        .arg(group)
        .env("GUESTS_DIR", out.path())
        .env(var, "/nonexistent/toolchain/bin/tool")
        .output()
        .unwrap();
    let r = output(o);
    assert!(!out.path().join(format!("transform-{group}.wasm")).exists());
    r
}

#[test]
fn a_missing_toolchain_is_named_by_the_build_script() {
    for (group, var, what) in [
        ("go", "GO", "the Go toolchain not found"),
        (
            "c",
            "CC_WASI",
            "clang (C compiler for wasm32-wasi) not found",
        ),
        ("cpp", "WASI_SYSROOT", "wasi-libc not found"),
        ("assemblyscript", "NODE", "Node.js not found"),
    ] {
        let r = build_without(group, var);
        assert_eq!(r.code, 1, "{group}: {r:?}");
        assert!(r.stderr.contains(what), "{group}: {r:?}");
        assert!(r.stderr.contains("Run scripts/setup.sh"), "{group}: {r:?}");
    }
    let r = output(
        std::process::Command::new("bash")
            .arg(build_script())
            .arg("cobol")
            .output()
            .unwrap(),
    );
    assert_eq!(r.code, 2, "{r:?}");
    assert!(r.stderr.contains("unknown guest group `cobol`"), "{r:?}");
}
