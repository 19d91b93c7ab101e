//! The store and linker builder as an embedder uses it: an extension that
//! adds an import and per-store state from the grant, `run_async` on the
//! embedder's Tokio runtime with stdio given as files, and `load_bytes`
//! through the compile cache.

use std::sync::Arc;
use std::time::Duration;
use wasmlayer_core::runtime::CacheOutcome;
use wasmlayer_core::{
    Capabilities, Error, Extension, Interrupt, Limits, LoadOptions, ModuleState, RunOptions,
    Runtime, Setup, Stdio, Stream,
};

/// Gives guests `ext.granted_env() -> i32`: how many environment variables
/// their grant holds, kept in the store when it is made.
struct GrantedEnv;

struct Count(i32);

impl Extension for GrantedEnv {
    fn name(&self) -> &'static str {
        "granted-env"
    }

    fn prepare(&self, setup: &mut Setup<'_>) -> wasmlayer_core::Result<()> {
        let n = setup.grant.capabilities.env.len() as i32;
        setup.insert(Count(n));
        Ok(())
    }

    fn link_module(&self, linker: &mut wasmtime::Linker<ModuleState>) -> wasmtime::Result<()> {
        linker.func_wrap(
            "ext",
            "granted_env",
            |mut caller: wasmtime::Caller<'_, ModuleState>| {
                caller.data_mut().extension::<Count>().map_or(-1, |c| c.0)
            },
        )?;
        Ok(())
    }
}

const USES_EXTENSION: &str = r#"(module
  (import "ext" "granted_env" (func $n (result i32)))
  (func (export "run") (result i32) (call $n)))"#;

const HELLO: &str = r#"(module
  (import "wasi_snapshot_preview1" "fd_write" (func $w (param i32 i32 i32 i32) (result i32)))
  (memory (export "memory") 1)
  (data (i32.const 16) "hello from the guest\n")
  (func (export "_start")
    (i32.store (i32.const 0) (i32.const 16))
    (i32.store (i32.const 4) (i32.const 21))
    (drop (call $w (i32.const 1) (i32.const 0) (i32.const 1) (i32.const 8)))))"#;

const SPIN: &str = r#"(module (func (export "_start") (loop (br 0))))"#;

fn runtime(cache: &std::path::Path) -> Runtime {
    Runtime::builder()
        .cache_dir(Some(cache.to_path_buf()))
        .extension(GrantedEnv)
        .build()
        .unwrap()
}

