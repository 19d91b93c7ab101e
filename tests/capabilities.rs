//! Deny-by-default capabilities: directories, env, network, capability files.

mod common;
use common::*;
use std::os::unix::fs::symlink;

/// A sandbox directory `box/` inside a temp dir, with a secret beside it.
fn sandbox() -> (tempfile::TempDir, String) {
    let t = tempdir();
    std::fs::create_dir(t.path().join("box")).unwrap();
    std::fs::write(t.path().join("box/inside.txt"), "inside").unwrap();
    std::fs::write(t.path().join("secret.txt"), "TOP SECRET").unwrap();
    let b = s(&t.path().join("box"));
    (t, b)
}

fn hostile(args: &[&str]) -> Run {
    let mut v = vec!["run".to_string()];
    v.extend(args.iter().map(|a| a.to_string()));
    run(v)
}

#[test]
fn files_need_a_preopen() {
    let (_t, b) = sandbox();
    for g in ["hostile-p1.wasm", "hostile-p2.wasm"] {
        let r = hostile(&[&s(&guest(g)), "read", &format!("{b}/inside.txt")]);
        assert_eq!(r.code, 1, "{g}: {r:?}");
        assert!(r.stderr.contains("error:"), "{r:?}");
        let r = hostile(&[
            "--dir",
            &format!("{b}::/data"),
            &s(&guest(g)),
            "read",
            "/data/inside.txt",
        ]);
        assert_eq!((r.code, r.stdout.as_str()), (0, "inside"), "{g}: {r:?}");
    }
}

#[test]
fn escapes_from_a_preopen_fail_inside_the_guest() {
    let (t, b) = sandbox();
    symlink(t.path().join("secret.txt"), t.path().join("box/abs-link")).unwrap();
    symlink("../secret.txt", t.path().join("box/rel-link")).unwrap();
    symlink("/etc", t.path().join("box/etc-link")).unwrap();
    let dir = format!("{b}::/data");
    for g in ["hostile-p1.wasm", "hostile-p2.wasm"] {
        for path in [
            "/data/../secret.txt",
            "/data/../../../../etc/passwd",
            "/etc/passwd",
            &format!("{}/secret.txt", s(t.path())),
            "/data/abs-link",
            "/data/rel-link",
            "/data/etc-link/passwd",
        ] {
            let r = hostile(&["--dir", &dir, &s(&guest(g)), "read", path]);
            assert_eq!(r.code, 1, "{g} read {path} must fail: {r:?}");
            assert!(
                !r.stdout.contains("TOP SECRET") && !r.stdout.contains("root:"),
                "{g} leaked {path}: {r:?}"
            );
        }
        let r = hostile(&[
            "--dir",
            &dir,
            &s(&guest(g)),
            "write",
            "/data/../escaped.txt",
            "x",
        ]);
        assert_eq!(r.code, 1, "{r:?}");
        assert!(!t.path().join("escaped.txt").exists());
    }
}

#[test]
fn read_only_dirs_refuse_writes() {
    let (t, b) = sandbox();
    for g in ["hostile-p1.wasm", "hostile-p2.wasm"] {
        for grant in [
            vec!["--dir".to_string(), format!("{b}::/data:ro")],
            vec!["--dir-ro".to_string(), format!("{b}::/data")],
        ] {
            let mut args: Vec<String> = grant.clone();
            args.extend([
                s(&guest(g)),
                "write".into(),
                "/data/inside.txt".into(),
                "overwritten".into(),
            ]);
            let r = hostile(&args.iter().map(String::as_str).collect::<Vec<_>>());
            assert_eq!(r.code, 1, "{g} {grant:?}: {r:?}");
            let mut args = grant.clone();
            args.extend([
                s(&guest(g)),
                "write".into(),
                "/data/new.txt".into(),
                "x".into(),
            ]);
            let r = hostile(&args.iter().map(String::as_str).collect::<Vec<_>>());
            assert_eq!(r.code, 1, "{g} {grant:?}: {r:?}");
            let mut args = grant.clone();
            args.extend([s(&guest(g)), "read".into(), "/data/inside.txt".into()]);
            let r = hostile(&args.iter().map(String::as_str).collect::<Vec<_>>());
            assert_eq!((r.code, r.stdout.as_str()), (0, "inside"), "{g}: {r:?}");
        }
        assert_eq!(
            std::fs::read_to_string(t.path().join("box/inside.txt")).unwrap(),
            "inside"
        );
        assert!(!t.path().join("box/new.txt").exists());
        // Read-write for contrast.
        let r = hostile(&[
            "--dir",
            &format!("{b}::/data"),
            &s(&guest(g)),
            "write",
            "/data/new.txt",
            "fresh",
        ]);
        assert_eq!(r.code, 0, "{r:?}");
        assert_eq!(
            std::fs::read_to_string(t.path().join("box/new.txt")).unwrap(),
            "fresh"
        );
        std::fs::remove_file(t.path().join("box/new.txt")).unwrap();
    }
}

