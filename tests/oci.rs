//! WebAssembly as OCI artifacts against a real registry (Debian's
//! docker-registry on a loopback port): push, pull by tag and digest, `run`
//! of a reference from the local store, and each bad input a clear error.

mod common;
use common::registry::{sha256, Registry};
use common::*;
use std::path::Path;
use std::process::Command;

/// `wasmlayer ARGS` with its own cache (and so its own OCI store).
fn wl(cache: &Path, args: &[&str]) -> Run {
    let mut c = Command::new(env!("CARGO_BIN_EXE_wasmlayer"));
    c.env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("XDG_CACHE_HOME", cache)
        .env("HOME", cache)
        .stdin(std::process::Stdio::null())
        .args(args);
    run_with(&mut c)
}

#[test]
fn push_pull_and_run_a_wasm_artifact() {
    let reg = Registry::start();
    let t = tempdir();
    let cache = t.path().join("cache");
    let hello = guest("hello-p1.wasm");
    let wasm = std::fs::read(&hello).unwrap();
    let reference = format!("{}/hello/p1:v1", reg.addr);

    let r = wl(
        &cache,
        &["oci", "push", "--insecure", &s(&hello), &reference],
    );
    assert_eq!(r.code, 0, "{r:?}");
    let digest = r.stdout.trim().to_string();
    assert!(digest.starts_with("sha256:"), "{r:?}");

    // The registry holds the CNCF Wasm artifact: the Wasm config media
    // type and one application/wasm layer, the module's own bytes.
    let manifest: serde_json::Value = serde_json::from_str(
        &ureq::get(&format!("http://{}/v2/hello/p1/manifests/v1", reg.addr))
            .header("accept", "application/vnd.oci.image.manifest.v1+json")
            .call()
            .unwrap()
            .body_mut()
            .read_to_string()
            .unwrap(),
    )
    .unwrap();
    assert_eq!(
        manifest["config"]["mediaType"],
        "application/vnd.wasm.config.v0+json"
    );
    assert_eq!(manifest["layers"][0]["mediaType"], "application/wasm");
    assert_eq!(manifest["layers"][0]["digest"], sha256(&wasm).as_str());

    // Pull by tag, and by digest, into the store and a file.
    let out = t.path().join("pulled.wasm");
    let r = wl(
        &cache,
        &["oci", "pull", "--insecure", &reference, "-o", &s(&out)],
    );
    assert_eq!(r.code, 0, "{r:?}");
    assert_eq!(r.stdout.trim(), digest, "{r:?}");
    assert_eq!(std::fs::read(&out).unwrap(), wasm);
    let by_digest = format!("{}/hello/p1@{digest}", reg.addr);
    let r = wl(&cache, &["oci", "pull", "--insecure", &by_digest]);
    assert_eq!(r.code, 0, "{r:?}");

    // `run` takes the reference; the first run pulls (a fresh store).
    let fresh = t.path().join("fresh");
    let r = wl(&fresh, &["run", "--insecure", &reference]);
    assert_eq!(r.code, 0, "{r:?}");
    assert!(r.stdout.contains("Hello, world!"), "{r:?}");
    // Later runs need no registry: the store has it.
    drop(reg);
    let r = wl(&fresh, &["run", "-v", &reference]);
    assert_eq!(r.code, 0, "{r:?}");
    assert!(r.stdout.contains("Hello, world!"), "{r:?}");
    assert!(r.stderr.contains("nothing downloaded"), "{r:?}");
    assert!(r.stderr.contains("nothing compiled"), "{r:?}");
}

