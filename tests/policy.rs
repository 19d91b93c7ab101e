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

/// `policy build` compiles (a query's literals in the order they can run);
/// what the compiler does not support fails with the construct, its place
/// and a non-zero exit, and `--interpreter` builds it; both modules give
/// regorus's answer.
/// Rego v0 (before OPA 1.0; Gatekeeper's templates), with `--v0-compatible`
/// as in OPA: without it, a clear error at the rule; with it, `eval`,
/// `test` and both kinds of `build` take the policy; a module importing
/// `rego.v1` stays v1 beside it.
#[test]
fn v0_policies_need_v0_compatible_and_then_evaluate_and_build() {
    let t = tempdir();
    let v0 = s(&write(
        t.path(),
        "tags.rego",
        "package k8sdisallowedtags\n\nviolation[{\"msg\": msg}] {\n  c := input.containers[_]\n  not contains(c.image, \":\")\n  msg := sprintf(\"container <%v> has no tag\", [c.name])\n}\n\ncount_images = n {\n  n := count(input.containers)\n}\n",
    ));
    let v1 = s(&write(
        t.path(),
        "v1.rego",
        "package modern\n\nimport rego.v1\n\nnames contains n if some n in data.k8sdisallowedtags.violation\n",
    ));
    let tests = write(
        t.path(),
        "tags_test.rego",
        "package k8sdisallowedtags\n\ntest_untagged {\n  count(violation) == 1 with input as {\"containers\": [{\"name\": \"a\", \"image\": \"nginx\"}]}\n}\n",
    );
    let input = s(&write(
        t.path(),
        "input.json",
        r#"{"containers": [{"name": "a", "image": "nginx"}, {"name": "b", "image": "nginx:1.25"}]}"#,
    ));
    let expected = r#"[{"result":[{"msg":"container <a> has no tag"}]}]"#;

    // Without the flag: Rego v1, and the rule's place in the error.
    let r = eval(&[&v0, "-i", &input, "-e", "k8sdisallowedtags/violation"]);
    assert_eq!(r.code, 65, "{r:?}");
    assert!(r.stderr.contains("tags.rego:3:"), "{r:?}");
    let wasm = t.path().join("tags.wasm");
    let r = run(["policy", "build", &v0, "-o", &s(&wasm)]);
    assert_eq!((r.code, wasm.exists()), (65, false), "{r:?}");

    let r = eval(&[
        "--v0-compatible",
        &v0,
        &v1,
        "-i",
        &input,
        "-e",
        "k8sdisallowedtags/violation",
    ]);
    assert_eq!((r.code, r.stdout.trim()), (0, expected), "{r:?}");
    let r = eval(&[
        "--v0-compatible",
        &v0,
        &v1,
        "-i",
        &input,
        "-e",
        "modern/names",
    ]);
    assert_eq!(
        (r.code, r.stdout.trim()),
        (0, r#"[{"result":[{"msg":"container <a> has no tag"}]}]"#),
        "{r:?}"
    );
    let r = run(["policy", "test", "--v0-compatible", &v0, &s(&tests)]);
    assert_eq!((r.code, r.stdout.contains("PASS: 1/1")), (0, true), "{r:?}");
    let r = run([
        "policy",
        "bench",
        "--v0-compatible",
        &v0,
        "-i",
        &input,
        "-e",
        "k8sdisallowedtags/violation",
        "-n",
        "10",
        "--json",
    ]);
    assert_eq!(r.code, 0, "{r:?}");
    let bench: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
    assert_eq!(bench["result"].to_string(), expected, "{r:?}");

    for interpreter in [false, true] {
        let mut args = vec!["policy", "build", "--v0-compatible"];
        if interpreter {
            args.push("--interpreter");
        }
        let out = s(&wasm);
        args.extend([
            v0.as_str(),
            v1.as_str(),
            "-e",
            "k8sdisallowedtags/violation",
            "-e",
            "k8sdisallowedtags/count_images",
            "-o",
            &out,
        ]);
        let r = run(args);
        assert_eq!(r.code, 0, "interpreter {interpreter}: {r:?}");
        let r = eval(&[&out, "-i", &input, "-e", "k8sdisallowedtags/violation"]);
        assert_eq!(
            (r.code, r.stdout.trim()),
            (0, expected),
            "interpreter {interpreter}: {r:?}"
        );
        let r = eval(&[&out, "-i", &input, "-e", "k8sdisallowedtags/count_images"]);
        assert_eq!(
            (r.code, r.stdout.trim()),
            (0, r#"[{"result":2}]"#),
            "interpreter {interpreter}: {r:?}"
        );
    }
}

#[test]
fn policy_build_compiles_and_falls_back_to_the_interpreter_on_request() {
    let t = tempdir();
    let rules = s(&write(
        t.path(),
        "p.rego",
        "package p\n\na := 1\n\nb := 2\n",
    ));
    let q = s(&write(
        t.path(),
        "q.rego",
        "package q\n\nnames contains name if {\n\tsome name\n\tdata.p[name] == 1\n}\n\n# x is read before the literal that binds it.\nok if {\n\tx == 1\n\tx = input.x\n}\n",
    ));
    let input = s(&write(t.path(), "input.json", r#"{"x": 1}"#));
    let wasm = t.path().join("q.wasm");
    let r = run([
        "policy",
        "build",
        &rules,
        &q,
        "-e",
        "q/names",
        "-o",
        &s(&wasm),
    ]);
    assert_eq!(r.code, 65, "{r:?}");
    assert!(r.stderr.contains("q.rego:5:"), "{r:?}");
    assert!(r.stderr.contains("--interpreter"), "{r:?}");
    assert!(!wasm.exists());

    let r = run([
        "policy",
        "build",
        "--interpreter",
        &rules,
        &q,
        "-e",
        "q/names",
        "-o",
        &s(&wasm),
    ]);
    assert_eq!(r.code, 0, "{r:?}");
    let r = run(["policy", "eval", &s(&wasm), "-e", "q/names", "--compact"]);
    assert_eq!(r.stdout.trim(), r#"[{"result":["a"]}]"#, "{r:?}");

    let compiled = t.path().join("ok.wasm");
    let r = run([
        "policy",
        "build",
        &rules,
        &q,
        "-e",
        "q/ok",
        "-o",
        &s(&compiled),
    ]);
    assert_eq!(r.code, 0, "{r:?}");
    assert!(std::fs::metadata(&compiled).unwrap().len() < 142 * 1024);
    let r = run([
        "policy",
        "eval",
        &s(&compiled),
        "-i",
        &input,
        "-e",
        "q/ok",
        "--compact",
    ]);
    assert_eq!(r.stdout.trim(), r#"[{"result":true}]"#, "{r:?}");
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

/// `wasmlayer ARGS...` with its address space capped at 6 GB (`ulimit -v`),
/// so that an evaluation that escaped its memory bound fails here at once
/// instead of taking the machine's memory; and how long it ran.
fn run_capped(args: &[&str]) -> (Run, std::time::Duration) {
    let mut cmd = std::process::Command::new("sh");
    cmd.env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("XDG_CACHE_HOME", shared_cache())
        .stdin(std::process::Stdio::null())
        .args([
            "-c",
            "ulimit -v 6000000 && exec \"$0\" \"$@\"",
            env!("CARGO_BIN_EXE_wasmlayer"),
        ])
        .args(args);
    let start = std::time::Instant::now();
    let r = run_with(&mut cmd);
    (r, start.elapsed())
}

/// The evaluation ended at the memory limit: exit 137 with a line that
/// names the limit, neither an abort nor a signal.
fn assert_memory_limit(r: &Run) {
    assert_eq!(r.code, 137, "{r:?}");
    assert!(r.stderr.contains("memory limit (256 MiB)"), "{r:?}");
    assert!(!r.stderr.contains("memory allocation"), "{r:?}");
}

/// Rules whose arrays would take 24 GB and 2.4 GB; one whose string grows
/// past the limit by doubling (no size check before, so the budget itself
/// stops it); every address of IPv6.
const BLOWUPS: &str = r#"package rg

range := count(numbers.range(1, 1000000000))

range_small := count(numbers.range(1, 100000000))

a := concat("", ["a" | some _ in numbers.range(1, 20000)])

grow := count(replace(a, "a", a))

cidrs := count(net.cidr_expand("::/0"))

fine := count(numbers.range(1, 1000))
"#;

#[test]
fn native_evaluations_past_the_memory_limit_end_with_137() {
    let t = tempdir();
    let p = s(&write(t.path(), "r.rego", BLOWUPS));
    for rule in ["rg/range", "rg/range_small", "rg/grow", "rg/cidrs"] {
        let (r, took) = run_capped(&["policy", "eval", &p, "-e", rule]);
        assert_memory_limit(&r);
        assert!(
            r.stderr.contains("policy evaluation exceeded"),
            "{rule}: {r:?}"
        );
        assert!(took.as_secs() < 20, "{rule} took {took:?}");
    }
    // The same policy still evaluates what fits.
    let (r, _) = run_capped(&["policy", "eval", "--compact", &p, "-e", "rg/fine"]);
    assert_eq!(
        (r.code, r.stdout.trim()),
        (0, r#"[{"result":1000}]"#),
        "{r:?}"
    );
    // The builtins keep the interpreter's behaviour.
    let same = s(&write(
        t.path(),
        "same.rego",
        "package same\n\nup := numbers.range(1, 4)\n\ndown := numbers.range(2, -1)\n\n\
         step := numbers.range_step(10, 1, 4)\n\nhosts := net.cidr_expand(\"10.0.0.0/30\")\n",
    ));
    let (r, _) = run_capped(&["policy", "eval", "--compact", &same, "-e", "same"]);
    assert_eq!(
        (r.code, r.stdout.trim()),
        (
            0,
            r#"[{"result":{"down":[2,1,0,-1],"hosts":["10.0.0.0","10.0.0.1","10.0.0.2","10.0.0.3"],"step":[10,6,2],"up":[1,2,3,4]}}]"#
        ),
        "{r:?}"
    );
    // `policy bench` evaluates on the calling thread: past the budget, the
    // process ends itself, with the same line and code.
    for rule in ["rg/range", "rg/grow"] {
        let (r, _) = run_capped(&["policy", "bench", &p, "-e", rule, "-n", "10"]);
        assert_memory_limit(&r);
    }
    // A test past the limit is an error; the others still run.
    let tests = s(&write(
        t.path(),
        "t_test.rego",
        "package t_test\n\ntest_bomb if count(numbers.range(1, 1000000000)) > 0\n\n\
         test_grow if { a := concat(\"\", [\"a\" | some _ in numbers.range(1, 20000)]); count(replace(a, \"a\", a)) > 0 }\n\n\
         test_ok if count(numbers.range(1, 10)) == 10\n",
    ));
    let (r, _) = run_capped(&["policy", "test", "--show-all", &tests]);
    assert_eq!(r.code, 1, "{r:?}");
    assert!(r.stdout.contains("data.t_test.test_bomb: ERROR"), "{r:?}");
    assert!(r.stdout.contains("data.t_test.test_grow: ERROR"), "{r:?}");
    assert!(r.stdout.contains("data.t_test.test_ok: PASS"), "{r:?}");
    assert!(r.stdout.contains("memory limit"), "{r:?}");
    assert!(r.stdout.contains("ERROR: 2/3"), "{r:?}");
}

#[test]
fn run_policy_past_the_memory_limit_ends_with_137() {
    let t = tempdir();
    let g = s(&guest("hello-p1.wasm"));
    for (name, rule) in [
        ("range", "count(numbers.range(1, 1000000000)) > 0"),
        (
            "grow",
            "{ a := concat(\"\", [\"a\" | some _ in numbers.range(1, 20000)]); count(replace(a, \"a\", a)) > 0 }",
        ),
    ] {
        let p = s(&write(
            t.path(),
            &format!("{name}.rego"),
            &format!("package wasmlayer.admission\n\ndefault allow := false\n\nallow if {rule}\n"),
        ));
        let (r, took) = run_capped(&["run", "--policy", &p, &g]);
        assert_memory_limit(&r);
        assert!(r.stderr.contains(&p), "the policy is named: {r:?}");
        assert!(r.stdout.is_empty(), "the guest did not run: {r:?}");
        assert!(took.as_secs() < 20, "{name} took {took:?}");
    }
}

/// A gzipped tar of `entries` (name, MiB): each entry a valid JSON
/// document, `{}` and then spaces, made in a moment whatever its size: one
/// MiB of spaces is compressed once (flushed to a byte boundary, with
/// back-references only to the spaces before it) and repeated, as a
/// decompression bomb is made.
fn space_bundle(entries: &[(&str, u64)]) -> Vec<u8> {
    use flate2::{Compress, Compression, Crc, FlushCompress};
    fn deflate(c: &mut Compress, mut data: &[u8], flush: FlushCompress, out: &mut Vec<u8>) {
        let mut buf = vec![0u8; 64 << 10];
        loop {
            let (i, o) = (c.total_in(), c.total_out());
            c.compress(data, &mut buf, flush).unwrap();
            let produced = (c.total_out() - o) as usize;
            data = &data[(c.total_in() - i) as usize..];
            out.extend_from_slice(&buf[..produced]);
            if data.is_empty() && produced < buf.len() {
                return;
            }
        }
    }
    let spaces = vec![b' '; 1 << 20];
    let mut first = spaces.clone();
    first[..2].copy_from_slice(b"{}");
    let mut spaces_crc = Crc::new();
    spaces_crc.update(&spaces);
    let mut c = Compress::new(Compression::best(), false);
    let (mut body, mut crc, mut total) = (Vec::new(), Crc::new(), 0u64);
    for (name, size) in entries {
        let mut h = tar::Header::new_ustar();
        h.set_path(name).unwrap();
        h.set_size(size << 20);
        h.set_mode(0o644);
        h.set_cksum();
        deflate(&mut c, h.as_bytes(), FlushCompress::Sync, &mut body);
        crc.update(h.as_bytes());
        deflate(&mut c, &first, FlushCompress::Sync, &mut body);
        crc.update(&first);
        // The second MiB's output stands for any MiB of spaces after
        // spaces.
        let mut steady = Vec::new();
        deflate(&mut c, &spaces, FlushCompress::Sync, &mut steady);
        for _ in 1..*size {
            body.extend_from_slice(&steady);
            crc.combine(&spaces_crc);
        }
        total += 512 + (size << 20);
    }
    let end = [0u8; 1024];
    deflate(&mut c, &end, FlushCompress::Finish, &mut body);
    crc.update(&end);
    total += 1024;
    let mut gz = vec![0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 0xff];
    gz.extend_from_slice(&body);
    gz.extend_from_slice(&crc.sum().to_le_bytes());
    gz.extend_from_slice(&(total as u32).to_le_bytes());
    gz
}

#[test]
fn bundle_bombs_are_refused_early() {
    let t = tempdir();
    // The shape of the bomb is right: a small archive that inflates to
    // what it says, valid JSON in each entry (checked on a small one,
    // fully).
    let small = space_bundle(&[("a/data.json", 3), ("b/data.json", 2)]);
    let mut inflated = Vec::new();
    use std::io::Read;
    flate2::read::GzDecoder::new(&small[..])
        .read_to_end(&mut inflated)
        .unwrap();
    assert_eq!(inflated.len(), 2 * 512 + (5 << 20) + 1024);
    let mut archive = tar::Archive::new(&inflated[..]);
    for (entry, size) in archive.entries().unwrap().zip([3u64, 2]) {
        let mut entry = entry.unwrap();
        assert_eq!(entry.size(), size << 20);
        let mut text = String::new();
        entry.read_to_string(&mut text).unwrap();
        assert_eq!(
            serde_json::from_str::<serde_json::Value>(&text).unwrap(),
            serde_json::json!({})
        );
    }

    // Four entries of 500 MiB in about 2 MB: refused at the first header.
    let names = ["a/data.json", "b/data.json", "c/data.json", "d/data.json"];
    let four: Vec<(&str, u64)> = names.iter().map(|n| (*n, 500)).collect();
    let bomb = space_bundle(&four);
    assert!(bomb.len() < 4 << 20, "{} bytes", bomb.len());
    let path = t.path().join("bomb.tar.gz");
    std::fs::write(&path, &bomb).unwrap();
    for args in [
        vec!["policy", "eval", path.to_str().unwrap()],
        vec![
            "run",
            "--policy",
            path.to_str().unwrap(),
            guest("hello-p1.wasm").to_str().unwrap(),
        ],
    ] {
        let (r, took) = run_capped(&args.to_vec());
        assert_eq!(r.code, 65, "{r:?}");
        assert!(r.stderr.contains("bomb.tar.gz"), "{r:?}");
        assert!(r.stderr.contains("refused"), "{r:?}");
        assert!(r.stderr.contains("/a/data.json"), "{r:?}");
        assert!(r.stderr.contains("256 MiB"), "{r:?}");
        assert!(took.as_secs() < 10, "took {took:?}");
    }

    // Entries that each look modest, all spaces: refused by the ratio, after
    // about 16 MiB, long before the 256 MiB cap.
    let names: Vec<String> = (0..20).map(|i| format!("d{i}/data.json")).collect();
    let many: Vec<(&str, u64)> = names.iter().map(|n| (n.as_str(), 20)).collect();
    let path = t.path().join("many.tar.gz");
    std::fs::write(&path, space_bundle(&many)).unwrap();
    let (r, took) = run_capped(&["policy", "eval", path.to_str().unwrap()]);
    assert_eq!(r.code, 65, "{r:?}");
    assert!(r.stderr.contains("refused"), "{r:?}");
    assert!(r.stderr.contains("200 times its compressed size"), "{r:?}");
    assert!(took.as_secs() < 10, "took {took:?}");
}

/// A policy module is compiled into the runtime's one compile cache, under
/// the module's SHA-256 like any other WebAssembly, and a second load takes
/// it from there.
#[test]
fn policy_modules_share_the_runtimes_compile_cache() {
    let t = tempdir();
    let m = abi_module(t.path(), "abi.wasm", 2, "{}", "");
    let sha = {
        use sha2::Digest;
        let digest = sha2::Sha256::digest(std::fs::read(&m).unwrap());
        digest
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect::<String>()
    };
    let cache = t.path().join("xdg");
    let input = write(t.path(), "input.json", "[1]");
    let eval_in_cache = |verbose: bool| {
        let mut c = std::process::Command::new(env!("CARGO_BIN_EXE_wasmlayer"));
        c.env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("XDG_CACHE_HOME", &cache)
            .stdin(std::process::Stdio::null());
        if verbose {
            c.arg("-v");
        }
        c.args(["policy", "eval", "--compact", "-e", "echo/input", "-i"])
            .arg(&input)
            .arg(&m);
        run_with(&mut c)
    };
    let r = eval_in_cache(false);
    assert_eq!(r.code, 0, "{r:?}");
    let objects: Vec<String> = walk(&cache)
        .into_iter()
        .filter(|p| p.parent().is_some_and(|d| d.ends_with("objects")))
        .filter_map(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
        .collect();
    assert_eq!(objects, [format!("{sha}.cwasm")], "{objects:?}");
    let r = eval_in_cache(true);
    assert_eq!(r.code, 0, "{r:?}");
    assert!(r.stderr.contains("nothing compiled"), "{r:?}");
}

fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let p = e.path();
        if p.is_dir() {
            out.extend(walk(&p));
        } else {
            out.push(p);
        }
    }
    out
}
