//! `inspect`, and bad input of every kind giving a clear error.

mod common;
use common::*;

#[test]
fn inspect_module_text_and_json() {
    let g = s(&guest("hello-p1.wasm"));
    let r = run(["inspect", &g]);
    assert_eq!(r.code, 0, "{r:?}");
    assert!(
        r.stdout
            .contains("kind:         module (core module, WASI p1)"),
        "{r:?}"
    );
    assert!(
        r.stdout
            .contains("wasi_snapshot_preview1::fd_write: func(i32, i32, i32, i32) -> i32"),
        "{r:?}"
    );
    assert!(r.stdout.contains("_start: func()"), "{r:?}");
    let r = run(["inspect", "--json", &g]);
    let v: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
    assert_eq!(v["kind"], "module");
    assert_eq!(v["size"], std::fs::metadata(&g).unwrap().len());
    assert_eq!(v["sha256"].as_str().unwrap().len(), 64);
    let caps: Vec<&str> = v["capabilities"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c.as_str().unwrap())
        .collect();
    for c in ["args", "env", "filesystem", "exit"] {
        assert!(caps.contains(&c), "{c} in {caps:?}");
    }
    assert!(!caps.contains(&"network"));
}

#[test]
fn inspect_component_shows_world() {
    let g = s(&guest("hello-p2.wasm"));
    let r = run(["inspect", "--json", &g]);
    assert_eq!(r.code, 0, "{r:?}");
    let v: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
    assert_eq!(v["kind"], "component");
    let imports: Vec<&str> = v["imports"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["name"].as_str().unwrap())
        .collect();
    assert!(
        imports
            .iter()
            .any(|i| i.starts_with("wasi:filesystem/preopens@0.2")),
        "{imports:?}"
    );
    assert!(
        imports
            .iter()
            .any(|i| i.starts_with("wasi:random/random@0.2")),
        "{imports:?}"
    );
    assert!(
        imports
            .iter()
            .any(|i| i.starts_with("wasi:sockets/tcp@0.2")),
        "{imports:?}"
    );
    let exports: Vec<&str> = v["exports"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["name"].as_str().unwrap())
        .collect();
    assert!(
        exports.iter().any(|e| e.starts_with("wasi:cli/run@0.2")),
        "{exports:?}"
    );
    let run_iface = v["exports"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["name"].as_str().unwrap().starts_with("wasi:cli/run"))
        .unwrap();
    assert_eq!(run_iface["items"][0], "run");
    let caps = v["capabilities"].to_string();
    for c in ["filesystem", "network", "random", "clocks"] {
        assert!(caps.contains(c), "{c} in {caps}");
    }
    let r = run(["inspect", &g]);
    assert!(
        r.stdout
            .contains("kind:         component (component, WASI p2)"),
        "{r:?}"
    );
    assert_eq!(v["wasi"], "p2", "{v}");
    // WASI 0.3 commands and handlers are told apart from 0.2 ones.
    for name in ["hello-p3.wasm", "http-hello-p3.wasm"] {
        let r = run(["inspect", &s(&guest(name))]);
        assert!(
            r.stdout
                .contains("kind:         component (component, WASI p3)"),
            "{r:?}"
        );
    }
    let r = run(["inspect", "--json", &s(&guest("hello-p3.wasm"))]);
    let v: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
    assert_eq!(v["wasi"], "p3", "{v}");
    assert!(v["exports"].to_string().contains("wasi:cli/run@0.3"), "{v}");
}

