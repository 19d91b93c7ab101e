//! The second wall: `wasmlayer run` and `serve` confine their own process
//! (Landlock, seccomp) before a guest runs. The debug build's test-only
//! probe (`WASMLAYER_SANDBOX_PROBE`, see crates/core/src/sandbox.rs) tries,
//! from inside the host process where the guest would start, to read a
//! file outside the grant, to run a program and to open a socket.

mod common;
use common::*;

/// Lines the probe printed, by what it tried.
fn probed(stderr: &str, what: &str) -> String {
    stderr
        .lines()
        .find(|l| l.starts_with(&format!("sandbox probe: {what}")))
        .unwrap_or_else(|| panic!("no probe line for {what}:\n{stderr}"))
        .to_string()
}

#[test]
fn the_host_process_is_confined_around_the_guest() {
    let t = tempdir();
    let data = t.path().join("data");
    std::fs::create_dir(&data).unwrap();
    std::fs::write(data.join("in.txt"), "granted").unwrap();
    let secret = t.path().join("secret.txt");
    std::fs::write(&secret, "outside the grant").unwrap();
    let hostile = guest("hostile-p1.wasm");
    let probe = |extra: &[&str]| {
        let mut c = wasmlayer();
        c.env("WASMLAYER_SANDBOX_PROBE", &secret)
            .arg("-v")
            .arg("run")
            .args(extra)
            .args(["--dir", &format!("{}::/data", s(&data))])
            .arg(&hostile)
            .args(["read", "/data/in.txt"]);
        run_with(&mut c)
    };

    let r = probe(&[]);
    assert_eq!(r.code, 0, "the guest still reads its grant: {r:?}");
    assert!(r.stdout.contains("granted"), "{r:?}");
    assert!(
        r.stderr.contains("host sandbox: applied: Landlock"),
        "{r:?}"
    );
    assert!(r.stderr.contains("seccomp on every thread"), "{r:?}");
    for what in ["open", "exec", "socket"] {
        let line = probed(&r.stderr, what);
        assert!(line.contains("denied"), "{what} inside the sandbox: {line}");
    }

    // The same probe without the sandbox: everything it tried works, so
    // the denials above are the sandbox's doing.
    let r = probe(&["--no-host-sandbox"]);
    assert_eq!(r.code, 0, "{r:?}");
    assert!(!r.stderr.contains("host sandbox:"), "{r:?}");
    for what in ["open", "exec", "socket"] {
        let line = probed(&r.stderr, what);
        assert!(
            line.contains("allowed"),
            "{what} without the sandbox: {line}"
        );
    }
}

/// A network grant keeps sockets: the guest connects to the granted
/// address from inside the confined process; an ungranted one is refused.
#[test]
fn a_network_grant_keeps_sockets_inside_the_sandbox() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let accept = std::thread::spawn(move || {
        use std::io::{Read, Write};
        let (mut c, _) = listener.accept().unwrap();
        let mut buf = [0u8; 100];
        let _ = c.read(&mut buf);
        c.write_all(b"pong\n").is_ok()
    });
    let addr = format!("127.0.0.1:{port}");
    let r = run([
        "-v",
        "run",
        "--allow-net",
        &addr,
        &s(&guest("hostile-p2.wasm")),
        "connect",
        &addr,
    ]);
    assert_eq!(r.code, 0, "{r:?}");
    assert!(r.stdout.contains("pong"), "{r:?}");
    assert!(r.stderr.contains("host sandbox: applied"), "{r:?}");
    assert!(!r.stderr.contains("socket creation"), "{r:?}");
    assert!(accept.join().unwrap());
}

/// A granted read-only directory is read-only for the host process too:
/// the guest cannot write there, and a read-write grant still writes.
#[test]
fn read_only_and_read_write_grants_hold_under_the_sandbox() {
    let t = tempdir();
    let ro = t.path().join("ro");
    let rw = t.path().join("rw");
    std::fs::create_dir(&ro).unwrap();
    std::fs::create_dir(&rw).unwrap();
    let hostile = s(&guest("hostile-p1.wasm"));
    let r = run([
        "run",
        "--dir-ro",
        &format!("{}::/ro", s(&ro)),
        &hostile,
        "write",
        "/ro/x",
        "no",
    ]);
    assert_ne!(r.code, 0, "{r:?}");
    assert!(!ro.join("x").exists());
    let r = run([
        "run",
        "--dir",
        &format!("{}::/rw", s(&rw)),
        &hostile,
        "write",
        "/rw/x",
        "yes",
    ]);
    assert_eq!(r.code, 0, "{r:?}");
    assert_eq!(std::fs::read_to_string(rw.join("x")).unwrap(), "yes");
}
