//! The edge build (`scripts/build-edge.sh`: `--no-default-features
//! --features edge`, profile `edge`, into target/edge): no compiler, it
//! runs what a full build compiled, from a file or from the local artifact
//! store, with the same grants, limits, exit codes and host sandbox.

mod common;
use common::*;
use std::path::{Path, PathBuf};
use std::process::Command;

/// The edge binary's size budget: Wasmtime's own minimal build of the same
/// release (3.4 MB).
const SIZE_BUDGET: u64 = 3_400_000;

fn edge() -> PathBuf {
    let p = root().join("target/edge/wasmlayer");
    assert!(
        p.exists(),
        "{} is missing: scripts/test.sh builds it (scripts/build-edge.sh)",
        p.display()
    );
    p
}

fn run_edge(cache: &Path, args: &[&str]) -> Run {
    let mut c = Command::new(edge());
    c.env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("XDG_CACHE_HOME", cache)
        .args(args)
        .stdin(std::process::Stdio::null());
    run_with(&mut c)
}

#[test]
fn the_edge_binary_is_within_its_size_budget() {
    let size = std::fs::metadata(edge()).unwrap().len();
    eprintln!("target/edge/wasmlayer: {size} bytes");
    assert!(
        size <= SIZE_BUDGET,
        "the edge binary is {size} bytes, over its {SIZE_BUDGET}-byte budget"
    );
}

/// What a full build compiled runs on the edge build, with the same grants
/// and limits; what needs compiling is refused with what to do instead.
#[test]
fn the_edge_build_runs_precompiled_code_only() {
    let t = tempdir();
    let cache = t.path().join("cache");
    let cwasm = t.path().join("hostile.cwasm");
    // Code for the full build (with WASI 0.3's async ABI) is refused clearly.
    let full = t.path().join("full.cwasm");
    let r = run(["compile", &s(&guest("hostile-p1.wasm")), "-o", &s(&full)]);
    assert_eq!(r.code, 0, "{r:?}");
    let r = run_edge(
        &cache,
        &["run", "--allow-precompiled", &s(&full), "exit", "7"],
    );
    assert_eq!(r.code, 126, "{r:?}");
    assert!(r.stderr.contains("same engine settings"), "{r:?}");
    let r = run([
        "compile",
        "--edge",
        &s(&guest("hostile-p1.wasm")),
        "-o",
        &s(&cwasm),
    ]);
    assert_eq!(r.code, 0, "{r:?}");
    let r = run_edge(
        &cache,
        &["run", "--allow-precompiled", &s(&cwasm), "exit", "7"],
    );
    assert_eq!(r.code, 7, "{r:?}");
    let r = run_edge(
        &cache,
        &[
            "run",
            "--allow-precompiled",
            "--max-memory",
            "16MiB",
            &s(&cwasm),
            "membomb",
        ],
    );
    assert_eq!(r.code, 137, "{r:?}");
    assert!(r.stderr.contains("16 MiB"), "{r:?}");
    let r = run_edge(
        &cache,
        &[
            "run",
            "--allow-precompiled",
            "--timeout",
            "200ms",
            &s(&cwasm),
            "loop",
        ],
    );
    assert_eq!(r.code, 124, "{r:?}");
    // A precompiled file is refused without --allow-precompiled.
    let r = run_edge(&cache, &["run", &s(&cwasm), "exit", "0"]);
    assert_eq!(r.code, 126, "{r:?}");
    assert!(r.stderr.contains("--allow-precompiled"), "{r:?}");
    let r = run_edge(&cache, &["run", &s(&guest("hostile-p1.wasm")), "exit", "0"]);
    assert_eq!(r.code, 2, "{r:?}");
    assert!(r.stderr.contains("without a compiler"), "{r:?}");
    assert!(r.stderr.contains("wasmlayer compile"), "{r:?}");
    // The edge build confines itself too.
    let r = run_edge(
        &cache,
        &["-v", "run", "--allow-precompiled", &s(&cwasm), "exit", "0"],
    );
    assert_eq!(r.code, 0, "{r:?}");
    assert!(
        r.stderr.contains("host sandbox: applied: Landlock"),
        "{r:?}"
    );
    // Serve, policy, componentize, compile and oci are not in this build.
    for cmd in ["serve", "policy", "componentize", "compile", "oci", "nn"] {
        let r = run_edge(&cache, &[cmd, "--help"]);
        assert_eq!(r.code, 2, "{cmd}: {r:?}");
    }
}