#[test]
fn env_is_not_inherited_unless_granted() {
    for g in ["hostile-p1.wasm", "hostile-p2.wasm"] {
        let g = s(&guest(g));
        let r = run_with(
            wasmlayer()
                .env("SECRET", "hunter2")
                .args(["run", &g, "env", "SECRET"]),
        );
        assert_eq!(r.code, 1, "{r:?}");
        assert!(r.stderr.contains("SECRET is not set"), "{r:?}");
        let r = run_with(
            wasmlayer()
                .env("SECRET", "hunter2")
                .args(["run", &g, "envall"]),
        );
        assert_eq!(
            (r.code, r.stdout.as_str()),
            (0, ""),
            "no host variable leaks: {r:?}"
        );
        let r = run_with(
            wasmlayer()
                .env("SECRET", "hunter2")
                .args(["run", "--env", "SECRET", &g, "env", "SECRET"]),
        );
        assert_eq!((r.code, r.stdout.trim()), (0, "hunter2"), "{r:?}");
        let r = run_with(wasmlayer().env("SECRET", "hunter2").args([
            "run",
            "--env",
            "SECRET=given",
            &g,
            "envall",
        ]));
        assert_eq!((r.code, r.stdout.trim()), (0, "SECRET=given"), "{r:?}");
        // Passing a variable the host does not have grants nothing.
        let r = run(["run", "--env", "UNSET_ON_HOST", &g, "envall"]);
        assert_eq!((r.code, r.stdout.as_str()), (0, ""), "{r:?}");
    }
}

/// Accepts connections and answers `pong` until dropped.
struct Server {
    port: u16,
    accepted: std::sync::Arc<std::sync::atomic::AtomicUsize>,
}

fn server() -> Server {
    use std::io::{BufRead, BufReader, Write};
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    let accepted = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let a = accepted.clone();
    std::thread::spawn(move || {
        for conn in l.incoming() {
            let Ok(mut c) = conn else { break };
            a.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            let mut line = String::new();
            let _ = BufReader::new(c.try_clone().unwrap()).read_line(&mut line);
            let _ = c.write_all(b"pong\n");
        }
    });
    Server { port, accepted }
}

#[test]
fn network_is_an_allowlist() {
    let srv = server();
    let other = server();
    let g = s(&guest("hostile-p2.wasm"));
    let target = format!("127.0.0.1:{}", srv.port);
    // Nothing granted.
    let r = run(["run", &g, "connect", &target]);
    assert_eq!(r.code, 1, "{r:?}");
    // Another port granted.
    let r = run([
        "run",
        "--allow-net",
        &format!("127.0.0.1:{}", other.port),
        &g,
        "connect",
        &target,
    ]);
    assert_eq!(r.code, 1, "{r:?}");
    // Another host granted.
    let r = run([
        "run",
        "--allow-net",
        &format!("127.0.0.2:{}", srv.port),
        &g,
        "connect",
        &target,
    ]);
    assert_eq!(r.code, 1, "{r:?}");
    assert_eq!(
        srv.accepted.load(std::sync::atomic::Ordering::SeqCst),
        0,
        "denied connects never reach the server"
    );
    // Exact grant, CIDR grant, port wildcard.
    for grant in [
        target.clone(),
        format!("127.0.0.0/8:{}", srv.port),
        "127.0.0.1:*".to_string(),
    ] {
        let r = run(["run", "--allow-net", &grant, &g, "connect", &target]);
        assert_eq!((r.code, r.stdout.trim()), (0, "pong"), "{grant}: {r:?}");
    }
    assert_eq!(srv.accepted.load(std::sync::atomic::Ordering::SeqCst), 3);
    assert_eq!(other.accepted.load(std::sync::atomic::Ordering::SeqCst), 0);
}

