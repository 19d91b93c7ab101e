//! The local artifact store: content-addressed, offline. `wasmlayer oci
//! pull` and `wasmlayer compile --store` fill it; `wasmlayer run --store`
//! runs from it without a network, and without a compiler when the store
//! holds the precompiled code (the edge build).
//!
//! ```text
//! DIR/blobs/sha256/<hex>            modules and components, by their SHA-256
//! DIR/refs/<sha256 of the name>     {reference, manifest, layer, size}: a name (an OCI
//!                                   reference, or a name given to `compile --store`)
//! DIR/precompiled/<hex>.cwasm       the precompiled code of blob <hex>
//! DIR/precompiled/<hex>.fuel.cwasm  the same, instrumented for fuel
//! DIR/precompiled/<hex>[.fuel].edge.cwasm  the same, for a build without WASI 0.3
//!                                   (the edge build)
//! ```
//!
//! Blobs are checked against their digest when read; precompiled code
//! carries the checksum `wasmlayer compile` writes, and is loaded only by
//! a wasmlayer of the same version and engine settings.

use crate::error::{Error, Result};
use serde::{Deserialize, Serialize};
use sha2::Digest;
use std::path::{Path, PathBuf};

/// A named artifact in the store.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Record {
    /// The name: an OCI reference, a name given to `compile --store`, or
    /// the digest itself.
    pub reference: String,
    /// The OCI manifest's digest (empty for artifacts not from a registry).
    pub manifest: String,
    /// The module's or component's digest (`sha256:...`).
    pub layer: String,
    pub size: u64,
    /// Where the blob is stored.
    #[serde(skip)]
    pub path: PathBuf,
}

