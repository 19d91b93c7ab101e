//! Policies end to end through the binary: `policy eval` and `policy test`
//! on Rego; the OPA-Wasm ABI host on hand-written modules (both evaluation
//! paths, data, builtins, and every failure mode); capability grants with
//! `run --policy` and a served manifest's `policy`.

mod common;
use common::*;
use std::path::{Path, PathBuf};

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p
}

/// The ABI fixture with its placeholders filled, as a binary module.
fn abi_module(dir: &Path, name: &str, minor: u32, builtins: &str, extra_import: &str) -> PathBuf {
    let wat = std::fs::read_to_string(fixture("policies/abi.wat"))
        .unwrap()
        .replace("MINOR_VERSION", &minor.to_string())
        .replace("BUILTINS", &builtins.replace('"', "\\\""))
        .replace("EXTRA_IMPORT", extra_import);
    let wasm = wat::parse_str(&wat).unwrap();
    let p = dir.join(name);
    std::fs::write(&p, wasm).unwrap();
    p
}

fn eval(args: &[&str]) -> Run {
    let mut v = vec!["policy", "eval", "--compact"];
    v.extend(args);
    run(v)
}

const EXAMPLE: &str = r#"package example

default allow := false

allow if input.user in data.admins

deny contains msg if {
	some c in input.containers
	c.privileged
	msg := sprintf("container %s is privileged", [c.name])
}

hash := crypto.sha256(input.user)
"#;

