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
//!
//! A built runtime is also kept in a cache shared by every checkout and
//! target directory, named by the digest of everything that makes it (the
//! runtime's files, the toolchain, wasm-opt, the target and the settings):
//! `$WASMLAYER_BUILD_CACHE`, else `$XDG_CACHE_HOME/wasmlayer/runtimes`, else
//! `~/.cache/wasmlayer/runtimes`. A fresh clone with the same inputs takes
//! it from there instead of building tract or regorus again (minutes).

use sha2::{Digest, Sha256};
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
        for p in [
            "Cargo.toml",
            "Cargo.lock",
            "src",
            "wit",
            ".cargo/config.toml",
        ] {
            // Only paths that exist: while a watched path is missing, cargo
            // reruns the build script (and rebuilds its crate) every time.
            if dir.join(p).exists() {
                println!("cargo:rerun-if-changed={}", dir.join(p).display());
            }
        }
        println!("cargo:rerun-if-env-changed=WASM_OPT");
        let out = out_dir.join(self.out_file);
        let wasm_opt = env::var_os("WASM_OPT").unwrap_or_else(|| "wasm-opt".into());

        let cached = cache_dir().map(|d| d.join(format!("{}.wasm", self.digest(&wasm_opt))));
        if let Some(c) = &cached {
            if std::fs::copy(c, &out).is_ok() {
                eprintln!("{what}: from the cache ({})", c.display());
                return out;
            }
        }

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
                // Not kept: with binaryen installed later, it would stand in
                // for the optimised one.
                return out;
            }
        }
        if let Some(c) = &cached {
            if let Err(e) = keep(&out, c) {
                println!("cargo:warning=cannot keep {what} in {}: {e}", c.display());
            }
        }
        out
    }

    /// The digest of everything the built runtime depends on: the
    /// runtime's files (its own target directory aside), the toolchain the
    /// nested cargo resolves in its directory, wasm-opt's version, and this
    /// build's settings.
    fn digest(&self, wasm_opt: &std::ffi::OsStr) -> String {
        let mut h = Sha256::new();
        let mut field = |bytes: &[u8]| {
            h.update((bytes.len() as u64).to_le_bytes());
            h.update(bytes);
        };
        field(b"wasmlayer runtime cache 1");
        for s in [self.target, self.artifact] {
            field(s.as_bytes());
        }
        for f in self.wasm_opt_features {
            field(f.as_bytes());
        }
        let cargo = env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
        for (program, arg) in [
            (cargo.as_os_str(), "-vV"),
            ("rustc".as_ref(), "-vV"),
            (wasm_opt, "--version"),
        ] {
            let mut cmd = Command::new(program);
            cmd.current_dir(&self.dir).arg(arg);
            scrub_env(&mut cmd);
            // A tool that cannot say its version counts as its own value.
            match cmd.output() {
                Ok(o) => field(&o.stdout),
                Err(_) => field(b"(none)"),
            }
        }
        let mut files = Vec::new();
        collect_files(&self.dir, &self.dir, &mut files);
        files.sort();
        for rel in files {
            field(rel.as_bytes());
            field(&std::fs::read(self.dir.join(&rel)).unwrap_or_default());
        }
        h.finalize().iter().map(|b| format!("{b:02x}")).collect()
    }
}

/// Where built runtimes are kept, if a home for it is known.
fn cache_dir() -> Option<PathBuf> {
    if let Some(d) = env::var_os("WASMLAYER_BUILD_CACHE") {
        return Some(PathBuf::from(d));
    }
    let base = env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .or_else(|| env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))?;
    Some(base.join("wasmlayer").join("runtimes"))
}

/// Copies `from` to `to` through a temporary file and a rename, so that a
/// concurrent build never reads half a runtime.
fn keep(from: &Path, to: &Path) -> std::io::Result<()> {
    let dir = to.parent().expect("a file in a directory");
    std::fs::create_dir_all(dir)?;
    let tmp = dir.join(format!(
        ".{}.{}",
        std::process::id(),
        to.file_name().unwrap().to_string_lossy()
    ));
    std::fs::copy(from, &tmp)?;
    std::fs::rename(&tmp, to).inspect_err(|_| {
        let _ = std::fs::remove_file(&tmp);
    })
}

/// Every file below `dir`, as a path relative to `root`; a `target`
/// directory at the top is left out.
fn collect_files(root: &Path, dir: &Path, out: &mut Vec<String>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        let p = e.path();
        if dir == root && e.file_name() == "target" {
            continue;
        }
        match e.file_type() {
            Ok(t) if t.is_dir() => collect_files(root, &p, out),
            Ok(t) if t.is_file() => {
                if let Ok(rel) = p.strip_prefix(root) {
                    out.push(rel.to_string_lossy().into_owned());
                }
            }
            _ => {}
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
