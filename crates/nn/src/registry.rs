//! The graphs of one store, from the models its grant names (see
//! `wasmlayer_core::models`). `load_by_name` finds a graph only among them, and loads it on first use; `load` of bytes the guest
//! supplies is accepted only for a granted model (same SHA-256), so a
//! policy that decides by a model's digest cannot be bypassed by reading
//! the model through a directory grant.

use crate::backend::{error, ModelId, OnnxBackend};
use sha2::{Digest, Sha256};
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};
pub use wasmlayer_core::models::{granted, in_dir, sha256_file, Model};
use wasmtime_wasi_nn::backend::BackendError;
use wasmtime_wasi_nn::wit::ExecutionTarget;
use wasmtime_wasi_nn::{Graph, GraphRegistry};

/// The graphs of one store: each granted model, loaded on first use.
pub struct Registry {
    backend: Arc<OnnxBackend>,
    graphs: BTreeMap<String, (PathBuf, OnceLock<Option<Graph>>)>,
}

impl Registry {
    pub fn new(backend: Arc<OnnxBackend>, models: &[Model]) -> Registry {
        Registry {
            backend,
            graphs: models
                .iter()
                .map(|m| (m.name.clone(), (m.path.clone(), OnceLock::new())))
                .collect(),
        }
    }

    fn load(&self, name: &str, path: &Path) -> Result<Graph, String> {
        let (id, len) = ModelId::of_file(path).map_err(|e| format!("{}: {e}", path.display()))?;
        let read = || std::fs::read(path).map_err(|e| error(format!("{}: {e}", path.display())));
        self.backend
            .graph(name, Some(id), len, read, ExecutionTarget::Cpu)
            .map_err(|e| describe(&e))
    }
}

impl GraphRegistry for Registry {
    fn get(&self, name: &str) -> Option<&Graph> {
        let (path, cell) = self.graphs.get(name)?;
        cell.get_or_init(|| match self.load(name, path) {
            Ok(g) => Some(g),
            Err(e) => {
                tracing::warn!("wasi-nn: cannot load graph {name}: {e}");
                None
            }
        })
        .as_ref()
    }

    fn get_mut(&mut self, name: &str) -> Option<&mut Graph> {
        self.get(name)?;
        self.graphs.get_mut(name)?.1.get_mut()?.as_mut()
    }
}

/// A backend error with its cause (wasmtime-wasi-nn's own Display says
/// only "Failed while accessing backend").
pub fn describe(e: &BackendError) -> String {
    match e {
        BackendError::BackendAccess(inner) => format!("{inner:#}"),
        other => other.to_string(),
    }
}

/// Accepts a guest-supplied model only when it is one of the granted
/// models, by SHA-256; returns the digest.
pub(crate) fn check_granted_bytes(
    backend: &OnnxBackend,
    model: &[u8],
) -> Result<String, BackendError> {
    let digest = hex::encode(Sha256::digest(model));
    let granted = backend.granted_digests.get_or_init(|| {
        backend
            .granted
            .iter()
            .filter_map(|m| backend.sessions.file_digest(&m.path).ok())
            .collect::<BTreeSet<_>>()
    });
    if granted.contains(&digest) {
        Ok(digest)
    } else {
        Err(error(format!(
            "the model the guest passed (sha256 {digest}) is not one it was granted; grant it with --nn-graph NAME=PATH or --nn-dir DIR"
        )))
    }
}
