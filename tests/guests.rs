//! The `transform` example in every language, run end to end under
//! `wasmlayer run`: same output, same files, same exit codes. Also: the
//! example build scripts fail clearly when a toolchain is missing.

mod common;
use common::transform::{check_example, EXAMPLES};
use common::*;
use std::path::{Path, PathBuf};

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

/// Every bundled guest besides `transform`: its kind and WASI release, as
/// `inspect` tells them from the bytes, and its size under the seed's 2 MB.
const GUESTS: &[(&str, &str, &str)] = &[
    ("hello-p1.wasm", "module", "p1"),
    ("hello-p2.wasm", "component", "p2"),
    ("hello-p3.wasm", "component", "p3"),
    ("hostile-p1.wasm", "module", "p1"),
    ("hostile-p2.wasm", "component", "p2"),
    ("http-hello.wasm", "component", "p2"),
    ("http-echo.wasm", "component", "p2"),
    ("http-upstream.wasm", "component", "p2"),
    ("http-hostile.wasm", "component", "p2"),
    ("http-hello-p3.wasm", "component", "p3"),
];

#[test]
fn every_guest_is_the_kind_it_claims() {
    for (file, kind, wasi) in GUESTS {
        let r = run(["inspect", "--json", &s(&guest(file))]);
        assert_eq!(r.code, 0, "{r:?}");
        let v: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
        assert_eq!(
            (v["kind"].as_str(), v["wasi"].as_str()),
            (Some(*kind), Some(*wasi)),
            "{file}"
        );
        let size = v["size"].as_u64().unwrap();
        assert!(size < 2_000_000, "{file} is {size} bytes");
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

/// A group built once is copied from the machine's guest cache into
/// another guests directory (a fresh clone), byte for byte, instead of
/// being built again; a different toolchain is a different entry.
#[test]
fn built_guests_are_reused_by_content_hash() {
    let cache = tempdir();
    let build = |dir: &Path, env: &[(&str, &str)]| {
        let mut c = std::process::Command::new("bash");
        c.arg(build_script())
            .arg("c")
            .env("GUESTS_DIR", dir)
            .env("WASMLAYER_GUEST_CACHE", cache.path());
        for (k, v) in env {
            c.env(k, v);
        }
        let r = output(c.output().unwrap());
        assert_eq!(r.code, 0, "{r:?}");
        r.stdout
    };
    let (first, second) = (tempdir(), tempdir());
    assert!(build(first.path(), &[]).contains("building c guests"));
    let out = build(second.path(), &[]);
    assert!(out.contains("c guests from the cache"), "{out}");
    let read = |d: &Path| std::fs::read(d.join("transform-c.wasm")).unwrap();
    assert_eq!(read(first.path()), read(second.path()));
    // Another compiler (here the same one by another name): built again.
    let clang = std::process::Command::new("sh")
        .args(["-c", "command -v clang"])
        .output()
        .unwrap();
    let clang = String::from_utf8_lossy(&clang.stdout).trim().to_string();
    let third = tempdir();
    let out = build(third.path(), &[("CC_WASI", &clang)]);
    assert!(out.contains("building c guests"), "{out}");
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
