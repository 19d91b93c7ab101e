//! The admission hook: a small admission written in Rust for the test
//! denies or narrows, through the same CLI entry point the binary uses.

mod common;
use common::*;
use std::sync::{Arc, Mutex};
use wasmlayer_core::{Admission, AdmissionRequest, ArtifactKind, Denied, Grant};

/// sha256, size, kind, number of imports, command.
type Seen = (String, u64, ArtifactKind, usize, String);

/// Denies network access for any artifact that imports wasi:sockets, and
/// records what it was shown.
struct NoNetwork {
    seen: Mutex<Vec<Seen>>,
}

impl Admission for NoNetwork {
    fn admit(&self, req: &AdmissionRequest<'_>) -> Result<Grant, Denied> {
        self.seen.lock().unwrap().push((
            req.artifact.sha256.clone(),
            req.artifact.size,
            req.artifact.kind,
            req.artifact.imports.len(),
            req.context.command.clone(),
        ));
        let mut reasons = Vec::new();
        if !req.requested.allow_net.is_empty() {
            reasons.push(format!(
                "network access is not allowed (asked for {})",
                req.requested.allow_net[0]
            ));
        }
        if req.requested.dirs.iter().any(|d| !d.read_only) {
            reasons.push("only read-only directories may be granted".to_string());
        }
        if !reasons.is_empty() {
            return Err(Denied { reasons });
        }
        // Narrow: cap memory at 64 MiB whatever was asked.
        let mut limits = req.limits.clone();
        limits.max_memory = Some(limits.max_memory.unwrap_or(u64::MAX).min(64 << 20));
        Ok(Grant {
            capabilities: req.requested.clone(),
            limits,
        })
    }
}

fn cli(admission: Arc<dyn Admission>, args: &[&str]) -> i32 {
    let cache = s(&shared_cache());
    // In-process: the host sandbox would confine the test itself (no
    // exec of the binary afterwards); tests/sandbox.rs covers it.
    let mut v = vec![
        "wasmlayer",
        "run",
        "--no-host-sandbox",
        "--cache-dir",
        &cache,
    ];
    v.extend(args);
    wasmlayer_cli::main_with(v, admission)
}

#[test]
fn denial_exits_with_its_own_code_and_names_every_reason() {
    let adm = Arc::new(NoNetwork {
        seen: Mutex::new(Vec::new()),
    });
    let g = s(&guest("hostile-p2.wasm"));
    let t = tempdir();
    let code = cli(
        adm.clone(),
        &[
            "--allow-net",
            "127.0.0.1:80",
            "--dir",
            &s(t.path()),
            &g,
            "envall",
        ],
    );
    assert_eq!(code, 77);
    let err = wasmlayer_core::Error::Denied {
        reasons: vec![
            "network access is not allowed (asked for 127.0.0.1:80)".into(),
            "only read-only directories may be granted".into(),
        ],
    };
    let text = wasmlayer_cli::render_error(&err);
    assert_eq!(
        text,
        "error: admission denied:\n  - network access is not allowed (asked for 127.0.0.1:80)\n  - only read-only directories may be granted\n"
    );
    let seen = adm.seen.lock().unwrap();
    let bytes = std::fs::read(&g).unwrap();
    assert_eq!(seen[0].1, bytes.len() as u64);
    assert_eq!(seen[0].2, ArtifactKind::Component);
    assert!(seen[0].3 > 5, "imports are listed");
    assert_eq!(seen[0].4, "run");
    assert_eq!(seen[0].0, sha256_hex(&bytes));
}

#[test]
fn grant_may_narrow_the_request() {
    let adm = Arc::new(NoNetwork {
        seen: Mutex::new(Vec::new()),
    });
    // Asked for 1 GiB, granted 64 MiB: the memory bomb stops at 64 MiB.
    assert_eq!(
        cli(
            adm.clone(),
            &[
                "--max-memory",
                "1GiB",
                &s(&guest("hostile-p1.wasm")),
                "membomb"
            ]
        ),
        137
    );
    // Within the grant, a normal run is unaffected.
    assert_eq!(cli(adm, &[&s(&guest("hostile-p1.wasm")), "exit", "0"]), 0);
}

