//! The models a grant names for wasi-nn: named graphs (`nn_graphs`,
//! `--nn-graph NAME=PATH`) and the models of one directory (`nn_dir`,
//! `--nn-dir DIR`: `NAME.onnx`, also found as `NAME`, or a subdirectory
//! `NAME/model.onnx`). The admission request lists them with their
//! SHA-256, so a policy can decide by a model's digest.

use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// A model a guest may load: by name, from this file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Model {
    pub name: String,
    pub path: PathBuf,
}

/// The models a grant names: the named graphs, then each model of the
/// directory (a named graph wins over a directory entry of the same name).
pub fn granted(graphs: &BTreeMap<String, PathBuf>, dir: Option<&Path>) -> Vec<Model> {
    let mut out: Vec<Model> = graphs
        .iter()
        .map(|(name, path)| Model {
            name: name.clone(),
            path: path.clone(),
        })
        .collect();
    if let Some(dir) = dir {
        for m in in_dir(dir) {
            if !out.iter().any(|o| o.name == m.name) {
                out.push(m);
            }
        }
    }
    out
}

/// The models of a directory: `NAME.onnx` files (also found as `NAME`)
/// and `NAME/model.onnx`.
pub fn in_dir(dir: &Path) -> Vec<Model> {
    let mut out = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return out;
    };
    let mut entries: Vec<_> = entries.flatten().map(|e| e.path()).collect();
    entries.sort();
    for path in entries {
        let Some(file) = path.file_name().map(|n| n.to_string_lossy().into_owned()) else {
            continue;
        };
        if path.is_dir() {
            let model = path.join("model.onnx");
            if model.is_file() {
                out.push(Model {
                    name: file,
                    path: model,
                });
            }
        } else if let Some(stem) = file.strip_suffix(".onnx") {
            out.push(Model {
                name: file.clone(),
                path: path.clone(),
            });
            out.push(Model {
                name: stem.to_string(),
                path,
            });
        }
    }
    out
}

/// The SHA-256 of a file, in hex.
pub fn sha256_file(path: &Path) -> std::io::Result<String> {
    let mut f = std::fs::File::open(path)?;
    let mut h = Sha256::new();
    std::io::copy(&mut f, &mut h)?;
    Ok(crate::runtime::hex(&h.finalize()))
}
