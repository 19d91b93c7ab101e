//! Building a runtime crate for a Wasm target from a build script.
//!
//! [`Runtime::build`] runs a nested `cargo build --release --locked` for the
//! runtime, shrinks the result with `wasm-opt -Os` (when binaryen is
//! installed) and leaves it in OUT_DIR for `include_bytes!`.
//!
//! The runtime is its own cargo workspace. The nested build has its own
//! target directory, `<target>/<name>`, and runs from the runtime's directory
//! so that its `.cargo/config.toml` (target, link flags) applies. Settings of
//! the outer build are kept out of it. Cargo reruns the calling build script
//! only when the runtime's sources change.

use std::env;
use std::path::{Path, PathBuf};
use std::process::Command;

/// Binaryen features of Rust's default wasm32 code generation.
pub const RUST_WASM_FEATURES: &[&str] = &[
    "--enable-bulk-memory",
    "--enable-sign-ext",
    "--enable-mutable-globals",
    "--enable-nontrapping-float-to-int",
    "--enable-multivalue",
    "--enable-reference-types",
];

/// A runtime crate to build.
#[derive(Debug, Clone)]
pub struct Runtime<'a> {
    /// What it is called in messages, e.g. `the policy runtime`.
    pub what: &'a str,
    /// The runtime crate's directory.
    pub dir: PathBuf,
    /// The Wasm target, e.g. `wasm32-unknown-unknown`.
    pub target: &'a str,
    /// The file cargo builds, in `<target dir>/<target>/release/`.
    pub artifact: &'a str,
    /// The nested target directory, under the outer build's.
    pub target_subdir: &'a str,
    /// The file written in OUT_DIR.
    pub out_file: &'a str,
    /// Binaryen features the runtime uses, given to `wasm-opt`.
    pub wasm_opt_features: &'a [&'a str],
}

impl Runtime<'_> {
    /// Builds the runtime and returns the path of the file written in
    /// OUT_DIR. Panics (failing the build script) when the build fails.
    pub fn build(&self) -> PathBuf {
        let Runtime {
            what, dir, target, ..
        } = self;
        let out_dir = PathBuf::from(env::var_os("OUT_DIR").expect("OUT_DIR"));
        for p in ["Cargo.toml", "Cargo.lock", "src", ".cargo/config.toml"] {
            println!("cargo:rerun-if-changed={}", dir.join(p).display());
        }
        println!("cargo:rerun-if-env-changed=WASM_OPT");

        let target_dir = workspace_target_dir(&out_dir).join(self.target_subdir);
        let cargo = env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
        let mut cmd = Command::new(cargo);
        cmd.current_dir(dir)
            .arg("build")
            .arg("--release")
            .arg("--locked")
            .args(["--target", target])
            .arg("--manifest-path")
            .arg(dir.join("Cargo.toml"))
            .arg("--target-dir")
            .arg(&target_dir);
        scrub_env(&mut cmd);
        // Cargo reads the build script's stdout for instructions: keep it clean.
        cmd.stdout(std::io::stderr());
        let status = cmd
            .status()
            .unwrap_or_else(|e| panic!("cannot run cargo for {what}: {e}"));
        if !status.success() {
            panic!(
                "building {what} ({}) for {target} failed; is the target installed? \
                 (`rustup target add {target}`, or scripts/setup.sh)",
                dir.display()
            );
        }

        let raw = target_dir.join(target).join("release").join(self.artifact);
        let out = out_dir.join(self.out_file);
        let wasm_opt = env::var_os("WASM_OPT").unwrap_or_else(|| "wasm-opt".into());
        let opt = Command::new(&wasm_opt)
            .arg("-Os")
            .args(self.wasm_opt_features)
            .args(["--strip-debug", "--strip-producers"])
            .arg(&raw)
            .arg("-o")
            .arg(&out)
            .stdout(std::io::stderr())
            .status();
        match opt {
            Ok(s) if s.success() => {}
            Ok(s) => panic!("wasm-opt failed on {what} ({s})"),
            Err(e) => {
                // Without binaryen the runtime is larger, and works.
                println!(
                    "cargo:warning=wasm-opt not found ({e}); {what} is left unoptimised \
                     (install binaryen: scripts/setup.sh)"
                );
                std::fs::copy(&raw, &out).unwrap_or_else(|e| panic!("copy {what}: {e}"));
            }
        }
        out
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