#[test]
fn default_admission_grants_what_was_requested() {
    let t = tempdir();
    std::fs::write(t.path().join("f"), "x").unwrap();
    let code = cli(
        Arc::new(wasmlayer_core::GrantRequested),
        &[
            "--dir",
            &format!("{}::/d", s(t.path())),
            &s(&guest("hostile-p1.wasm")),
            "read",
            "/d/f",
        ],
    );
    assert_eq!(code, 0);
}

fn sha256_hex(b: &[u8]) -> String {
    use sha2::Digest;
    sha2::Sha256::digest(b)
        .iter()
        .map(|x| format!("{x:02x}"))
        .collect()
}

fn example_policy(name: &str) -> String {
    s(&root().join("examples/policies").join(name))
}

#[test]
fn an_embedders_admission_and_a_policy_both_apply_to_run() {
    let adm = || -> Arc<dyn Admission> {
        Arc::new(NoNetwork {
            seen: Mutex::new(Vec::new()),
        })
    };
    let bomb = s(&guest("hostile-p1.wasm"));
    // The policy caps memory at 128 MiB, the embedder at 64 MiB: the
    // narrower grant holds, whichever narrowed it.
    let cap = format!("{}/policy.rego", example_policy("memory-cap"));
    let code = cli(
        adm(),
        &["--policy", &cap, "--max-memory", "1GiB", &bomb, "membomb"],
    );
    assert_eq!(code, 137);
    let r = run([
        "run",
        "--policy",
        &cap,
        "--max-memory",
        "1GiB",
        &bomb,
        "membomb",
    ]);
    assert!(r.stderr.contains("128 MiB"), "{r:?}");
    // The embedder denies what the policy would allow.
    let t = tempdir();
    let code = cli(
        adm(),
        &["--policy", &cap, "--dir", &s(t.path()), &bomb, "exit", "0"],
    );
    assert_eq!(code, 77);
    // The policy denies what the embedder would allow.
    let net = example_policy("network-allowlist");
    let code = cli(
        Arc::new(wasmlayer_core::GrantRequested),
        &[
            "--policy",
            &format!("{net}/policy.rego"),
            "--allow-net",
            "127.0.0.1:9",
            &bomb,
            "exit",
            "0",
        ],
    );
    assert_eq!(code, 77);
}

#[test]
fn an_embedders_admission_applies_to_serve_routes_under_a_manifest_policy() {
    let t = tempdir();
    let data = t.path().join("data");
    std::fs::create_dir(&data).unwrap();
    let manifest = t.path().join("wasmlayer.toml");
    std::fs::write(
        &manifest,
        format!(
            r#"policy = "{cap}/policy.rego"

[server]
listen = "127.0.0.1:0"

[[route]]
path = "/"
component = "{hello}"
dirs = ["{data}::/data"]
"#,
            cap = example_policy("memory-cap"),
            hello = s(&guest("http-hello.wasm")),
            data = s(&data),
        ),
    )
    .unwrap();
    // The memory-cap policy allows the route; the embedder's admission
    // denies its read-write directory, so the server does not start.
    let (tx, rx) = std::sync::mpsc::channel();
    let args = vec![
        "wasmlayer".to_string(),
        "serve".into(),
        "--cache-dir".into(),
        s(&shared_cache()),
        s(&manifest),
    ];
    std::thread::spawn(move || {
        let adm: Arc<dyn Admission> = Arc::new(NoNetwork {
            seen: Mutex::new(Vec::new()),
        });
        let _ = tx.send(wasmlayer_cli::main_with(args, adm));
    });
    let code = rx
        .recv_timeout(std::time::Duration::from_secs(120))
        .expect("serve started although the embedder's admission denies the route");
    assert_eq!(code, 77);
}
