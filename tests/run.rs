//! `wasmlayer run`: p1 modules, p2 components, exit codes, --invoke.

mod common;
use common::*;
use std::io::{BufRead, BufReader, Write};

#[test]
fn p1_hello_uses_args_env_and_files() {
    let dir = tempdir();
    std::fs::write(dir.path().join("input.txt"), "shout this\n").unwrap();
    let r = run([
        "run".into(),
        "--dir".into(),
        format!("{}::/data", s(dir.path())),
        "--env".into(),
        "NAME=ignored".into(),
        s(&guest("hello-p1.wasm")),
        "Ada".into(),
        "two".into(),
    ]);
    assert_eq!(r.code, 0, "{r:?}");
    assert!(r.stdout.contains("Hello, Ada!"), "{r:?}");
    assert!(r.stdout.contains(r#"args: ["Ada", "two"]"#), "{r:?}");
    assert!(r.stdout.contains("env NAME=ignored"), "{r:?}");
    assert!(
        r.stdout.contains("wrote /data/output.txt (11 bytes)"),
        "{r:?}"
    );
    assert_eq!(
        std::fs::read_to_string(dir.path().join("output.txt")).unwrap(),
        "SHOUT THIS\n"
    );
}

#[test]
fn p1_hello_without_grants_sees_nothing() {
    let r = run_with(
        wasmlayer()
            .env("NAME", "host-secret")
            .args(["run", &s(&guest("hello-p1.wasm"))]),
    );
    assert_eq!(r.code, 0, "{r:?}");
    assert!(r.stdout.contains("Hello, world!"), "{r:?}");
    assert!(r.stdout.contains("env NAME is not set"), "{r:?}");
    assert!(r.stderr.contains("no /data preopen"), "{r:?}");
}

/// A loopback server that answers one line per connection with `pong <line>`.
fn pong_server() -> (u16, std::thread::JoinHandle<usize>) {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    listener.set_nonblocking(false).unwrap();
    let h = std::thread::spawn(move || {
        let mut served = 0;
        // One connection at most, or give up after the test's deadline.
        listener.set_nonblocking(true).unwrap();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
        while std::time::Instant::now() < deadline {
            match listener.accept() {
                Ok((mut conn, _)) => {
                    conn.set_nonblocking(false).unwrap();
                    let mut line = String::new();
                    BufReader::new(conn.try_clone().unwrap())
                        .read_line(&mut line)
                        .unwrap();
                    conn.write_all(format!("pong {line}").as_bytes()).unwrap();
                    served += 1;
                    break;
                }
                Err(_) => std::thread::sleep(std::time::Duration::from_millis(10)),
            }
        }
        served
    });
    (port, h)
}

#[test]
fn p2_component_uses_filesystem_random_clocks_and_tcp() {
    component_uses_filesystem_random_clocks_and_tcp("hello-p2.wasm", "p2");
}

#[test]
fn p3_component_uses_filesystem_random_clocks_and_tcp() {
    component_uses_filesystem_random_clocks_and_tcp("hello-p3.wasm", "p3");
}

fn component_uses_filesystem_random_clocks_and_tcp(name: &str, wasi: &str) {
    let dir = tempdir();
    std::fs::write(dir.path().join("input.txt"), "component data").unwrap();
    let (port, server) = pong_server();
    let r = run([
        "run".into(),
        "--dir".into(),
        format!("{}::/data", s(dir.path())),
        "--allow-net".into(),
        format!("127.0.0.1:{port}"),
        s(&guest(name)),
        "--connect".into(),
        format!("127.0.0.1:{port}"),
    ]);
    assert_eq!(r.code, 0, "{r:?}");
    assert!(
        r.stdout
            .contains(&format!("Hello from a {wasi} component!")),
        "{r:?}"
    );
    assert_eq!(
        std::fs::read_to_string(dir.path().join("output.txt")).unwrap(),
        "COMPONENT DATA"
    );
    let random = r
        .stdout
        .lines()
        .find_map(|l| l.strip_prefix("random: "))
        .expect("random line");
    assert_eq!(random.len(), 32, "{r:?}");
    assert!(random.chars().all(|c| c.is_ascii_hexdigit()));
    let wall: u64 = r
        .stdout
        .lines()
        .find_map(|l| l.strip_prefix("wall clock: "))
        .unwrap()
        .parse()
        .unwrap();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    assert!(now.abs_diff(wall) < 120, "{r:?}");
    assert!(r.stdout.contains("monotonic: ok"), "{r:?}");
    assert!(r.stdout.contains("reply: pong ping"), "{r:?}");
    assert_eq!(server.join().unwrap(), 1);
}

#[test]
fn p2_random_differs_between_runs() {
    let a = run(["run", &s(&guest("hello-p2.wasm"))]);
    let b = run(["run", &s(&guest("hello-p2.wasm"))]);
    let pick = |r: &Run| {
        r.stdout
            .lines()
            .find(|l| l.starts_with("random: "))
            .unwrap()
            .to_string()
    };
    assert_ne!(pick(&a), pick(&b));
}

#[test]
fn guest_exit_code_is_process_exit_code() {
    for g in ["hostile-p1.wasm", "hostile-p2.wasm"] {
        for code in ["0", "3", "42"] {
            let r = run(["run", &s(&guest(g)), "exit", code]);
            assert_eq!(r.code.to_string(), code, "{g}: {r:?}");
        }
    }
    let r = run(["run", &s(&guest("hello-p1.wasm")), "--exit", "5"]);
    assert_eq!(r.code, 5, "{r:?}");
    assert!(r.stdout.contains("Hello"), "{r:?}");
}

#[test]
fn invoke_calls_exports_with_numeric_args() {
    let f = fixture("reactor.wat");
    let r = run(["run", "--invoke", "answer", &s(&f), "2"]);
    assert_eq!((r.code, r.stdout.trim()), (0, "42"), "{r:?}");
    let r = run(["run", "--invoke", "mul64", &s(&f), "-3", "5000000000"]);
    assert_eq!((r.code, r.stdout.trim()), (0, "-15000000000"), "{r:?}");
    let r = run(["run", "--invoke", "half", &s(&f), "5"]);
    assert_eq!((r.code, r.stdout.trim()), (0, "2.5"), "{r:?}");
    let r = run([
        "run",
        "--invoke",
        "add",
        &s(&fixture("traps.wat")),
        "2",
        "3",
    ]);
    assert_eq!((r.code, r.stdout.trim()), (0, "5"), "{r:?}");
}

#[test]
fn invoke_errors_are_clear() {
    let f = fixture("reactor.wat");
    let r = run(["run", &s(&f)]);
    assert_eq!(r.code, 126, "{r:?}");
    assert!(
        r.stderr.contains("no `_start` export") && r.stderr.contains("--invoke"),
        "{r:?}"
    );
    assert!(r.stderr.contains("answer"), "lists the exports: {r:?}");
    let r = run(["run", "--invoke", "answer", &s(&f)]);
    assert_eq!(r.code, 2, "{r:?}");
    assert!(r.stderr.contains("takes 1 argument(s), 0 given"), "{r:?}");
    let r = run(["run", "--invoke", "answer", &s(&f), "zebra"]);
    assert_eq!(r.code, 2, "{r:?}");
    assert!(r.stderr.contains("invalid argument `zebra`"), "{r:?}");
    let r = run(["run", "--invoke", "nope", &s(&f)]);
    assert_eq!(r.code, 2, "{r:?}");
    assert!(r.stderr.contains("no exported function `nope`"), "{r:?}");
    let r = run(["run", "--invoke", "x", &s(&guest("hello-p2.wasm"))]);
    assert_eq!(r.code, 2, "{r:?}");
    assert!(r.stderr.contains("component"), "{r:?}");
}

/// Waits for `child` up to `limit`; kills it and fails if it is still running.
fn wait_at_most(child: &mut std::process::Child, limit: std::time::Duration) -> i32 {
    let start = std::time::Instant::now();
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            use std::os::unix::process::ExitStatusExt;
            assert_eq!(status.signal(), None, "killed by a signal: {status:?}");
            return status.code().unwrap();
        }
        if start.elapsed() > limit {
            let _ = child.kill();
            let _ = child.wait();
            panic!("wasmlayer still running after {limit:?}");
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

/// A guest that writes to stdout for ever.
const STDOUT_SPAMMER: &str = r#"(module
  (import "wasi_snapshot_preview1" "fd_write" (func $w (param i32 i32 i32 i32) (result i32)))
  (memory (export "memory") 1)
  (data (i32.const 100) "xxxxxxxx\n")
  (func (export "_start")
    (i32.store (i32.const 0) (i32.const 100))
    (i32.store (i32.const 4) (i32.const 9))
    (loop $l
      (drop (call $w (i32.const 1) (i32.const 0) (i32.const 1) (i32.const 48)))
      (br $l))))"#;

#[test]
fn a_timeout_ends_the_run_while_stdout_is_blocked() {
    use std::io::Read;
    use std::time::{Duration, Instant};
    let t = tempdir();
    let wat = t.path().join("spam.wat");
    std::fs::write(&wat, STDOUT_SPAMMER).unwrap();
    let mut child = wasmlayer()
        .args(["run", "--timeout", "500ms", &s(&wat)])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // Nobody reads stdout: the guest blocks in a write once the pipe is full.
    let stdout = child.stdout.take().unwrap();
    let start = Instant::now();
    let code = wait_at_most(&mut child, Duration::from_secs(20));
    let took = start.elapsed();
    let mut stderr = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut stderr)
        .unwrap();
    drop(stdout);
    assert_eq!(code, 124, "{stderr}");
    assert!(
        stderr.contains("error: guest exceeded its wall-clock timeout (500ms)"),
        "{stderr}"
    );
    assert!(took < Duration::from_secs(10), "took {took:?}");
}

#[test]
fn guest_exit_codes_of_126_and_above_are_refused() {
    for g in ["hostile-p1.wasm", "hostile-p2.wasm"] {
        let r = run(["run", &s(&guest(g)), "exit", "125"]);
        assert_eq!(r.code, 125, "{g}: {r:?}");
        for code in ["126", "137", "255"] {
            let r = run(["run", &s(&guest(g)), "exit", code]);
            assert_eq!(r.code, 134, "{g} exit {code}: {r:?}");
            assert!(
                r.stderr.starts_with("error: guest trapped: ")
                    && r.stderr.contains("outside of [0..126)"),
                "{g} exit {code}: {r:?}"
            );
        }
    }
    // One line says why (the p2 one names the code), then the backtrace.
    let r = run(["run", &s(&guest("hostile-p1.wasm")), "exit", "137"]);
    assert!(
        r.stderr.starts_with(
            "error: guest trapped: exit with invalid exit status outside of [0..126)\nwasm backtrace:\n"
        ),
        "{r:?}"
    );
    let r = run(["run", &s(&guest("hostile-p2.wasm")), "exit", "137"]);
    assert!(
        r.stderr.starts_with(
            "error: guest trapped: exit with invalid exit status 137 outside of [0..126)"
        ),
        "{r:?}"
    );
}

#[test]
fn p3_component_gets_only_what_is_granted() {
    let g = s(&guest("hello-p3.wasm"));
    let dir = tempdir();
    std::fs::write(dir.path().join("input.txt"), "data").unwrap();
    let (port, _server) = pong_server();
    // Nothing granted: no directory, no network.
    let r = run([
        "run".into(),
        g.clone(),
        "--connect".into(),
        format!("127.0.0.1:{port}"),
    ]);
    assert_eq!(r.code, 1, "{r:?}");
    assert!(r.stderr.contains("no /data preopen"), "{r:?}");
    assert!(r.stderr.contains("connect failed"), "{r:?}");
    // A read-only directory: read, but not written.
    let r = run([
        "run".into(),
        "--dir".into(),
        format!("{}::/data:ro", s(dir.path())),
        g.clone(),
    ]);
    assert_eq!(r.code, 0, "{r:?}");
    assert!(!dir.path().join("output.txt").exists(), "{r:?}");
    assert!(r.stderr.contains("output.txt"), "{r:?}");
}
