//! Builds the policy runtime (crates/policy-runtime) for
//! wasm32-unknown-unknown with a nested cargo, shrinks it with
//! `wasm-opt -Os`, and leaves it in OUT_DIR for `include_bytes!`
//! (`wasm_build::RUNTIME_WASM`).
//!
//! The nested build has its own target directory, `<target>/policy-runtime`,
//! and runs from the runtime's directory so that its `.cargo/config.toml`
//! (link flags) applies. Settings of the outer build are kept out of it.
//! Cargo reruns this script only when the runtime's sources change.

use std::env;
use std::path::{Path, PathBuf};
use std::process::Command;

const TARGET: &str = "wasm32-unknown-unknown";

/// Binaryen features the runtime uses (Rust's defaults for the target).
const WASM_OPT_FEATURES: &[&str] = &[
    "--enable-bulk-memory",
    "--enable-sign-ext",
    "--enable-mutable-globals",
    "--enable-nontrapping-float-to-int",
    "--enable-multivalue",
    "--enable-reference-types",
];

fn main() {
    let manifest_dir =
        PathBuf::from(env::var_os("CARGO_MANIFEST_DIR").expect("CARGO_MANIFEST_DIR"));
    let runtime_dir = manifest_dir.join("..").join("policy-runtime");
    let out_dir = PathBuf::from(env::var_os("OUT_DIR").expect("OUT_DIR"));

    for p in ["Cargo.toml", "Cargo.lock", "src", ".cargo/config.toml"] {
        println!("cargo:rerun-if-changed={}", runtime_dir.join(p).display());
    }
    println!("cargo:rerun-if-env-changed=WASM_OPT");

    let target_dir = workspace_target_dir(&out_dir).join("policy-runtime");
    let cargo = env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut cmd = Command::new(cargo);
    cmd.current_dir(&runtime_dir)
        .arg("build")
        .arg("--release")
        .arg("--locked")
        .args(["--target", TARGET])
        .arg("--manifest-path")
        .arg(runtime_dir.join("Cargo.toml"))
        .arg("--target-dir")
        .arg(&target_dir);
    scrub_env(&mut cmd);
    // Cargo reads this script's stdout for instructions: keep it clean.
    cmd.stdout(std::io::stderr());
    let status = cmd
        .status()
        .unwrap_or_else(|e| panic!("cannot run cargo for the policy runtime: {e}"));
    if !status.success() {
        panic!(
            "building the policy runtime (crates/policy-runtime) for {TARGET} failed; \
             is the target installed? (`rustup target add {TARGET}`, or scripts/setup.sh)"
        );
    }

    let raw = target_dir
        .join(TARGET)
        .join("release")
        .join("wasmlayer_policy_runtime.wasm");
    let out = out_dir.join("policy-runtime.wasm");
    let wasm_opt = env::var_os("WASM_OPT").unwrap_or_else(|| "wasm-opt".into());
    let opt = Command::new(&wasm_opt)
        .arg("-Os")
        .args(WASM_OPT_FEATURES)
        .args(["--strip-debug", "--strip-producers"])
        .arg(&raw)
        .arg("-o")
        .arg(&out)
        .stdout(std::io::stderr())
        .status();
    match opt {
        Ok(s) if s.success() => {}
        Ok(s) => panic!("wasm-opt failed on the policy runtime ({s})"),
        Err(e) => {
            // Without binaryen the runtime is about 15% larger, and works.
            println!(
                "cargo:warning=wasm-opt not found ({e}); the policy runtime is left unoptimised \
                 (install binaryen: scripts/setup.sh)"
            );
            std::fs::copy(&raw, &out).expect("copy the policy runtime");
        }
    }
}

/// The outer build's target directory: the nearest ancestor of OUT_DIR that
/// cargo marked with CACHEDIR.TAG.
fn workspace_target_dir(out_dir: &Path) -> PathBuf {
    out_dir
        .ancestors()
        .find(|p| p.join("CACHEDIR.TAG").is_file())
        .map(Path::to_path_buf)
        // <target>/<profile>/build/<pkg>-<hash>/out
        .unwrap_or_else(|| out_dir.join("../../../..").to_path_buf())
}

/// Keeps the outer build's settings (flags, target, profile, package
/// variables) out of the nested cargo; keeps what it needs to reach the
/// registry and to share the jobserver.
fn scrub_env(cmd: &mut Command) {
    const KEEP: &[&str] = &[
        "CARGO_HOME",
        "CARGO_MAKEFLAGS",
        "CARGO_BUILD_JOBS",
        "CARGO_NET_",
        "CARGO_HTTP_",
        "CARGO_REGISTRIES_",
        "CARGO_REGISTRY_",
        "CARGO_TERM_",
    ];
    const DROP: &[&str] = &[
        "RUSTFLAGS",
        "RUSTDOCFLAGS",
        "RUSTC_WORKSPACE_WRAPPER",
        "RUSTC_LINKER",
        "OUT_DIR",
        "TARGET",
        "HOST",
        "PROFILE",
        "OPT_LEVEL",
        "DEBUG",
        "NUM_JOBS",
    ];
    for (key, _) in env::vars_os() {
        let Some(k) = key.to_str() else { continue };
        let cargo_var = k.starts_with("CARGO_") && !KEEP.iter().any(|p| k.starts_with(p));
        if cargo_var || DROP.contains(&k) || k.starts_with("DEP_") {
            cmd.env_remove(k);
        }
    }
}
