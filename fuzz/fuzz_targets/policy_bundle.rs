//! The OPA-Wasm policy loader: `WasmPolicySource::from_bytes` on a bare
//! module or a bundle (`.tar.gz` with `/policy.wasm`, `data.json` files and
//! `.manifest`), with its caps against decompression bombs.
//!
//! The first byte picks how the rest is used:
//! - 0: the file as is (gzip, Wasm, text or anything);
//! - 1: a tar stream, gzipped here (the tar headers are the input);
//! - 2: a list of entries, made into a tar and gzipped here (paths and
//!   contents are the input; checksums are right by construction).
//!
//! Invariants: nothing panics; a bundle yields an object as its data
//! document, a bare module no data and its own bytes; of several `.wasm`
//! entries, the first `/policy.wasm` is the policy.
#![no_main]

use arbitrary::{Arbitrary, Unstructured};
use libfuzzer_sys::fuzz_target;
use serde_json::Value as Json;
use std::io::Write;
use wasmlayer_policy::WasmPolicySource;

#[derive(Arbitrary, Debug)]
struct Entry {
    path: EntryPath,
    kind: Kind,
    contents: Contents,
}

#[derive(Arbitrary, Debug)]
enum EntryPath {
    PolicyWasm,
    DotPolicyWasm,
    OtherWasm(String),
    Manifest,
    Data,
    NestedData(Vec<String>),
    Any(String),
}

#[derive(Arbitrary, Debug)]
enum Kind {
    File,
    Dir,
    Symlink,
}

#[derive(Arbitrary, Debug)]
enum Contents {
    Bytes(Vec<u8>),
    Json(JsonValue),
    Manifest(Vec<String>),
}

/// Small JSON values, so that data documents merge and collide.
#[derive(Arbitrary, Debug)]
enum JsonValue {
    Null,
    Bool(bool),
    Int(i64),
    Str(String),
    Array(Vec<JsonValue>),
    Object(Vec<(String, JsonValue)>),
}

impl JsonValue {
    fn to_json(&self, depth: usize) -> Json {
        match self {
            _ if depth > 8 => Json::Null,
            JsonValue::Null => Json::Null,
            JsonValue::Bool(b) => Json::Bool(*b),
            JsonValue::Int(i) => Json::from(*i),
            JsonValue::Str(s) => Json::String(s.clone()),
            JsonValue::Array(a) => Json::Array(a.iter().map(|v| v.to_json(depth + 1)).collect()),
            JsonValue::Object(o) => Json::Object(
                o.iter()
                    .map(|(k, v)| (k.clone(), v.to_json(depth + 1)))
                    .collect(),
            ),
        }
    }
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(bytes).expect("gzip");
    gz.finish().expect("gzip")
}

/// The tar stream, and the contents of its first `/policy.wasm` file.
fn tar_of(entries: &[Entry]) -> (Vec<u8>, Option<Vec<u8>>) {
    let mut b = tar::Builder::new(Vec::new());
    let mut policy = None;
    for e in entries {
        let path = match &e.path {
            EntryPath::PolicyWasm => "policy.wasm".to_string(),
            EntryPath::DotPolicyWasm => "./policy.wasm".to_string(),
            EntryPath::OtherWasm(p) => format!("{p}.wasm"),
            EntryPath::Manifest => ".manifest".to_string(),
            EntryPath::Data => "data.json".to_string(),
            EntryPath::NestedData(dirs) => format!("{}/data.json", dirs.join("/")),
            EntryPath::Any(p) => p.clone(),
        };
        let contents = match &e.contents {
            Contents::Bytes(b) => b.clone(),
            Contents::Json(v) => serde_json::to_vec(&v.to_json(0)).expect("JSON"),
            Contents::Manifest(eps) => serde_json::to_vec(&serde_json::json!({
                "wasm": eps.iter().map(|e| serde_json::json!({"entrypoint": e, "module": "/policy.wasm"})).collect::<Vec<_>>(),
            }))
            .expect("JSON"),
        };
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(match e.kind {
            Kind::File => tar::EntryType::Regular,
            Kind::Dir => tar::EntryType::Directory,
            Kind::Symlink => tar::EntryType::Symlink,
        });
        h.set_mode(0o644);
        h.set_size(contents.len() as u64);
        // Paths tar cannot write (absolute, `..`, too long) are skipped:
        // the raw modes reach those.
        if h.set_path(&path).is_err() {
            continue;
        }
        h.set_cksum();
        if b.append(&h, contents.as_slice()).is_err() {
            continue;
        }
        let written = h.path().expect("a path just set").to_string_lossy().into_owned();
        let normal = written.trim_start_matches("./").trim_start_matches('/');
        if normal == "policy.wasm" && matches!(e.kind, Kind::File) && policy.is_none() {
            policy = Some(contents);
        }
    }
    (b.into_inner().unwrap_or_default(), policy)
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let (file, policy) = match mode % 3 {
        0 => (rest.to_vec(), None),
        1 => (gzip(rest), None),
        _ => {
            let mut u = Unstructured::new(rest);
            let Ok(entries) = Vec::<Entry>::arbitrary(&mut u) else {
                return;
            };
            let (tar, policy) = tar_of(&entries);
            (gzip(&tar), policy)
        }
    };
    let Ok(src) = WasmPolicySource::from_bytes(&file) else {
        return;
    };
    if file.starts_with(&[0x1f, 0x8b]) {
        assert!(src.data.is_object(), "a bundle's data is {}", src.data);
    } else {
        assert!(src.data.is_null());
        assert!(src.manifest_entrypoints.is_empty());
        assert_eq!(src.wasm, file);
    }
    if let Some(policy) = policy {
        assert_eq!(src.wasm, policy, "the bundle's /policy.wasm is not the policy");
    }
    assert!(src.wasm.len() as u64 <= wasmlayer_policy::wasm_host::MAX_BUNDLE_SIZE);
});