#[test]
fn bad_references_registries_and_artifacts_are_clear_errors() {
    let reg = Registry::start();
    let t = tempdir();
    let cache = t.path().join("cache");
    let hello = s(&guest("hello-p1.wasm"));

    // A registry that is down.
    let down = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let r = wl(
        &cache,
        &[
            "oci",
            "pull",
            "--insecure",
            &format!("127.0.0.1:{down}/x/y:1"),
        ],
    );
    assert_eq!(r.code, 125, "{r:?}");
    assert!(r.stderr.contains("cannot reach the registry"), "{r:?}");

    // An unknown reference, and a digest the registry does not have.
    let r = wl(
        &cache,
        &[
            "oci",
            "pull",
            "--insecure",
            &format!("{}/nothing/here:1", reg.addr),
        ],
    );
    assert_eq!(r.code, 125, "{r:?}");
    assert!(r.stderr.contains("not found"), "{r:?}");
    let r = wl(&cache, &["oci", "pull", "--insecure", "not a reference"]);
    assert_eq!(r.code, 2, "{r:?}");

    // Not WebAssembly: refused before anything is sent.
    let text = t.path().join("notes.txt");
    std::fs::write(&text, "hello").unwrap();
    let r = wl(
        &cache,
        &[
            "oci",
            "push",
            "--insecure",
            &s(&text),
            &format!("{}/n/t:1", reg.addr),
        ],
    );
    assert_eq!(r.code, 126, "{r:?}");

    // An image that is not a Wasm artifact: a tar layer.
    let layer = reg.put_blob("plain/image", b"not wasm at all");
    let config = reg.put_blob("plain/image", b"{}");
    reg.put_manifest(
        "plain/image",
        "1",
        &serde_json::json!({
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": config, "size": 2},
            "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": layer, "size": 15}],
        }),
    );
    let r = wl(
        &cache,
        &[
            "oci",
            "pull",
            "--insecure",
            &format!("{}/plain/image:1", reg.addr),
        ],
    );
    assert_eq!(r.code, 126, "{r:?}");
    assert!(r.stderr.contains("not a Wasm artifact"), "{r:?}");

    // A layer whose bytes do not match its digest.
    let reference = format!("{}/tampered/p1:1", reg.addr);
    let r = wl(&cache, &["oci", "push", "--insecure", &hello, &reference]);
    assert_eq!(r.code, 0, "{r:?}");
    let wasm = std::fs::read(&hello).unwrap();
    let blob = reg.blob_file(&sha256(&wasm));
    let mut bad = wasm.clone();
    let last = bad.len() - 1;
    bad[last] ^= 0xff;
    std::fs::write(&blob, &bad).unwrap();
    let fresh = t.path().join("fresh");
    let r = wl(&fresh, &["oci", "pull", "--insecure", &reference]);
    assert_eq!(r.code, 126, "{r:?}");
    assert!(r.stderr.contains("digest mismatch"), "{r:?}");
    // Nothing was stored: a run does not find it either.
    let r = wl(&fresh, &["run", "--insecure", &reference]);
    assert_eq!(r.code, 126, "{r:?}");
}

#[test]
fn credentials_come_from_the_docker_config_file() {
    let reg = Registry::start_with_auth("ci", "s3cret");
    let t = tempdir();
    let cache = t.path().join("cache");
    let hello = s(&guest("hello-p1.wasm"));
    let reference = format!("{}/private/hello:1", reg.addr);
    // No credentials: refused, with what to do.
    let r = wl(&cache, &["oci", "push", "--insecure", &hello, &reference]);
    assert_eq!(r.code, 125, "{r:?}");
    assert!(r.stderr.contains("Docker config"), "{r:?}");
    // The usual file, in the usual place ($HOME/.docker/config.json).
    let docker = cache.join(".docker");
    std::fs::create_dir_all(&docker).unwrap();
    let token = {
        use std::io::Write;
        let mut enc = Vec::new();
        write!(enc, "ci:s3cret").unwrap();
        base64(&enc)
    };
    std::fs::write(
        docker.join("config.json"),
        format!(r#"{{"auths": {{"{}": {{"auth": "{token}"}}}}}}"#, reg.addr),
    )
    .unwrap();
    let r = wl(&cache, &["oci", "push", "--insecure", &hello, &reference]);
    assert_eq!(r.code, 0, "{r:?}");
    let r = wl(&cache, &["oci", "pull", "--insecure", &reference]);
    assert_eq!(r.code, 0, "{r:?}");
}

fn base64(bytes: &[u8]) -> String {
    const A: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (b[0] as u32) << 16 | (b[1] as u32) << 8 | b[2] as u32;
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(A[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}