/// `sha256:<hex>` of `bytes`.
pub fn sha256_digest(bytes: &[u8]) -> String {
    format!("sha256:{}", hex(&sha2::Sha256::digest(bytes)))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The hex of a well-formed `sha256:` digest.
fn digest_hex(digest: &str) -> Option<&str> {
    let hex = digest.strip_prefix("sha256:")?;
    (hex.len() == 64 && hex.bytes().all(|b| b.is_ascii_hexdigit())).then_some(hex)
}

/// The content-addressed store under one directory.
#[derive(Debug, Clone)]
pub struct Store {
    root: PathBuf,
}

impl Store {
    pub fn open(root: PathBuf) -> Store {
        Store { root }
    }

    /// `$XDG_CACHE_HOME/wasmlayer/oci` (or `~/.cache/...`): where `oci
    /// pull` stores without `--store`.
    pub fn default_location() -> Result<Store> {
        crate::cache::default_root()
            .map(|r| Store::open(r.join("oci")))
            .ok_or_else(|| Error::host("no cache directory (set XDG_CACHE_HOME or HOME)"))
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Where the blob `digest` is (or would be) stored.
    pub fn blob_path(&self, digest: &str) -> Option<PathBuf> {
        digest_hex(digest).map(|hex| self.root.join("blobs/sha256").join(hex))
    }

    fn ref_path(&self, reference: &str) -> PathBuf {
        let key = sha256_digest(reference.as_bytes());
        self.root.join("refs").join(&key["sha256:".len()..])
    }

    /// Where the precompiled code of blob `digest` is (or would be)
    /// stored: instrumented for fuel or not, for a build with WASI 0.3 or
    /// without (`edge`).
    pub fn precompiled_path(&self, digest: &str, fuel: bool, edge: bool) -> Option<PathBuf> {
        let hex = digest_hex(digest)?;
        let name = format!(
            "{hex}{}{}.cwasm",
            if fuel { ".fuel" } else { "" },
            if edge { ".edge" } else { "" }
        );
        Some(self.root.join("precompiled").join(name))
    }

    /// A blob's bytes, when stored and intact.
    pub fn blob(&self, digest: &str) -> Option<Vec<u8>> {
        let bytes = std::fs::read(self.blob_path(digest)?).ok()?;
        (sha256_digest(&bytes) == digest).then_some(bytes)
    }

    fn put(&self, path: &Path, bytes: &[u8]) -> Result<()> {
        let dir = path.parent().expect("a store path has a parent");
        std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
        crate::cache::write_file_atomic(path, bytes)
    }

    /// Stores a module or component; returns its digest.
    pub fn put_blob(&self, bytes: &[u8]) -> Result<String> {
        let digest = sha256_digest(bytes);
        let path = self.blob_path(&digest).expect("a computed digest");
        if self.blob(&digest).is_none() {
            self.put(&path, bytes)?;
        }
        Ok(digest)
    }

    /// Stores the precompiled code of blob `digest`.
    pub fn put_precompiled(
        &self,
        digest: &str,
        fuel: bool,
        edge: bool,
        code: &[u8],
    ) -> Result<PathBuf> {
        let path = self
            .precompiled_path(digest, fuel, edge)
            .ok_or_else(|| Error::invalid(format!("unsupported digest {digest}")))?;
        self.put(&path, code)?;
        Ok(path)
    }

    /// What `reference` names, if its blob is still stored intact.
    pub fn lookup(&self, reference: &str) -> Option<Record> {
        let text = std::fs::read(self.ref_path(reference)).ok()?;
        let mut record: Record = serde_json::from_slice(&text).ok()?;
        record.path = self.blob_path(&record.layer)?;
        self.blob(&record.layer)?;
        Some(record)
    }

    /// What `name` stands for, without reading its blob: a recorded name,
    /// or the digest of a stored blob. For loading the blob's precompiled
    /// code, which carries its own integrity check; [`Store::resolve`]
    /// checks the blob itself.
    pub fn resolve_name(&self, name: &str) -> Result<Record> {
        let recorded = std::fs::read(self.ref_path(name))
            .ok()
            .and_then(|text| serde_json::from_slice::<Record>(&text).ok());
        let mut record = recorded.unwrap_or_else(|| Record {
            reference: name.to_string(),
            manifest: String::new(),
            layer: name.to_string(),
            size: 0,
            path: PathBuf::new(),
        });
        let path = self
            .blob_path(&record.layer)
            .ok_or_else(|| self.missing(name))?;
        match std::fs::metadata(&path) {
            Ok(meta) if meta.is_file() => {
                record.size = meta.len();
                record.path = path;
                Ok(record)
            }
            _ => Err(self.missing(name)),
        }
    }

    fn missing(&self, name: &str) -> Error {
        Error::usage(format!(
            "{name}: not in the artifact store {} (fill it with `wasmlayer compile --store` or `wasmlayer oci pull --store`)",
            self.root.display()
        ))
    }

    /// What `name` stands for: a recorded name, or a stored blob's digest
    /// (`sha256:<hex>`).
    pub fn resolve(&self, name: &str) -> Result<Record> {
        if let Some(r) = self.lookup(name) {
            return Ok(r);
        }
        if digest_hex(name).is_some() {
            if let Some(bytes) = self.blob(name) {
                return Ok(Record {
                    reference: name.to_string(),
                    manifest: String::new(),
                    layer: name.to_string(),
                    size: bytes.len() as u64,
                    path: self.blob_path(name).expect("a digest"),
                });
            }
        }
        Err(self.missing(name))
    }

    /// Stores `blob` and records `record.reference` as its name.
    pub fn record(&self, mut record: Record, blob: &[u8]) -> Result<Record> {
        let path = self
            .blob_path(&record.layer)
            .ok_or_else(|| Error::invalid(format!("unsupported digest {}", record.layer)))?;
        if sha256_digest(blob) != record.layer {
            return Err(Error::invalid(format!(
                "{}: the blob is not {}",
                record.reference, record.layer
            )));
        }
        self.put(&path, blob)?;
        let refs = serde_json::to_vec(&record).expect("JSON");
        self.put(&self.ref_path(&record.reference), &refs)?;
        record.path = path;
        Ok(record)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blobs_are_checked_against_their_digest_and_names_resolve() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path().to_path_buf());
        let bytes = b"\0asm\x01\0\0\0".to_vec();
        let record = store
            .record(
                Record {
                    reference: "localhost/x:1".into(),
                    manifest: sha256_digest(b"m"),
                    layer: sha256_digest(&bytes),
                    size: 8,
                    path: PathBuf::new(),
                },
                &bytes,
            )
            .unwrap();
        assert_eq!(store.lookup("localhost/x:1").unwrap(), record);
        assert!(store.lookup("localhost/x:2").is_none());
        assert_eq!(store.resolve(&record.layer).unwrap().path, record.path);
        let err = store.resolve("localhost/x:2").unwrap_err().to_string();
        assert!(err.contains("not in the artifact store"), "{err}");
        // By name alone (for precompiled code, checked on its own): the
        // record as written, the blob's path and its size on disk.
        let named = store.resolve_name("localhost/x:1").unwrap();
        assert_eq!(named, record);
        assert_eq!(store.resolve_name(&record.layer).unwrap().path, record.path);
        let err = store.resolve_name("localhost/x:2").unwrap_err().to_string();
        assert!(err.contains("not in the artifact store"), "{err}");
        assert!(store.resolve_name("sha256:../../etc").is_err());
        std::fs::write(&record.path, b"tampered").unwrap();
        assert!(
            store.lookup("localhost/x:1").is_none(),
            "a damaged blob is not used"
        );
        assert!(store.resolve(&record.layer).is_err());
        // A record whose blob does not match its digest is refused.
        let wrong = Record {
            layer: sha256_digest(b"other"),
            ..record
        };
        assert!(store.record(wrong, &bytes).is_err());
        // Malformed digests name nothing.
        assert!(store.blob_path("sha256:../../etc").is_none());
        assert!(store.precompiled_path("md5:00", false, false).is_none());
    }
}
