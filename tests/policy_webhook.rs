//! `wasmlayer policy webhook`, end to end: the real binary serving
//! AdmissionReview v1 over real HTTPS (a CA and server certificate made
//! with the openssl CLI), driven by curl verifying against that CA.

mod common;
use common::server::{Serving, Spawned};
use common::*;
use serde_json::{json, Value as Json};
use sha2::{Digest, Sha256};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn k8s_policy() -> PathBuf {
    root().join("examples/policies/k8s")
}

fn sample(name: &str) -> PathBuf {
    root().join("examples/policies/k8s-reviews").join(name)
}

fn tool(name: &str) -> Command {
    let mut c = Command::new(name);
    c.env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .stdin(Stdio::null());
    c
}

fn require_tool(name: &str) {
    let ok = tool(name)
        .arg(if name == "openssl" {
            "version"
        } else {
            "--version"
        })
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    assert!(ok, "these tests need the `{name}` command on PATH");
}

fn openssl(dir: &Path, args: &[&str]) {
    let out = tool("openssl")
        .current_dir(dir)
        .args(args)
        .output()
        .expect("run openssl");
    assert!(
        out.status.success(),
        "openssl {args:?} failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A CA and a server certificate for 127.0.0.1 and localhost signed by it.
struct Tls {
    dir: tempfile::TempDir,
}

impl Tls {
    fn new() -> Tls {
        require_tool("openssl");
        require_tool("curl");
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        let ec = [
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
        ];
        let mut ca = vec!["req", "-x509"];
        ca.extend_from_slice(&ec);
        ca.extend_from_slice(&[
            "-keyout",
            "ca.key",
            "-out",
            "ca.crt",
            "-days",
            "2",
            "-subj",
            "/CN=webhook test CA",
        ]);
        openssl(d, &ca);
        let mut csr = vec!["req"];
        csr.extend_from_slice(&ec);
        csr.extend_from_slice(&[
            "-keyout",
            "server.key",
            "-out",
            "server.csr",
            "-subj",
            "/CN=localhost",
        ]);
        openssl(d, &csr);
        std::fs::write(
            d.join("server.ext"),
            "subjectAltName=IP:127.0.0.1,DNS:localhost\nbasicConstraints=CA:FALSE\n\
             keyUsage=digitalSignature\nextendedKeyUsage=serverAuth\n",
        )
        .unwrap();
        openssl(
            d,
            &[
                "x509",
                "-req",
                "-in",
                "server.csr",
                "-CA",
                "ca.crt",
                "-CAkey",
                "ca.key",
                "-CAcreateserial",
                "-out",
                "server.crt",
                "-days",
                "2",
                "-extfile",
                "server.ext",
            ],
        );
        Tls { dir }
    }

    fn path(&self, name: &str) -> String {
        self.dir.path().join(name).display().to_string()
    }
}

/// A running `wasmlayer policy webhook`, killed on drop.
struct Webhook {
    process: Spawned,
    port: u16,
    ca: String,
}

impl Serving for Webhook {
    fn process(&self) -> &Spawned {
        &self.process
    }

    fn process_mut(&mut self) -> &mut Spawned {
        &mut self.process
    }
}

impl Webhook {
    /// Starts the webhook on 127.0.0.1:0 with the TLS files and `args`.
    fn start(tls: &Tls, args: &[&str]) -> Webhook {
        Webhook::start_with(wasmlayer(), tls, args)
    }

    /// Like [`Webhook::start`], with the address space capped at 6 GB
    /// (`ulimit -v`): a policy that escaped its memory bound would end the
    /// server here rather than take the machine's memory.
    fn start_capped(tls: &Tls, args: &[&str]) -> Webhook {
        let mut sh = Command::new("sh");
        sh.env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("XDG_CACHE_HOME", shared_cache())
            .stdin(Stdio::null())
            .args([
                "-c",
                "ulimit -v 6000000 && exec \"$0\" \"$@\"",
                env!("CARGO_BIN_EXE_wasmlayer"),
            ]);
        Webhook::start_with(sh, tls, args)
    }

    fn start_with(mut cmd: Command, tls: &Tls, args: &[&str]) -> Webhook {
        cmd.args(["policy", "webhook", "--listen", "127.0.0.1:0"])
            .args([
                "--tls-cert",
                &tls.path("server.crt"),
                "--tls-key",
                &tls.path("server.key"),
            ])
            .args(args);
        let mut process = Spawned::spawn(cmd, "webhook");
        let port = process.started(|lines| {
            lines.iter().find_map(|l| {
                l.strip_prefix("webhook listening on https://127.0.0.1:")?
                    .trim()
                    .parse::<u16>()
                    .ok()
            })
        });
        Webhook {
            process,
            port,
            ca: tls.path("ca.crt"),
        }
    }

    fn url(&self, path: &str) -> String {
        format!("https://127.0.0.1:{}{path}", self.port)
    }

    /// curl against the webhook, verifying its certificate with the CA:
    /// (status, body).
    fn curl(&self, args: &[&str], body: Option<&[u8]>) -> (u16, String) {
        let mut cmd = tool("curl");
        cmd.args([
            "-sS",
            "--noproxy",
            "*",
            "--max-time",
            "30",
            "--cacert",
            &self.ca,
        ])
        .args(["-o", "-", "-w", "\n%{http_code}"])
        .args(args);
        if body.is_some() {
            cmd.args(["--data-binary", "@-"]).stdin(Stdio::piped());
        }
        let mut child = cmd
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("run curl");
        if let Some(b) = body {
            let mut stdin = child.stdin.take().unwrap();
            let b = b.to_vec();
            std::thread::spawn(move || {
                let _ = stdin.write_all(&b);
            });
        }
        let out = child.wait_with_output().unwrap();
        let text = String::from_utf8_lossy(&out.stdout).to_string();
        assert!(
            out.status.success(),
            "curl {args:?} failed: {}\n{text}\nwebhook stderr:\n{}",
            String::from_utf8_lossy(&out.stderr),
            self.stderr_text()
        );
        let (body, code) = text.rsplit_once('\n').unwrap();
        (code.trim().parse().unwrap(), body.to_string())
    }

    /// POSTs a body as application/json to /validate.
    fn post(&self, body: &[u8]) -> (u16, String) {
        let url = self.url("/validate");
        self.curl(&["-H", "Content-Type: application/json", &url], Some(body))
    }

    /// POSTs an AdmissionReview and returns the response's `response`.
    fn review(&self, review: &Json) -> Json {
        let (code, body) = self.post(review.to_string().as_bytes());
        assert_eq!(code, 200, "{body}\n{}", self.stderr_text());
        let answer: Json = serde_json::from_str(&body).unwrap_or_else(|e| panic!("{e}: {body}"));
        assert_eq!(answer["apiVersion"], "admission.k8s.io/v1", "{answer}");
        assert_eq!(answer["kind"], "AdmissionReview", "{answer}");
        answer["response"].clone()
    }

    /// Decision-log lines on stdout so far.
    fn decisions(&self) -> Vec<Json> {
        self.process
            .stdout()
            .iter()
            .map(|l| {
                serde_json::from_str(l).unwrap_or_else(|e| panic!("not a JSON line ({e}): {l}"))
            })
            .collect()
    }

    fn wait_decisions(&mut self, n: usize) -> Vec<Json> {
        self.wait_for(Duration::from_secs(10), |h| {
            let d = h.decisions();
            (d.len() >= n).then_some(d)
        })
        .unwrap_or_else(|| {
            panic!(
                "expected {n} decision-log lines, got {:?}",
                self.decisions()
            )
        })
    }

    fn sigterm(&mut self) -> i32 {
        self.signal(libc::SIGTERM);
        let status = self
            .wait_exit(Duration::from_secs(30))
            .unwrap_or_else(|| panic!("webhook did not stop on SIGTERM"));
        status.code().unwrap_or(-1)
    }
}

fn read_sample(name: &str) -> Json {
    serde_json::from_str(&std::fs::read_to_string(sample(name)).unwrap()).unwrap()
}

/// The input the webhook evaluates: the review with its request under `review` too.
fn input_hash(review: &Json) -> String {
    let mut input = review.clone();
    input["review"] = review["request"].clone();
    hex(&Sha256::digest(serde_json::to_vec(&input).unwrap()))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[test]
fn allowed_and_denied_pods_over_https() {
    let tls = Tls::new();
    let policy = k8s_policy();
    let mut hook = Webhook::start(&tls, &["--policy", policy.to_str().unwrap()]);

    let (code, body) = hook.curl(&[&hook.url("/healthz")], None);
    assert_eq!((code, body.trim()), (200, "ok"));

    // Allowed: an ordinary pod and a Wasm pod with the right RuntimeClass.
    let mut sent = Vec::new();
    for name in ["allowed-pod.json", "allowed-wasm-pod.json"] {
        let review = read_sample(name);
        let resp = hook.review(&review);
        assert_eq!(resp["uid"], review["request"]["uid"], "{name}: {resp}");
        assert_eq!(resp["allowed"], true, "{name}: {resp}");
        assert!(resp.get("status").is_none(), "{name}: {resp}");
        sent.push((review, true));
    }

    // Denied: each with the policy's reasons in status.message.
    let denied: &[(&str, &[&str])] = &[
        ("denied-missing-labels.json", &["pod web is missing required label(s): owner"]),
        (
            "denied-privileged.json",
            &[
                "pod debug: privileged container \"setup\" is not allowed (initContainers)",
                "pod debug: privileged container \"shell\" is not allowed (containers)",
            ],
        ),
        (
            "denied-wasm-runtime-class.json",
            &["pod hello-wasm must set runtimeClassName: wasmlayer because its image ghcr.io/acme/hello.wasm:1.0 is a Wasm artifact"],
        ),
        (
            "denied-wasm-annotated.json",
            &["pod compat must set runtimeClassName: wasmlayer because it is annotated module.wasm.image/variant: compat"],
        ),
    ];
    for (name, reasons) in denied {
        let review = read_sample(name);
        let resp = hook.review(&review);
        assert_eq!(resp["uid"], review["request"]["uid"], "{name}: {resp}");
        assert_eq!(resp["allowed"], false, "{name}: {resp}");
        assert_eq!(resp["status"]["code"], 403, "{name}: {resp}");
        assert_eq!(
            resp["status"]["message"],
            reasons.join("; "),
            "{name}: {resp}"
        );
        sent.push((review, false));
    }

    // Several reasons at once, from both `deny` and `violation`.
    let mut review = read_sample("denied-privileged.json");
    review["request"]["uid"] = json!("77777777-7777-4777-8777-777777777777");
    review["request"]["object"]["metadata"]["labels"] = json!({"owner": "x"});
    let resp = hook.review(&review);
    let message = resp["status"]["message"].as_str().unwrap();
    assert!(message.contains("missing required label(s): app"), "{resp}");
    assert!(message.contains("privileged container \"shell\""), "{resp}");
    assert_eq!(message.matches("; ").count(), 2, "{resp}");
    sent.push((review, false));

    // One decision-log line per decision.
    let log = hook.wait_decisions(sent.len());
    assert_eq!(log.len(), sent.len(), "{log:?}");
    for (review, allowed) in &sent {
        let uid = &review["request"]["uid"];
        let line = log
            .iter()
            .find(|l| l["uid"] == *uid)
            .unwrap_or_else(|| panic!("no decision-log line for {uid}: {log:?}"));
        assert_eq!(line["allowed"], *allowed, "{line}");
        assert_eq!(line["kind"], "Pod", "{line}");
        assert_eq!(line["operation"], "CREATE", "{line}");
        assert_eq!(line["namespace"], "default", "{line}");
        assert_eq!(line["name"], review["request"]["name"], "{line}");
        assert_eq!(line["input_sha256"], input_hash(review), "{line}");
        assert!(line["latency_us"].is_u64(), "{line}");
        assert!(
            line["time"]
                .as_str()
                .is_some_and(|t| t.ends_with('Z') && t.contains('T')),
            "{line}"
        );
        let reasons = line["reasons"].as_array().unwrap();
        assert_eq!(reasons.is_empty(), *allowed, "{line}");
    }
}

#[test]
fn malformed_requests_get_400_and_no_decision() {
    let tls = Tls::new();
    let policy = k8s_policy();
    let mut hook = Webhook::start(&tls, &["--policy", policy.to_str().unwrap()]);

    let (code, body) = hook.post(b"{\"apiVersion\": ");
    assert_eq!(code, 400, "{body}");
    assert!(body.contains("not valid JSON"), "{body}");

    let (code, body) =
        hook.post(br#"{"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "x"}}"#);
    assert_eq!(code, 400, "{body}");
    assert!(body.contains("not an AdmissionReview"), "{body}");

    let mut v1beta1 = read_sample("allowed-pod.json");
    v1beta1["apiVersion"] = json!("admission.k8s.io/v1beta1");
    let (code, body) = hook.post(v1beta1.to_string().as_bytes());
    assert_eq!(code, 400, "{body}");
    assert!(body.contains("admission.k8s.io/v1"), "{body}");

    let mut no_uid = read_sample("allowed-pod.json");
    no_uid["request"].as_object_mut().unwrap().remove("uid");
    let (code, body) = hook.post(no_uid.to_string().as_bytes());
    assert_eq!(code, 400, "{body}");
    assert!(body.contains("uid"), "{body}");

    let (code, body) = hook.post(b"[1, 2, 3]");
    assert_eq!(code, 400, "{body}");

    // Larger than anything the API server sends.
    let big = vec![b' '; 4 * 1024 * 1024];
    let (code, body) = hook.post(&big);
    assert_eq!(code, 413, "{body}");

    let url = hook.url("/validate");
    let (code, _) = hook.curl(&[&url], None);
    assert_eq!(code, 405);
    let (code, body) = hook.curl(&["-H", "Content-Type: text/plain", &url], Some(b"{}"));
    assert_eq!(code, 415, "{body}");

    // Plain HTTP on the TLS port: a readable refusal, and the server goes on.
    let mut plain = TcpStream::connect(("127.0.0.1", hook.port)).unwrap();
    plain
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    plain
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        .unwrap();
    let mut answer = String::new();
    let _ = plain.read_to_string(&mut answer);
    assert!(answer.starts_with("HTTP/1.1 400"), "{answer:?}");
    assert!(answer.contains("HTTPS"), "{answer:?}");
    // A broken handshake and a client that leaves at once.
    let mut junk = TcpStream::connect(("127.0.0.1", hook.port)).unwrap();
    let _ = junk.write_all(&[0x16, 0x03, 0x01, 0x00, 0x05, 1, 2, 3, 4, 5, 6, 7, 8]);
    drop(junk);
    drop(TcpStream::connect(("127.0.0.1", hook.port)).unwrap());

    let review = read_sample("allowed-pod.json");
    let resp = hook.review(&review);
    assert_eq!(resp["allowed"], true, "{resp}");
    assert_eq!(resp["uid"], review["request"]["uid"], "{resp}");
    assert!(hook.exited().is_none(), "{}", hook.stderr_text());

    // Only the one real review was a decision.
    let log = hook.wait_decisions(1);
    std::thread::sleep(Duration::from_millis(200));
    assert_eq!(hook.decisions().len(), 1, "{log:?}");
    assert!(
        !hook.stderr_text().contains("panicked"),
        "{}",
        hook.stderr_text()
    );

    assert_eq!(hook.sigterm(), 0, "{}", hook.stderr_text());
    assert!(
        hook.stderr_text().contains("webhook stopped"),
        "{}",
        hook.stderr_text()
    );
}

/// The example policies compiled with `policy build` (entrypoints `deny`
/// and `violation`) into `dir`.
fn build_k8s_module(dir: &Path) -> PathBuf {
    let module = dir.join("k8s.wasm");
    let mut build = wasmlayer();
    build.args(["policy", "build"]);
    for f in [
        "lib.rego",
        "required_labels.rego",
        "privileged.rego",
        "wasm_runtime_class.rego",
        "data.json",
    ] {
        build.arg(k8s_policy().join(f));
    }
    build
        .args([
            "-e",
            "kubernetes/admission/deny",
            "-e",
            "kubernetes/admission/violation",
            "-o",
        ])
        .arg(&module);
    let run = output(build.output().unwrap());
    run.no_panic();
    assert_eq!(run.code, 0, "{run:?}");
    module
}

/// The same reviews decided by the Rego source and by the module `policy
/// build` compiles from it: the same answers, and the same input (its hash
/// in the decision log), which the module is given as text.
#[test]
fn a_compiled_policy_module_decides_as_its_source() {
    let tls = Tls::new();
    let dir = tempfile::tempdir().unwrap();
    let module = build_k8s_module(dir.path());
    let k8s = k8s_policy();

    let mut names: Vec<String> = std::fs::read_dir(root().join("examples/policies/k8s-reviews"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    let mut answers = Vec::new();
    for policy in [k8s.as_path(), module.as_path()] {
        let mut hook = Webhook::start(&tls, &["--policy", policy.to_str().unwrap()]);
        let mut got = Vec::new();
        for name in &names {
            let resp = hook.review(&read_sample(name));
            got.push((
                name.clone(),
                resp["allowed"].clone(),
                resp["status"].clone(),
            ));
        }
        let log = hook.wait_decisions(names.len());
        for (name, line) in names.iter().zip(&log) {
            assert_eq!(
                line["input_sha256"],
                input_hash(&read_sample(name)),
                "{line}"
            );
        }
        answers.push(got);
    }
    assert!(answers[0].iter().any(|(_, allowed, _)| allowed == false));
    assert!(answers[0].iter().any(|(_, allowed, _)| allowed == true));
    assert_eq!(
        answers[0], answers[1],
        "Rego source, then the compiled module"
    );
}

#[test]
fn allow_rule_package_flag_and_decision_log_file() {
    let tls = Tls::new();
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("policy.rego"),
        "package k8s.admission\n\n\
         default allow := false\n\n\
         allow if input.request.object.metadata.labels.team\n",
    )
    .unwrap();
    let log = dir.path().join("decisions.jsonl");
    let mut hook = Webhook::start(
        &tls,
        &[
            "--policy",
            dir.path().to_str().unwrap(),
            "--package",
            "k8s.admission",
            "--decision-log",
            log.to_str().unwrap(),
        ],
    );
    let resp = hook.review(&read_sample("allowed-pod.json"));
    assert_eq!(resp["allowed"], false, "{resp}");
    assert_eq!(resp["status"]["code"], 403, "{resp}");
    assert_eq!(resp["status"]["message"], "denied by policy", "{resp}");

    let mut review = read_sample("allowed-pod.json");
    review["request"]["object"]["metadata"]["labels"]["team"] = json!("a");
    review["request"]["uid"] = json!("88888888-8888-4888-8888-888888888888");
    let resp = hook.review(&review);
    assert_eq!(resp["allowed"], true, "{resp}");

    assert_eq!(hook.sigterm(), 0, "{}", hook.stderr_text());
    assert!(
        hook.decisions().is_empty(),
        "the log goes to the file, not stdout"
    );
    let lines: Vec<Json> = std::fs::read_to_string(&log)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 2, "{lines:?}");
    assert_eq!(lines[0]["allowed"], false);
    assert_eq!(lines[0]["reasons"], json!(["denied by policy"]));
    assert_eq!(lines[1]["allowed"], true);
    assert_eq!(lines[1]["uid"], "88888888-8888-4888-8888-888888888888");
}

#[test]
fn a_policy_error_fails_closed() {
    let tls = Tls::new();
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("policy.rego"),
        "package kubernetes.admission\n\n\
         deny contains msg if {\n\
         \tn := to_number(input.request.object.metadata.name)\n\
         \tmsg := sprintf(\"pod number %v\", [n])\n\
         }\n",
    )
    .unwrap();
    let mut hook = Webhook::start(&tls, &["--policy", dir.path().to_str().unwrap()]);
    let review = read_sample("allowed-pod.json");
    let resp = hook.review(&review);
    assert_eq!(resp["uid"], review["request"]["uid"], "{resp}");
    assert_eq!(resp["allowed"], false, "{resp}");
    assert_eq!(resp["status"]["code"], 500, "{resp}");
    let message = resp["status"]["message"].as_str().unwrap();
    assert!(message.starts_with("policy error: "), "{resp}");
    assert!(message.contains("policy.rego:4"), "{resp}");

    let log = hook.wait_decisions(1);
    assert_eq!(log[0]["allowed"], false, "{log:?}");
    assert!(
        log[0]["error"].as_str().is_some_and(|e| !e.is_empty()),
        "{log:?}"
    );
    // The server writes the error before the decision, but the two streams
    // are read by separate threads: give stderr's reader its moment.
    let logged = hook.wait_for(Duration::from_secs(5), |h| {
        h.stderr_text().contains("policy error").then_some(())
    });
    assert!(logged.is_some(), "{}", hook.stderr_text());
    assert!(hook.exited().is_none(), "still serving");
}

#[test]
fn a_policy_past_the_memory_limit_fails_closed_and_the_server_goes_on() {
    let tls = Tls::new();
    let dir = tempfile::tempdir().unwrap();
    // A label picks the blow-up: an array of 24 GB (refused by its size
    // before it is made), or a string that doubles past the limit (stopped
    // by the evaluation's memory budget).
    std::fs::write(
        dir.path().join("policy.rego"),
        r#"package kubernetes.admission

deny contains "never" if {
	input.request.object.metadata.labels.blowup == "range"
	count(numbers.range(1, 1000000000)) > 0
}

deny contains "never" if {
	input.request.object.metadata.labels.blowup == "grow"
	a := concat("", ["a" | some _ in numbers.range(1, 20000)])
	count(replace(a, "a", a)) > 0
}

deny contains msg if {
	not input.request.object.metadata.labels.owner
	msg := "pods need an owner label"
}
"#,
    )
    .unwrap();
    let mut hook = Webhook::start_capped(&tls, &["--policy", dir.path().to_str().unwrap()]);
    let allowed = read_sample("allowed-pod.json");
    for (i, blowup) in ["range", "grow", "range"].iter().enumerate() {
        let mut review = allowed.clone();
        review["request"]["uid"] = json!(format!("blowup-{i}"));
        review["request"]["object"]["metadata"]["labels"]["blowup"] = json!(blowup);
        let start = Instant::now();
        let resp = hook.review(&review);
        assert_eq!(resp["uid"], review["request"]["uid"], "{resp}");
        assert_eq!(resp["allowed"], false, "{resp}");
        assert_eq!(resp["status"]["code"], 500, "{resp}");
        let message = resp["status"]["message"].as_str().unwrap();
        assert!(message.starts_with("policy error: "), "{resp}");
        assert!(message.contains("memory limit (256 MiB)"), "{resp}");
        assert!(start.elapsed() < Duration::from_secs(20), "{blowup}");
    }
    // The server still decides normal reviews, both ways.
    let resp = hook.review(&allowed);
    assert_eq!(resp["allowed"], true, "{resp}\n{}", hook.stderr_text());
    let mut unowned = allowed.clone();
    unowned["request"]["uid"] = json!("unowned");
    unowned["request"]["object"]["metadata"]["labels"]
        .as_object_mut()
        .unwrap()
        .remove("owner");
    let resp = hook.review(&unowned);
    assert_eq!(resp["allowed"], false, "{resp}");
    assert_eq!(resp["status"]["code"], 403, "{resp}");
    assert_eq!(
        resp["status"]["message"], "pods need an owner label",
        "{resp}"
    );
    let log = hook.wait_decisions(5);
    assert!(
        log[..3].iter().all(|d| d["error"]
            .as_str()
            .is_some_and(|e| e.contains("memory limit"))),
        "{log:?}"
    );
    assert!(!hook.stderr_text().contains("memory allocation"));
    assert!(hook.exited().is_none(), "still serving");

    // "grow" ends in one allocation past the budget and its grace, so its
    // thread stays stopped for good (one so far). At four such threads no
    // more evaluations start: reviews are denied with the reason, and the
    // health check fails so that the pod is restarted.
    let (code, _) = hook.curl(&[&hook.url("/healthz")], None);
    assert_eq!(code, 200);
    for i in 0..3 {
        let mut review = allowed.clone();
        review["request"]["uid"] = json!(format!("grow-{i}"));
        review["request"]["object"]["metadata"]["labels"]["blowup"] = json!("grow");
        let resp = hook.review(&review);
        assert_eq!(resp["allowed"], false, "{resp}");
        assert!(
            resp["status"]["message"]
                .as_str()
                .unwrap()
                .contains("memory limit (256 MiB)"),
            "{resp}"
        );
    }
    let resp = hook.review(&allowed);
    assert_eq!(resp["allowed"], false, "{resp}");
    assert_eq!(resp["status"]["code"], 500, "{resp}");
    let message = resp["status"]["message"].as_str().unwrap();
    assert!(
        message.contains("native policy evaluations are refused: 4 earlier evaluations")
            && message.contains("restart the process"),
        "{resp}"
    );
    let (code, body) = hook.curl(&[&hook.url("/healthz")], None);
    assert_eq!(code, 503, "{body}");
    assert!(body.contains("restart the process"), "{body}");
    assert!(hook.exited().is_none(), "still serving");
}

#[test]
fn a_policy_that_does_not_parse_stops_the_start() {
    let tls = Tls::new();
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("broken.rego"),
        "package kubernetes.admission\n\ndeny contains msg if {\n\tmsg := \n}\n",
    )
    .unwrap();
    let run = refused_start(
        &dir.path().display().to_string(),
        &tls.path("server.crt"),
        &tls.path("server.key"),
        &[],
    );
    assert!(run.stderr.contains("broken.rego:4"), "{run:?}");

    // A package without deny, violation or allow is a mistake, not "allow all".
    let run = refused_start(
        &k8s_policy().display().to_string(),
        &tls.path("server.crt"),
        &tls.path("server.key"),
        &["--package", "nothing.here"],
    );
    assert!(run.stderr.contains("data.nothing.here"), "{run:?}");
}

/// A Gatekeeper-style policy in Rego v0 is refused without
/// `--v0-compatible` and decides with it, from its source and as a module
/// built with the flag (whose `regex.match` the host provides).
#[test]
fn a_v0_policy_decides_with_v0_compatible() {
    let tls = Tls::new();
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("src");
    std::fs::create_dir(&src).unwrap();
    std::fs::write(
        src.join("digests.rego"),
        "package k8simagedigests\n\n\
         violation[{\"msg\": msg}] {\n  \
           container := input.review.object.spec.containers[_]\n  \
           not regex.match(\"@[a-z0-9]+([+._-][a-z0-9]+)*:[a-zA-Z0-9=_-]+\", container.image)\n  \
           msg := sprintf(\"container <%v> uses an image without a digest <%v>\", [container.name, container.image])\n\
         }\n",
    )
    .unwrap();
    let src = src.display().to_string();
    let (cert, key) = (tls.path("server.crt"), tls.path("server.key"));
    let run = refused_start(&src, &cert, &key, &["--package", "k8simagedigests"]);
    assert!(run.stderr.contains("digests.rego:3"), "{run:?}");

    let module = dir.path().join("digests.wasm");
    let built = output(
        wasmlayer()
            .args(["policy", "build", "--v0-compatible", &src, "-o"])
            .arg(&module)
            .args(["-e", "k8simagedigests/violation"])
            .output()
            .unwrap(),
    );
    assert_eq!(built.code, 0, "{built:?}");
    let module = module.display().to_string();
    for policy in [&src, &module] {
        let mut hook = Webhook::start(
            &tls,
            &[
                "--policy",
                policy,
                "--v0-compatible",
                "--package",
                "k8simagedigests",
            ],
        );
        let resp = hook.review(&read_sample("allowed-pod.json"));
        assert_eq!(resp["allowed"], false, "{policy}: {resp}");
        assert_eq!(
            resp["status"]["message"],
            "container <web> uses an image without a digest <nginx:1.27>",
            "{policy}: {resp}"
        );
        let mut review = read_sample("allowed-pod.json");
        review["request"]["object"]["spec"]["containers"][0]["image"] =
            json!("nginx@sha256:0123abcd");
        let resp = hook.review(&review);
        assert_eq!(resp["allowed"], true, "{policy}: {resp}");
        assert_eq!(hook.sigterm(), 0, "{}", hook.stderr_text());
    }
}

/// Starts the webhook with `policy`, the TLS files and `extra`, expecting it
/// to refuse to start: a clear error and a non-zero exit, never a panic and
/// never a listening server.
fn refused_start(policy: &str, cert: &str, key: &str, extra: &[&str]) -> Run {
    let run = output(
        wasmlayer()
            .args([
                "policy",
                "webhook",
                "--listen",
                "127.0.0.1:0",
                "--policy",
                policy,
            ])
            .args(["--tls-cert", cert, "--tls-key", key])
            .args(extra)
            .output()
            .unwrap(),
    );
    run.no_panic();
    assert_ne!(run.code, 0, "{run:?}");
    assert!(!run.stderr.contains("listening"), "{run:?}");
    run
}

#[test]
fn bad_tls_files_stop_the_start() {
    let tls = Tls::new();
    let cases: &[(&str, &str, &str)] = &[
        ("server.crt", "missing.key", "missing.key"),
        ("missing.crt", "server.key", "missing.crt"),
        ("server.key", "server.key", "no PEM certificate"),
        ("server.crt", "server.crt", "no PEM private key"),
        ("server.crt", "ca.key", "does not belong to the certificate"),
    ];
    for (cert, key, expect) in cases {
        let run = refused_start(
            &k8s_policy().display().to_string(),
            &tls.path(cert),
            &tls.path(key),
            &[],
        );
        assert!(run.stderr.contains(expect), "{cert} {key}: {run:?}");
    }
}

#[test]
fn the_example_policy_tests_pass() {
    let run = output(
        wasmlayer()
            .args(["policy", "test"])
            .arg(k8s_policy())
            .output()
            .unwrap(),
    );
    run.no_panic();
    assert_eq!(run.code, 0, "{run:?}");
    assert!(run.stdout.contains("PASS: "), "{run:?}");
    assert!(!run.stdout.contains("FAIL"), "{run:?}");
}