#[test]
fn name_lookup_follows_the_allowlist() {
    name_lookup_follows_the_allowlist_in("hello-p2.wasm");
}

#[test]
fn p3_name_lookup_follows_the_allowlist() {
    name_lookup_follows_the_allowlist_in("hello-p3.wasm");
}

fn name_lookup_follows_the_allowlist_in(guest_name: &str) {
    let srv = server();
    let g = s(&guest(guest_name));
    let target = format!("localhost:{}", srv.port);
    let r = run([
        "run",
        "--allow-net",
        &format!("127.0.0.1:{}", srv.port),
        &g,
        "--connect",
        &target,
    ]);
    assert_eq!(
        r.code, 1,
        "an IP-only allowlist allows no name lookup: {r:?}"
    );
    let r = run([
        "run",
        "--allow-net",
        &format!("localhost:{}", srv.port),
        &g,
        "--connect",
        &target,
    ]);
    assert_eq!(r.code, 0, "{r:?}");
    assert!(r.stdout.contains("reply: pong"), "{r:?}");
}

#[test]
fn caps_file_grants_the_same_as_flags() {
    let (t, b) = sandbox();
    let srv = server();
    let caps = t.path().join("caps.toml");
    std::fs::write(
        &caps,
        format!(
            "inherit_env = [\"FROM_HOST\"]\nallow_net = [\"127.0.0.1:{}\"]\n\n[env]\nGREETING = \"hi\"\n\n[[dir]]\nhost = \"box\"\nguest = \"/data\"\nread_only = true\n",
            srv.port
        ),
    )
    .unwrap();
    let g = s(&guest("hostile-p2.wasm"));
    let with_file = |args: &[&str]| {
        let mut v = vec!["run", "--caps", caps.to_str().unwrap(), &g];
        v.extend(args);
        run_with(wasmlayer().env("FROM_HOST", "yes").args(v))
    };
    let flags = [
        "--env",
        "FROM_HOST",
        "--env",
        "GREETING=hi",
        "--dir-ro",
        &format!("{b}::/data"),
    ];
    let net = format!("127.0.0.1:{}", srv.port);
    let with_flags = |args: &[&str]| {
        let mut v = vec!["run", "--allow-net", &net];
        v.extend(flags);
        v.push(&g);
        v.extend(args);
        run_with(wasmlayer().env("FROM_HOST", "yes").args(v))
    };
    let target = format!("127.0.0.1:{}", srv.port);
    for args in [
        vec!["envall"],
        vec!["read", "/data/inside.txt"],
        vec!["write", "/data/inside.txt", "no"],
        vec!["connect", target.as_str()],
        vec!["read", "/data/../secret.txt"],
    ] {
        let (a, f) = (with_file(&args), with_flags(&args));
        assert_eq!(
            (a.code, &a.stdout),
            (f.code, &f.stdout),
            "{args:?}\nfile: {a:?}\nflags: {f:?}"
        );
    }
    assert_eq!(
        with_file(&["envall"]).stdout,
        "FROM_HOST=yes\nGREETING=hi\n"
    );
}

#[test]
fn bad_capability_input_is_a_usage_error() {
    let t = tempdir();
    let g = s(&guest("hello-p1.wasm"));
    let bad = t.path().join("bad.toml");
    std::fs::write(&bad, "[[dir]]\nhost = 5\n").unwrap();
    for (args, needle) in [
        (vec!["run", "--caps", bad.to_str().unwrap(), &g], "bad.toml"),
        (
            vec!["run", "--caps", "/nonexistent/caps.toml", &g],
            "capability file not found",
        ),
        (
            vec!["run", "--dir", "/nonexistent-dir::/x", &g],
            "/nonexistent-dir",
        ),
        (
            vec!["run", "--allow-net", "not a pattern", &g],
            "invalid network pattern",
        ),
        (
            vec!["run", "--env", "=x", &g],
            "invalid environment variable name",
        ),
        (vec!["run", "--max-memory", "lots", &g], "--max-memory"),
        (vec!["run", "--timeout", "soon", &g], "--timeout"),
    ] {
        let r = run(&args);
        assert_eq!(r.code, 2, "{args:?}: {r:?}");
        assert!(r.stderr.contains(needle), "{args:?}: {r:?}");
        assert_eq!(r.stderr.lines().count(), 1, "one clear line: {r:?}");
    }
}