#[test]
fn an_extension_adds_imports_and_state_from_the_grant() {
    let cache = tempfile::tempdir().unwrap();
    let rt = runtime(cache.path());
    let loaded = rt
        .load_bytes("ext.wat", USES_EXTENSION.as_bytes(), LoadOptions::default())
        .unwrap();
    let mut caps = Capabilities::default();
    caps.env.insert("A".into(), "1".into());
    caps.env.insert("B".into(), "2".into());
    let out = rt
        .run(
            &loaded,
            RunOptions {
                capabilities: caps,
                invoke: Some(wasmlayer_core::Invoke {
                    name: "run".into(),
                    args: vec![],
                }),
                ..Default::default()
            },
        )
        .unwrap();
    assert_eq!(out.results, ["2"]);
    // Without the extension the import is missing: a clear error.
    let bare = Runtime::builder().cache(false).build().unwrap();
    let loaded = bare
        .load_bytes("ext.wat", USES_EXTENSION.as_bytes(), LoadOptions::default())
        .unwrap();
    let e = bare.run(&loaded, RunOptions::default()).unwrap_err();
    assert!(e.to_string().contains("granted_env"), "{e}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_async_on_the_callers_runtime_with_stdout_to_a_file() {
    let cache = tempfile::tempdir().unwrap();
    let rt = Arc::new(runtime(cache.path()));
    let loaded = rt
        .load_bytes("hello.wat", HELLO.as_bytes(), LoadOptions::default())
        .unwrap();
    let out_path = cache.path().join("stdout");
    let file = std::fs::File::create(&out_path).unwrap();
    let task = {
        let (rt, loaded) = (rt.clone(), loaded.clone());
        tokio::spawn(async move {
            rt.run_async(
                &loaded,
                RunOptions {
                    stdio: Stdio {
                        stdout: Stream::File(file),
                        ..Default::default()
                    },
                    ..Default::default()
                },
            )
            .await
        })
    };
    let out = task.await.unwrap().unwrap();
    assert_eq!(out.exit_code, 0);
    assert_eq!(
        std::fs::read_to_string(&out_path).unwrap(),
        "hello from the guest\n"
    );
    // A grant without stdio: an inherited stream becomes nothing, a file
    // given by the host stays.
    let file = std::fs::File::create(&out_path).unwrap();
    let out = rt
        .run_async(
            &loaded,
            RunOptions {
                capabilities: Capabilities {
                    inherit_stdio: false,
                    ..Default::default()
                },
                stdio: Stdio {
                    stdout: Stream::File(file),
                    ..Default::default()
                },
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(out.exit_code, 0);
    assert_eq!(
        std::fs::read_to_string(&out_path).unwrap(),
        "hello from the guest\n"
    );
}

#[tokio::test(flavor = "current_thread")]
async fn run_async_ends_a_runaway_guest_at_its_timeout() {
    let cache = tempfile::tempdir().unwrap();
    let rt = runtime(cache.path());
    let loaded = rt
        .load_bytes("spin.wat", SPIN.as_bytes(), LoadOptions::default())
        .unwrap();
    let start = std::time::Instant::now();
    let e = rt
        .run_async(
            &loaded,
            RunOptions {
                limits: Limits {
                    timeout: Some(Duration::from_millis(100)),
                    ..Default::default()
                },
                ..Default::default()
            },
        )
        .await
        .unwrap_err();
    assert!(matches!(e, Error::Timeout(_)), "{e}");
    assert!(start.elapsed() < Duration::from_secs(10));
}

/// Another thread stops a looping guest through its `Interrupt`: the run
/// ends with `Stopped` at the next epoch tick, whether the run has a
/// deadline or not, and sync and async alike.
#[test]
fn an_interrupt_stops_a_looping_guest() {
    let cache = tempfile::tempdir().unwrap();
    let rt = Arc::new(runtime(cache.path()));
    let loaded = rt
        .load_bytes("spin.wat", SPIN.as_bytes(), LoadOptions::default())
        .unwrap();
    for timeout in [None, Some(Duration::from_secs(60))] {
        let interrupt = Interrupt::new();
        let stopper = {
            let interrupt = interrupt.clone();
            std::thread::spawn(move || {
                std::thread::sleep(Duration::from_millis(200));
                interrupt.stop();
                std::time::Instant::now()
            })
        };
        let e = rt
            .run(
                &loaded,
                RunOptions {
                    limits: Limits {
                        timeout,
                        ..Default::default()
                    },
                    interrupt: Some(interrupt),
                    ..Default::default()
                },
            )
            .unwrap_err();
        let stopped_at = stopper.join().unwrap();
        assert!(matches!(e, Error::Stopped), "{e}");
        assert_eq!(e.exit_code(), 143);
        assert!(stopped_at.elapsed() < Duration::from_secs(1));
    }
    let interrupt = Interrupt::new();
    let run = {
        let (rt, loaded, interrupt) = (rt.clone(), loaded.clone(), interrupt.clone());
        std::thread::spawn(move || {
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap()
                .block_on(rt.run_async(
                    &loaded,
                    RunOptions {
                        interrupt: Some(interrupt),
                        ..Default::default()
                    },
                ))
        })
    };
    std::thread::sleep(Duration::from_millis(200));
    interrupt.stop();
    assert!(matches!(run.join().unwrap(), Err(Error::Stopped)));
    // Not stopped: a timeout is still a timeout.
    let e = rt
        .run(
            &loaded,
            RunOptions {
                limits: Limits {
                    timeout: Some(Duration::from_millis(100)),
                    ..Default::default()
                },
                interrupt: Some(Interrupt::new()),
                ..Default::default()
            },
        )
        .unwrap_err();
    assert!(matches!(e, Error::Timeout(_)), "{e}");
}

#[test]
fn load_bytes_uses_the_compile_cache_by_content() {
    let cache = tempfile::tempdir().unwrap();
    let rt = runtime(cache.path());
    let first = rt
        .load_bytes("a.wat", SPIN.as_bytes(), LoadOptions::default())
        .unwrap();
    assert_eq!(first.cache, CacheOutcome::Compiled);
    let again = runtime(cache.path())
        .load_bytes("b.wat", SPIN.as_bytes(), LoadOptions::default())
        .unwrap();
    assert_eq!(again.cache, CacheOutcome::Hit);
    assert_eq!(again.facts.sha256, first.facts.sha256);
    let Err(e) = rt.load_bytes("junk", b"\0asm\x01\0\0\0\x7f", LoadOptions::default()) else {
        panic!("junk loaded");
    };
    assert!(
        matches!(e, Error::InvalidArtifact(ref m) if m.starts_with("junk:")),
        "{e}"
    );
}