#[test]
fn eval_rego_prints_result_sets() {
    let t = tempdir();
    let p = s(&write(t.path(), "example.rego", EXAMPLE));
    let data = s(&write(t.path(), "admins.json", r#"{"admins": ["alice"]}"#));
    let input = s(&write(
        t.path(),
        "input.json",
        r#"{"user": "alice", "containers": [{"name": "a", "privileged": true}, {"name": "b"}]}"#,
    ));
    let r = eval(&[&p, "-d", &data, "-i", &input, "-e", "example/allow"]);
    assert_eq!(
        (r.code, r.stdout.trim()),
        (0, r#"[{"result":true}]"#),
        "{r:?}"
    );
    let r = eval(&[&p, "-d", &data, "-i", &input, "-e", "data.example.deny"]);
    assert_eq!(
        r.stdout.trim(),
        r#"[{"result":["container a is privileged"]}]"#,
        "{r:?}"
    );
    // Input from standard input; a data file given as a policy path.
    let out = wasmlayer()
        .args([
            "policy",
            "eval",
            "--compact",
            &p,
            &data,
            "-i",
            "-",
            "-e",
            "example.allow",
        ])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .and_then(|mut c| {
            use std::io::Write;
            c.stdin
                .take()
                .unwrap()
                .write_all(br#"{"user": "mallory"}"#)?;
            c.wait_with_output()
        })
        .unwrap();
    let r = output(out);
    assert_eq!(r.stdout.trim(), r#"[{"result":false}]"#, "{r:?}");
    // The whole package; an undefined rule is an empty result set, and --fail makes it exit 1.
    let r = eval(&[&p, "-d", &data, "-i", &input]);
    assert!(
        r.stdout.contains(
            r#""hash":"2bd806c97f0e00af1a1fc3328fa763a9269723c8db8fac4f93af71db186d6e90""#
        ),
        "{r:?}"
    );
    let undefined = write(t.path(), "u.rego", "package u\nx if input.nothing\n");
    let r = eval(&[&s(&undefined), "-e", "u/x"]);
    assert_eq!((r.code, r.stdout.trim()), (0, "[]"), "{r:?}");
    let r = eval(&[&s(&undefined), "-e", "u/x", "--fail"]);
    assert_eq!(r.code, 1, "{r:?}");
}

#[test]
fn bad_policies_and_inputs_are_clear_errors() {
    let t = tempdir();
    let bad = s(&write(
        t.path(),
        "bad.rego",
        "package bad\n\nallow if {\n  input.x ==\n}\n",
    ));
    let r = eval(&[&bad]);
    assert_eq!(r.code, 65, "{r:?}");
    assert!(
        r.stderr.contains("bad.rego:"),
        "the error names file and line: {r:?}"
    );
    let good = s(&write(t.path(), "good.rego", EXAMPLE));
    let r = eval(&[&good, "-e", "example/nothing"]);
    assert_eq!(r.code, 65, "{r:?}");
    assert!(r.stderr.contains("example/nothing"), "{r:?}");
    let input = s(&write(t.path(), "in.json", "{\"user\": "));
    let r = eval(&[&good, "-i", &input]);
    assert_eq!(r.code, 2, "{r:?}");
    assert!(r.stderr.contains("not valid JSON"), "{r:?}");
    let r = eval(&[&good, "-i", "/nonexistent/input.json"]);
    assert_eq!(r.code, 127, "{r:?}");
    let garbage = s(&write(t.path(), "garbage.wasm", "not wasm at all"));
    let r = eval(&[&garbage]);
    assert_eq!(r.code, 65, "{r:?}");
    let truncated = t.path().join("truncated.wasm");
    std::fs::write(&truncated, &b"\0asm\x01\0\0\0\x01\x05"[..]).unwrap();
    let r = eval(&[&s(&truncated)]);
    assert_eq!(r.code, 65, "{r:?}");
    assert!(r.stderr.contains("not a valid WebAssembly module"), "{r:?}");
    // A runaway evaluation ends at the time limit.
    let slow = s(&write(
        t.path(),
        "slow.rego",
        "package slow\n\nr := numbers.range(1, 20000)\n\nx := count([1 | some i in r; some j in r])\n",
    ));
    let r = eval(&[&slow, "-e", "slow/x"]);
    assert_eq!(r.code, 124, "{r:?}");
    assert!(r.stderr.contains("wall-clock timeout"), "{r:?}");
    let bad_bundle = s(&write(t.path(), "bundle.tar.gz", "\x1f\u{8b}garbage"));
    let r = eval(&[&bad_bundle]);
    assert_eq!(r.code, 65, "{r:?}");
}

#[test]
fn policy_test_reports_each_test() {
    let t = tempdir();
    write(
        t.path(),
        "p.rego",
        "package p\n\nlimit := 3\n\nok(n) if n <= limit\n",
    );
    write(
        t.path(),
        "p_test.rego",
        "package p_test\n\nimport data.p\n\ntest_small if p.ok(2)\n\ntest_large if not p.ok(4)\n\ntest_wrong if p.ok(5)\n",
    );
    let r = run(["policy", "test", "--show-all", &s(t.path())]);
    assert_eq!(r.code, 1, "a failing test fails the run: {r:?}");
    assert!(r.stdout.contains("data.p_test.test_small: PASS"), "{r:?}");
    assert!(r.stdout.contains("data.p_test.test_large: PASS"), "{r:?}");
    assert!(r.stdout.contains("data.p_test.test_wrong: FAIL"), "{r:?}");
    assert!(
        r.stdout.contains("PASS: 2/3") && r.stdout.contains("FAIL: 1/3"),
        "{r:?}"
    );
    std::fs::remove_file(t.path().join("p_test.rego")).unwrap();
    write(
        t.path(),
        "p_test.rego",
        "package p_test\n\nimport data.p\n\ntest_small if p.ok(2)\n",
    );
    let r = run(["policy", "test", &s(t.path())]);
    assert_eq!((r.code, r.stdout.contains("PASS: 1/1")), (0, true), "{r:?}");
    // The example capability policies' own tests.
    for dir in ["readonly-dirs", "network-allowlist", "memory-cap"] {
        let r = run([
            "policy",
            "test",
            &s(&root().join("examples/policies").join(dir)),
        ]);
        assert_eq!(r.code, 0, "{dir}: {r:?}");
    }
}

#[test]
fn abi_host_evaluates_with_both_calling_conventions() {
    let t = tempdir();
    let data = s(&write(t.path(), "data.json", r#"{"limits": {"cpu": 2}}"#));
    let input = s(&write(
        t.path(),
        "input.json",
        r#"{"user": "alice", "n": [1, 2.5, null]}"#,
    ));
    // Minor 2: the single-call opa_eval; minor 1: the opa_eval_ctx_* calls.
    for minor in [2, 1] {
        let m = s(&abi_module(
            t.path(),
            &format!("abi{minor}.wasm"),
            minor,
            "{}",
            "",
        ));
        let r = eval(&[&m, "-d", &data, "-i", &input, "-e", "echo/input"]);
        assert_eq!(
            (r.code, r.stdout.trim()),
            (0, r#"[{"result":{"n":[1,2.5,null],"user":"alice"}}]"#),
            "minor {minor}: {r:?}"
        );
        let r = eval(&[&m, "-d", &data, "-e", "data.echo.data"]);
        assert_eq!(
            r.stdout.trim(),
            r#"[{"result":{"limits":{"cpu":2}}}]"#,
            "minor {minor}: {r:?}"
        );
        // No input: the module sees none.
        let r = eval(&[&m, "-e", "echo/input"]);
        assert_eq!(r.stdout.trim(), "[]", "minor {minor}: {r:?}");
        let r = eval(&[&m, "-e", "nope"]);
        assert_eq!(r.code, 65, "{r:?}");
        assert!(
            r.stderr.contains("echo/input"),
            "lists the entrypoints: {r:?}"
        );
    }
}

#[test]
fn abi_host_loads_bundles() {
    let t = tempdir();
    let b = t.path().join("bundle");
    std::fs::create_dir_all(b.join("limits")).unwrap();
    abi_module(&b, "policy.wasm", 2, "{}", "");
    write(&b, "data.json", r#"{"top": true}"#);
    write(&b.join("limits"), "data.json", r#"{"cpu": 4}"#);
    write(
        &b,
        ".manifest",
        r#"{"revision": "1", "wasm": [{"entrypoint": "echo/data", "module": "/policy.wasm"}]}"#,
    );
    let bundle = t.path().join("bundle.tar.gz");
    let st = std::process::Command::new("tar")
        .args([
            "-czf",
            &s(&bundle),
            "-C",
            &s(&b),
            "policy.wasm",
            "data.json",
            "limits/data.json",
            ".manifest",
        ])
        .status()
        .unwrap();
    assert!(st.success());
    let r = eval(&[&s(&bundle), "-e", "echo/data"]);
    assert_eq!(
        (r.code, r.stdout.trim()),
        (0, r#"[{"result":{"limits":{"cpu":4},"top":true}}]"#),
        "{r:?}"
    );
    // A bundle without a module.
    let empty = t.path().join("empty.tar.gz");
    std::process::Command::new("tar")
        .args(["-czf", &s(&empty), "-C", &s(&b), "data.json"])
        .status()
        .unwrap();
    let r = eval(&[&s(&empty)]);
    assert_eq!(r.code, 65, "{r:?}");
    assert!(r.stderr.contains("no policy.wasm"), "{r:?}");
}

#[test]
fn abi_host_calls_builtins_and_names_missing_ones() {
    let t = tempdir();
    let m = s(&abi_module(
        t.path(),
        "b.wasm",
        2,
        r#"{"crypto.sha256":0}"#,
        "",
    ));
    let input = s(&write(t.path(), "in.json", r#""abc""#));
    let r = eval(&[&m, "-i", &input, "-e", "builtin/first"]);
    assert_eq!(
        r.stdout.trim(),
        r#"[{"result":"ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"}]"#,
        "{r:?}"
    );
    // A builtin called with the wrong argument is an error naming it.
    let wrong = s(&write(t.path(), "wrong.json", "[1]"));
    let r = eval(&[&m, "-i", &wrong, "-e", "builtin/first"]);
    assert_eq!(r.code, 65, "{r:?}");
    assert!(r.stderr.contains("crypto.sha256"), "{r:?}");
    // Builtins the host lacks fail at load, by name.
    let m = s(&abi_module(
        t.path(),
        "missing.wasm",
        2,
        r#"{"crypto.sha256":0,"custom.lookup":1}"#,
        "",
    ));
    let r = eval(&[&m, "-e", "echo/input"]);
    assert_eq!(r.code, 65, "{r:?}");
    assert!(r.stderr.contains("`custom.lookup`"), "{r:?}");
    // Imports outside the ABI are refused at load.
    let m = s(&abi_module(
        t.path(),
        "import.wasm",
        2,
        "{}",
        r#"(import "env" "getrandom" (func))"#,
    ));
    let r = eval(&[&m]);
    assert_eq!(r.code, 65, "{r:?}");
    assert!(r.stderr.contains("env.getrandom"), "{r:?}");
}

#[test]
fn abi_host_failures_are_clear_errors() {
    let t = tempdir();
    for minor in [2, 1] {
        let m = s(&abi_module(
            t.path(),
            &format!("f{minor}.wasm"),
            minor,
            "{}",
            "",
        ));
        let r = eval(&[&m, "-e", "bad/abort"]);
        assert_eq!(r.code, 65, "{r:?}");
        assert!(
            r.stderr
                .contains("policy aborted: boom: the policy gave up"),
            "{r:?}"
        );
        let r = eval(&[&m, "-e", "bad/json"]);
        assert_eq!(r.code, 65, "{r:?}");
        assert!(r.stderr.contains("malformed JSON"), "{r:?}");
        let r = eval(&[&m, "-e", "bad/oom"]);
        assert_eq!(r.code, 137, "{r:?}");
        assert!(r.stderr.contains("memory limit"), "{r:?}");
        let r = eval(&[&m, "-e", "bad/loop"]);
        assert_eq!(r.code, 124, "{r:?}");
        assert!(r.stderr.contains("wall-clock timeout"), "{r:?}");
    }
}

fn policy_dir(name: &str) -> String {
    s(&root().join("examples/policies").join(name))
}

#[test]
fn run_policy_makes_directories_read_only() {
    let t = tempdir();
    std::fs::create_dir(t.path().join("box")).unwrap();
    std::fs::write(t.path().join("box/in.txt"), "inside").unwrap();
    let dir = format!("{}::/data", s(&t.path().join("box")));
    let g = s(&guest("hostile-p1.wasm"));
    let policy = format!("{}/policy.rego", policy_dir("readonly-dirs"));
    // Without the policy the guest may write.
    let r = run(["run", "--dir", &dir, &g, "write", "/data/new.txt", "x"]);
    assert_eq!(r.code, 0, "{r:?}");
    std::fs::remove_file(t.path().join("box/new.txt")).unwrap();
    // With it the directory is granted read-only: reads work, writes fail.
    let r = run([
        "run",
        "--policy",
        &policy,
        "--dir",
        &dir,
        &g,
        "read",
        "/data/in.txt",
    ]);
    assert_eq!((r.code, r.stdout.as_str()), (0, "inside"), "{r:?}");
    let r = run([
        "run",
        "--policy",
        &policy,
        "--dir",
        &dir,
        &g,
        "write",
        "/data/new.txt",
        "x",
    ]);
    assert_ne!(r.code, 0, "{r:?}");
    assert!(
        !t.path().join("box/new.txt").exists(),
        "nothing was written"
    );
}

#[test]
fn run_policy_denies_network_to_artifacts_not_on_the_allowlist() {
    let g = guest("hostile-p2.wasm");
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let target = l.local_addr().unwrap().to_string();
    std::thread::spawn(move || {
        use std::io::Write;
        for c in l.incoming().flatten() {
            let mut c = c;
            let _ = c.write_all(b"pong\n");
        }
    });
    let dir = policy_dir("network-allowlist");
    let rego = format!("{dir}/policy.rego");
    let r = run([
        "run",
        "--policy",
        &rego,
        "--policy",
        &format!("{dir}/data.json"),
        "--allow-net",
        &target,
        &s(&g),
        "connect",
        &target,
    ]);
    assert_eq!(r.code, 77, "{r:?}");
    assert!(
        r.stderr.contains("is not on the network allowlist"),
        "{r:?}"
    );
    assert!(r.stderr.contains(&target), "{r:?}");
    // The same artifact with no network asked for is fine.
    let r = run(["run", "--policy", &rego, &s(&g), "exit", "0"]);
    assert_eq!(r.code, 0, "{r:?}");
    // Once its hash is on the allowlist, it may connect.
    let sha = {
        use sha2::Digest;
        hex(&sha2::Sha256::digest(std::fs::read(&g).unwrap()))
    };
    let t = tempdir();
    let data = write(
        t.path(),
        "allow.json",
        &format!(r#"{{"wasmlayer": {{"network_allowlist": ["{sha}"]}}}}"#),
    );
    let r = run([
        "run",
        "--policy",
        &rego,
        "--policy",
        &s(&data),
        "--allow-net",
        &target,
        &s(&g),
        "connect",
        &target,
    ]);
    assert_eq!((r.code, r.stdout.trim()), (0, "pong"), "{r:?}");
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

#[test]
fn run_policy_caps_memory_and_lists_every_reason() {
    let g = s(&guest("hostile-p1.wasm"));
    let policy = format!("{}/policy.rego", policy_dir("memory-cap"));
    let r = run([
        "run",
        "--policy",
        &policy,
        "--max-memory",
        "1GiB",
        &g,
        "membomb",
    ]);
    assert_eq!(r.code, 137, "{r:?}");
    assert!(
        r.stderr.contains("128 MiB"),
        "the cap, not the request, applied: {r:?}"
    );
    let t = tempdir();
    let strict = write(
        t.path(),
        "strict.rego",
        r#"package wasmlayer.admission

default allow := false

allow if count(reasons) == 0

reasons contains "environment variables are not allowed" if count(input.requested.env) > 0

reasons contains sprintf("%s may only be used by `serve`", [input.artifact.kind]) if input.context.command != "serve"
"#,
    );
    let r = run([
        "run",
        "--policy",
        &s(&strict),
        "--env",
        "A=1",
        &g,
        "exit",
        "0",
    ]);
    assert_eq!(r.code, 77, "{r:?}");
    assert!(
        r.stderr.contains("environment variables are not allowed"),
        "{r:?}"
    );
    assert!(
        r.stderr.contains("module may only be used by `serve`"),
        "{r:?}"
    );
    // Not a capability policy, or not a policy at all: a policy error.
    let other = write(t.path(), "other.rego", "package other\n\nallow := true\n");
    let r = run(["run", "--policy", &s(&other), &g, "exit", "0"]);
    assert_eq!(r.code, 65, "{r:?}");
    assert!(r.stderr.contains("wasmlayer.admission"), "{r:?}");
    let broken = write(
        t.path(),
        "broken.rego",
        "package wasmlayer.admission\n\nallow if {\n",
    );
    let r = run(["run", "--policy", &s(&broken), &g, "exit", "0"]);
    assert_eq!(r.code, 65, "{r:?}");
    assert!(r.stderr.contains("broken.rego:"), "{r:?}");
}

#[test]
fn serve_manifest_policy_judges_every_route() {
    let t = tempdir();
    let dir = policy_dir("network-allowlist");
    let manifest = write(
        t.path(),
        "wasmlayer.toml",
        &format!(
            r#"policy = ["{dir}/policy.rego", "{dir}/data.json"]

[server]
listen = "127.0.0.1:0"
admin = "127.0.0.1:0"

[[route]]
path = "/"
component = "{hello}"

[[route]]
path = "/up"
component = "{upstream}"
allow_http = ["127.0.0.1:9"]
"#,
            hello = s(&guest("http-hello.wasm")),
            upstream = s(&guest("http-upstream.wasm")),
        ),
    );
    let r = run(["serve", &s(&manifest)]);
    assert_eq!(r.code, 77, "{r:?}");
    assert!(r.stderr.contains("route /up:"), "{r:?}");
    assert!(r.stderr.contains("127.0.0.1:9"), "{r:?}");
    assert!(
        !r.stderr.contains("route /:"),
        "the hello route asks for no network: {r:?}"
    );
}

#[test]
fn run_policy_accepts_a_policy_built_to_wasm() {
    let t = tempdir();
    let wasm = t.path().join("cap.wasm");
    let r = run([
        "policy",
        "build",
        &format!("{}/policy.rego", policy_dir("memory-cap")),
        "-o",
        &s(&wasm),
    ]);
    assert_eq!(r.code, 0, "{r:?}");
    let g = s(&guest("hostile-p1.wasm"));
    let r = run([
        "run",
        "--policy",
        &s(&wasm),
        "--max-memory",
        "1GiB",
        &g,
        "membomb",
    ]);
    assert_eq!(r.code, 137, "{r:?}");
    assert!(r.stderr.contains("128 MiB"), "{r:?}");
    let dir = policy_dir("network-allowlist");
    let wasm = t.path().join("net.wasm");
    let r = run([
        "policy",
        "build",
        &format!("{dir}/policy.rego"),
        &format!("{dir}/data.json"),
        "-o",
        &s(&wasm),
    ]);
    assert_eq!(r.code, 0, "{r:?}");
    let r = run([
        "run",
        "--policy",
        &s(&wasm),
        "--allow-net",
        "127.0.0.1:9",
        &s(&guest("hostile-p2.wasm")),
        "exit",
        "0",
    ]);
    assert_eq!(r.code, 77, "{r:?}");
    assert!(
        r.stderr.contains("is not on the network allowlist"),
        "{r:?}"
    );
}

#[test]
fn policy_bench_reports_latency_and_the_result() {
    let t = tempdir();
    let p = s(&write(t.path(), "example.rego", EXAMPLE));
    let data = s(&write(t.path(), "admins.json", r#"{"admins": ["alice"]}"#));
    let input = s(&write(
        t.path(),
        "input.json",
        r#"{"user": "alice", "containers": []}"#,
    ));
    let wasm = t.path().join("example.wasm");
    let r = run([
        "policy",
        "build",
        &p,
        &data,
        "-e",
        "example/allow",
        "-o",
        &s(&wasm),
    ]);
    assert_eq!(r.code, 0, "{r:?}");
    for (policy, engine) in [
        (vec![p.as_str(), data.as_str()], "native"),
        (vec![wasm.to_str().unwrap()], "wasm"),
    ] {
        let mut args = vec!["policy", "bench"];
        args.extend(policy);
        args.extend(["-i", &input, "-e", "example/allow", "-n", "50", "--json"]);
        let r = run(args);
        assert_eq!(r.code, 0, "{r:?}");
        let report: serde_json::Value = serde_json::from_str(r.stdout.trim()).unwrap();
        assert_eq!(report["engine"], engine, "{r:?}");
        assert_eq!(report["count"], 50, "{r:?}");
        assert_eq!(
            report["result"],
            serde_json::json!([{"result": true}]),
            "{r:?}"
        );
        let (p50, p99) = (
            report["p50_us"].as_f64().unwrap(),
            report["p99_us"].as_f64().unwrap(),
        );
        assert!(p50 > 0.0 && p99 >= p50, "{r:?}");
    }
    let r = run(["policy", "bench", &p, "-n", "0"]);
    assert_eq!(r.code, 2, "{r:?}");
}