#[test]
fn bad_input_gives_a_clear_error() {
    let t = tempdir();
    let random: Vec<u8> = (0..4096u32)
        .map(|i| (i.wrapping_mul(2654435761) >> 13) as u8)
        .collect();
    std::fs::write(t.path().join("random.bin"), &random).unwrap();
    let hello = std::fs::read(guest("hello-p1.wasm")).unwrap();
    std::fs::write(t.path().join("truncated.wasm"), &hello[..hello.len() / 2]).unwrap();
    std::fs::write(t.path().join("header-only.wasm"), b"\0asm").unwrap();
    std::fs::write(t.path().join("notes.txt"), "just some notes\n").unwrap();
    std::fs::write(
        t.path().join("bad.wat"),
        "(module (func (export \"f\") i32.add))",
    )
    .unwrap();
    std::fs::write(t.path().join("empty.wasm"), b"").unwrap();
    std::fs::write(
        t.path().join("imports.wat"),
        "(module (import \"env\" \"host_fn\" (func)) (func (export \"_start\")))",
    )
    .unwrap();
    let hello2 = std::fs::read(guest("hello-p2.wasm")).unwrap();
    std::fs::write(
        t.path().join("truncated-component.wasm"),
        &hello2[..hello2.len() - 100],
    )
    .unwrap();
    let cases: Vec<(String, i32, &str)> = vec![
        (
            s(&t.path().join("random.bin")),
            126,
            "not a WebAssembly module",
        ),
        (
            s(&t.path().join("truncated.wasm")),
            126,
            "invalid WebAssembly module",
        ),
        (
            s(&t.path().join("truncated-component.wasm")),
            126,
            "invalid WebAssembly component",
        ),
        (
            s(&t.path().join("header-only.wasm")),
            126,
            "truncated WebAssembly header",
        ),
        (
            s(&t.path().join("notes.txt")),
            126,
            "not a WebAssembly module",
        ),
        (s(&t.path().join("bad.wat")), 126, "invalid WebAssembly"),
        (s(&t.path().join("empty.wasm")), 126, "empty file"),
        (s(&t.path().join("imports.wat")), 126, "env::host_fn"),
        (s(&t.path().join("missing.wasm")), 127, "file not found"),
        (s(t.path()), 126, "is a directory"),
    ];
    for cmd in ["run", "inspect"] {
        for (file, code, needle) in &cases {
            if cmd == "inspect" && file.ends_with("imports.wat") {
                continue;
            }
            let r = run([cmd, file.as_str()]);
            assert_eq!(r.code, *code, "{cmd} {file}: {r:?}");
            assert!(r.stderr.starts_with("error: "), "{cmd} {file}: {r:?}");
            assert!(
                r.stderr.contains(needle),
                "{cmd} {file}: expected `{needle}` in {r:?}"
            );
        }
    }
    let r = run([
        "compile",
        &s(&t.path().join("random.bin")),
        "-o",
        &s(&t.path().join("x.cwasm")),
    ]);
    assert_eq!(r.code, 126, "{r:?}");
    assert!(!t.path().join("x.cwasm").exists());
}

#[test]
fn usage_errors_exit_2() {
    for args in [
        vec!["run"],
        vec!["frobnicate"],
        vec!["run", "--max-memory"],
        vec!["compile", "x.wasm"],
    ] {
        let r = run(&args);
        assert_eq!(r.code, 2, "{args:?}: {r:?}");
    }
    let r = run(["--help"]);
    assert_eq!(r.code, 0);
    assert!(
        r.stdout.contains("run") && r.stdout.contains("compile") && r.stdout.contains("inspect")
    );
}

#[test]
fn sources_that_are_not_regular_files_are_read_with_a_bound() {
    use std::io::Write;
    use std::time::{Duration, Instant};
    // A device that never ends: refused on its first bytes.
    for args in [
        vec!["run", "/dev/zero"],
        vec!["inspect", "/dev/zero"],
        vec!["compile", "/dev/zero", "-o", "/dev/null"],
    ] {
        let start = Instant::now();
        let r = run(&args);
        assert_eq!(r.code, 126, "{args:?}: {r:?}");
        assert!(r.stderr.contains("unrecognised header"), "{args:?}: {r:?}");
        assert!(start.elapsed() < Duration::from_secs(20), "{args:?}");
    }
    // A pipe of text without end: read up to the bound, then refused.
    let r = run_from_pipe(|stdin| {
        let chunk = vec![b'('; 1 << 20];
        // Stops when wasmlayer closes its end.
        while stdin.write_all(&chunk).is_ok() {}
    });
    assert_eq!(r.code, 126, "{r:?}");
    assert!(
        r.stderr
            .contains("not a regular file, and longer than 256 MiB"),
        "{r:?}"
    );
    // A module through a pipe still runs.
    let module = std::fs::read(guest("hello-p1.wasm")).unwrap();
    let r = run_from_pipe(move |stdin| stdin.write_all(&module).unwrap());
    assert_eq!(r.code, 0, "{r:?}");
    assert!(r.stdout.contains("Hello, world!"), "{r:?}");
}

/// `wasmlayer run /dev/stdin`, with `feed` writing the artifact into the pipe
/// on a thread of its own (the pipe is closed when it returns).
fn run_from_pipe(feed: impl FnOnce(&mut std::process::ChildStdin) + Send + 'static) -> Run {
    let mut child = wasmlayer()
        .args(["run", "/dev/stdin"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let feeder = std::thread::spawn(move || feed(&mut stdin));
    let r = output(child.wait_with_output().unwrap());
    feeder.join().unwrap();
    r.no_panic();
    r
}