/// The offline artifact store: a full build fills it (`compile --store`),
/// the edge build runs from it by name or digest, without a network and
/// without compiling.
#[test]
fn the_edge_build_runs_from_the_artifact_store() {
    let t = tempdir();
    let cache = t.path().join("cache");
    let store = t.path().join("store");
    let st = s(&store);
    let r = run([
        "compile",
        "--store",
        &st,
        "--name",
        "hello",
        &s(&guest("hello-p1.wasm")),
    ]);
    assert_eq!(r.code, 0, "{r:?}");
    let digest = r.stdout.trim().to_string();
    assert!(digest.starts_with("sha256:") && digest.len() == 71, "{r:?}");
    let r = run_edge(&cache, &["run", "--store", &st, "hello"]);
    assert_eq!(r.code, 0, "{r:?}");
    assert!(r.stdout.contains("Hello"), "{r:?}");
    let r = run_edge(&cache, &["run", "--store", &st, &digest]);
    assert_eq!(r.code, 0, "{r:?}");
    assert!(r.stdout.contains("Hello"), "{r:?}");

    // A component, compiled with fuel metering for a fuel limit.
    let r = run([
        "compile",
        "--store",
        &st,
        "--name",
        "hostile",
        &s(&guest("hostile-p2.wasm")),
    ]);
    assert_eq!(r.code, 0, "{r:?}");
    let r = run_edge(&cache, &["run", "--store", &st, "hostile", "exit", "3"]);
    assert_eq!(r.code, 3, "{r:?}");
    let r = run_edge(
        &cache,
        &["run", "--store", &st, "--fuel", "100000", "hostile", "loop"],
    );
    assert_eq!(r.code, 2, "no fuel-metered code yet: {r:?}");
    assert!(r.stderr.contains("instrumented for fuel"), "{r:?}");
    assert!(r.stderr.contains("--fuel"), "{r:?}");
    let r = run(["compile", "--store", &st, "--fuel", "hostile"]);
    assert_eq!(r.code, 0, "a stored name compiles again: {r:?}");
    let r = run_edge(
        &cache,
        &["run", "--store", &st, "--fuel", "100000", "hostile", "loop"],
    );
    assert_eq!(r.code, 152, "{r:?}");

    // Names the store lacks, and damaged code, are clear errors.
    let r = run_edge(&cache, &["run", "--store", &st, "nothing"]);
    assert_eq!(r.code, 2, "{r:?}");
    assert!(r.stderr.contains("not in the artifact store"), "{r:?}");
    // The full build runs from the same store (its own code).
    let r = run(["run", "--store", &st, "hello"]);
    assert_eq!(r.code, 0, "{r:?}");
    assert!(r.stdout.contains("Hello"), "{r:?}");
    let code = store
        .join("precompiled")
        .join(format!("{}.edge.cwasm", &digest[7..]));
    let intact = std::fs::read(&code).unwrap();
    let mut bytes = intact.clone();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0xff;
    std::fs::write(&code, &bytes).unwrap();
    let r = run_edge(&cache, &["run", "--store", &st, "hello"]);
    assert_eq!(r.code, 126, "{r:?}");
    assert!(r.stderr.contains("corrupted"), "{r:?}");
    // A damaged module is never compiled; precompiled code carries its own
    // check and runs without reading the module.
    std::fs::write(&code, &intact).unwrap();
    let blob = store.join("blobs/sha256").join(&digest[7..]);
    std::fs::write(&blob, b"\0asm\x01\0\0\0").unwrap();
    let r = run_edge(&cache, &["run", "--store", &st, "hello"]);
    assert_eq!(r.code, 0, "{r:?}");
    assert!(r.stdout.contains("Hello"), "{r:?}");
    let full_code = store
        .join("precompiled")
        .join(format!("{}.cwasm", &digest[7..]));
    std::fs::remove_file(&full_code).unwrap();
    let r = run(["run", "--store", &st, "hello"]);
    assert_eq!(r.code, 2, "{r:?}");
    assert!(r.stderr.contains("not in the artifact store"), "{r:?}");
}
