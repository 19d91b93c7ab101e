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
    let mut v = vec!["wasmlayer", "run", "--cache-dir", &cache];
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