#[test]
fn a_guest_path_granted_twice_is_a_usage_error() {
    let (t, b) = sandbox();
    let other = t.path().join("other");
    std::fs::create_dir(&other).unwrap();
    let o = s(&other);
    let g = s(&guest("hostile-p1.wasm"));
    let caps = t.path().join("caps.toml");
    std::fs::write(
        &caps,
        "[[dir]]\nhost = \"box\"\nguest = \"/data\"\n\n[[dir]]\nhost = \"other\"\nguest = \"/data\"\nread_only = true\n",
    )
    .unwrap();
    let one = t.path().join("one.toml");
    std::fs::write(&one, "[[dir]]\nhost = \"box\"\nguest = \"/data\"\n").unwrap();
    let cases: Vec<Vec<String>> = vec![
        vec![
            "--dir".into(),
            format!("{b}::/data"),
            "--dir".into(),
            format!("{o}::/data"),
        ],
        vec![
            "--dir".into(),
            format!("{b}::/data"),
            "--dir-ro".into(),
            format!("{o}::/data/"),
        ],
        vec![
            "--dir".into(),
            format!("{b}::/data:ro"),
            "--dir".into(),
            format!("{b}::/data"),
        ],
        vec!["--caps".into(), s(&caps)],
        vec![
            "--caps".into(),
            s(&one),
            "--dir".into(),
            format!("{o}::/data"),
        ],
    ];
    for grants in cases {
        let mut args = vec!["run".to_string()];
        args.extend(grants.iter().cloned());
        args.extend([g.clone(), "ls".into(), "/data".into()]);
        let r = run(&args);
        assert_eq!(r.code, 2, "{grants:?}: {r:?}");
        assert!(
            r.stderr.starts_with("error: guest directory /data")
                && r.stderr.contains("granted twice"),
            "{grants:?}: {r:?}"
        );
        assert_eq!(r.stderr.lines().count(), 1, "{r:?}");
        assert!(r.stdout.is_empty(), "{r:?}");
    }
    // Distinct guest paths are fine.
    let r = run([
        "run",
        "--dir",
        &format!("{b}::/data"),
        "--dir",
        &format!("{o}::/data2"),
        &g,
        "ls",
        "/data",
    ]);
    assert_eq!((r.code, r.stdout.as_str()), (0, "inside.txt\n"), "{r:?}");
}

#[test]
fn only_granted_names_are_resolved() {
    let g = s(&guest("hostile-p2.wasm"));
    let resolve = |grant: &str, name: &str| run(["run", "--allow-net", grant, &g, "resolve", name]);
    let loopback = |r: &Run| r.stdout.lines().any(|l| l == "127.0.0.1" || l == "::1");
    // Granting one name does not open lookups of others.
    for (grant, name) in [
        ("nonexistent.invalid:80", "localhost"),
        ("nonexistent.invalid:*", "localhost."),
        ("localhost.invalid:80", "localhost"),
    ] {
        let r = resolve(grant, name);
        assert_eq!(r.code, 1, "{grant} / {name}: {r:?}");
        assert!(!loopback(&r), "{grant} / {name} resolved: {r:?}");
    }
    // An IP-only allowlist allows no lookup at all.
    let r = resolve("127.0.0.1:80", "localhost");
    assert_eq!(r.code, 1, "{r:?}");
    // The granted name, in any case, and `*`.
    for (grant, name) in [
        ("localhost:80", "localhost"),
        ("LocalHost:80", "LOCALHOST"),
        ("*:80", "localhost"),
    ] {
        let r = resolve(grant, name);
        assert_eq!(r.code, 0, "{grant} / {name}: {r:?}");
        assert!(loopback(&r), "{grant} / {name}: {r:?}");
    }
    // Address literals need no resolver.
    let r = resolve("nonexistent.invalid:80", "127.0.0.1");
    assert_eq!((r.code, r.stdout.as_str()), (0, "127.0.0.1\n"), "{r:?}");
}
