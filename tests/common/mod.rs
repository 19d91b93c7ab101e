//! Shared helpers for the end-to-end tests: they drive the real
//! `wasmlayer` binary on real guests built by scripts/build-guests.sh.
#![allow(dead_code)]

pub mod registry;
pub mod serve;
pub mod server;
pub mod transform;

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

pub fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .unwrap()
}

/// A guest artifact built by scripts/build-guests.sh.
pub fn guest(name: &str) -> PathBuf {
    let dir = std::env::var_os("WASMLAYER_GUESTS")
        .map(PathBuf::from)
        .unwrap_or_else(|| root().join("target/guests"));
    let p = dir.join(name);
    assert!(
        p.exists(),
        "guest {} is missing: run scripts/build-guests.sh first",
        p.display()
    );
    p
}

pub fn fixture(name: &str) -> PathBuf {
    root().join("tests/fixtures").join(name)
}

/// A cache directory shared by all tests of this run: filling it
/// concurrently is part of what the cache must survive.
pub fn shared_cache() -> PathBuf {
    root().join("target/test-cache")
}

/// The binary with a clean environment and the shared cache.
pub fn wasmlayer() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_wasmlayer"));
    c.env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("XDG_CACHE_HOME", shared_cache())
        .stdin(Stdio::null());
    c
}

pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    /// Asserts the error output is a clear message, never a panic.
    pub fn no_panic(&self) -> &Self {
        assert!(
            !self.stderr.contains("internal error"),
            "host panicked:\n{}",
            self.stderr
        );
        assert_ne!(self.code, 101, "host panicked:\n{}", self.stderr);
        self
    }
}

impl std::fmt::Debug for Run {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "exit {}\n--- stdout\n{}--- stderr\n{}",
            self.code, self.stdout, self.stderr
        )
    }
}

pub fn output(o: Output) -> Run {
    Run {
        code: o.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&o.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&o.stderr).into_owned(),
    }
}

/// Runs `wasmlayer ARGS...` to completion.
pub fn run<I, S>(args: I) -> Run
where
    I: IntoIterator<Item = S>,
    S: AsRef<std::ffi::OsStr>,
{
    run_with(wasmlayer().args(args))
}

pub fn run_with(cmd: &mut Command) -> Run {
    let r = output(cmd.output().expect("spawn wasmlayer"));
    r.no_panic();
    r
}

/// A fresh temporary directory, removed on drop.
pub fn tempdir() -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix("wasmlayer-test")
        .tempdir()
        .unwrap()
}

pub fn s(p: &Path) -> String {
    p.to_str().unwrap().to_string()
}
