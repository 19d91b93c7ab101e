//! Artifact kinds, detection from the bytes, and the facts admission sees.

use crate::error::{Error, Result};
use serde::Serialize;
use std::fmt;

/// What an artifact is once compiled.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ArtifactKind {
    /// A core WebAssembly module (WASI p1, or no WASI at all).
    Module,
    /// A component (WASI p2).
    Component,
}

impl ArtifactKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ArtifactKind::Module => "module",
            ArtifactKind::Component => "component",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "module" => Some(ArtifactKind::Module),
            "component" => Some(ArtifactKind::Component),
            _ => None,
        }
    }
}

impl fmt::Display for ArtifactKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The encoding of the bytes on disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Format {
    /// Binary WebAssembly.
    Wasm,
    /// WebAssembly text.
    Wat,
    /// Code precompiled by `wasmlayer compile` (a Wasmtime `.cwasm`).
    Precompiled,
}

/// Facts about an artifact, as given to admission and shown by `inspect`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ArtifactFacts {
    /// SHA-256 of the bytes on disk, lowercase hex.
    pub sha256: String,
    /// Size in bytes on disk.
    pub size: u64,
    pub kind: ArtifactKind,
    pub format: Format,
    /// `module::name` for core modules; interface names for components.
    pub imports: Vec<String>,
}

impl ArtifactFacts {
    /// The WASI capability classes these imports could use.
    pub fn capabilities(&self) -> Vec<&'static str> {
        wasi_capabilities(self.imports.iter().map(String::as_str))
    }
}

const ELF_MAGIC: &[u8] = b"\x7fELF";
const WASM_MAGIC: &[u8] = b"\0asm";

/// Detects the format and kind from the first bytes; text is parsed later.
pub fn detect(bytes: &[u8]) -> Result<(Format, Option<ArtifactKind>)> {
    if bytes.starts_with(WASM_MAGIC) {
        if bytes.len() < 8 {
            return Err(Error::invalid(
                "truncated WebAssembly header (fewer than 8 bytes)",
            ));
        }
        if wasmparser::Parser::is_component(bytes) {
            return Ok((Format::Wasm, Some(ArtifactKind::Component)));
        }
        if wasmparser::Parser::is_core_wasm(bytes) {
            return Ok((Format::Wasm, Some(ArtifactKind::Module)));
        }
        return Err(Error::invalid(format!(
            "unsupported WebAssembly version/layer {:02x?}",
            &bytes[4..8]
        )));
    }
    if bytes.starts_with(ELF_MAGIC) {
        return match wasmtime::Engine::detect_precompiled(bytes) {
            Some(wasmtime::Precompiled::Module) => {
                Ok((Format::Precompiled, Some(ArtifactKind::Module)))
            }
            Some(wasmtime::Precompiled::Component) => {
                Ok((Format::Precompiled, Some(ArtifactKind::Component)))
            }
            None => Err(Error::invalid(
                "an ELF file that is not a precompiled WebAssembly artifact",
            )),
        };
    }
    if looks_like_text(bytes) {
        return Ok((Format::Wat, None));
    }
    if bytes.is_empty() {
        return Err(Error::invalid(
            "empty file: not a WebAssembly module or component",
        ));
    }
    Err(Error::invalid(
        "not a WebAssembly module, component, text file or precompiled artifact (unrecognised header)",
    ))
}

/// Whether the first bytes of a file could start some artifact format
/// (binary WebAssembly, a precompiled ELF image, or WebAssembly text).
pub fn known_prefix(head: &[u8]) -> bool {
    head.starts_with(WASM_MAGIC) || head.starts_with(ELF_MAGIC) || looks_like_text(head)
}

fn looks_like_text(bytes: &[u8]) -> bool {
    let head = &bytes[..bytes.len().min(4096)];
    // The cut at 4096 bytes may fall inside a multi-byte character.
    let text = match std::str::from_utf8(head) {
        Ok(t) => t,
        Err(e) if e.error_len().is_none() => {
            std::str::from_utf8(&head[..e.valid_up_to()]).unwrap_or_default()
        }
        Err(_) => return false,
    };
    let t = text.trim_start();
    t.starts_with('(') || t.starts_with(";;")
}

/// Maps import names to the WASI capability classes they could exercise.
pub fn wasi_capabilities<'a>(imports: impl Iterator<Item = &'a str>) -> Vec<&'static str> {
    let mut caps: Vec<&'static str> = Vec::new();
    for imp in imports {
        let class = classify_import(imp);
        if let Some(c) = class {
            if !caps.contains(&c) {
                caps.push(c);
            }
        }
    }
    caps.sort_unstable();
    caps
}

fn classify_import(imp: &str) -> Option<&'static str> {
    if let Some(func) = imp
        .strip_prefix("wasi_snapshot_preview1::")
        .or_else(|| imp.strip_prefix("wasi_unstable::"))
    {
        return Some(match func {
            "args_get" | "args_sizes_get" => "args",
            "environ_get" | "environ_sizes_get" => "env",
            "clock_time_get" | "clock_res_get" => "clocks",
            "random_get" => "random",
            "proc_exit" | "proc_raise" => "exit",
            "sched_yield" => "scheduling",
            "poll_oneoff" => "poll",
            f if f.starts_with("sock_") => "network",
            f if f.starts_with("path_") || f.starts_with("fd_prestat") => "filesystem",
            "fd_write" | "fd_read" => "stdio-or-files",
            f if f.starts_with("fd_") => "filesystem",
            _ => "wasi-other",
        });
    }
    let iface = imp.split('@').next().unwrap_or(imp);
    let class = match iface {
        "wasi:cli/environment" => "env-and-args",
        "wasi:cli/exit" => "exit",
        "wasi:cli/stdin" | "wasi:cli/stdout" | "wasi:cli/stderr" => "stdio",
        i if i.starts_with("wasi:cli/terminal") => "terminal",
        i if i.starts_with("wasi:filesystem/") => "filesystem",
        i if i.starts_with("wasi:sockets/") => "network",
        i if i.starts_with("wasi:clocks/") => "clocks",
        i if i.starts_with("wasi:random/") => "random",
        i if i.starts_with("wasi:http/") => "http",
        i if i.starts_with("wasi:nn/") || i.starts_with("wasi_ephemeral_nn") => "nn",
        i if i.starts_with("wasi:io/") => "io",
        i if i.starts_with("wasi:") => "wasi-other",
        _ => return None,
    };
    Some(class)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn detection() {
        assert!(detect(b"").is_err());
        assert!(detect(b"\0asm\x01\0").is_err());
        assert_eq!(
            detect(b"\0asm\x01\0\0\0").unwrap(),
            (Format::Wasm, Some(ArtifactKind::Module))
        );
        assert_eq!(
            detect(b"\0asm\x0d\0\x01\0").unwrap(),
            (Format::Wasm, Some(ArtifactKind::Component))
        );
        assert_eq!(detect(b"(module)").unwrap().0, Format::Wat);
        assert!(detect(&[0xde, 0xad, 0xbe, 0xef, 1, 2, 3]).is_err());
        assert!(detect(b"\x7fELF\x02\x01\x01").is_err());
    }

    #[test]
    fn classes() {
        let caps = wasi_capabilities(
            [
                "wasi_snapshot_preview1::path_open",
                "wasi_snapshot_preview1::environ_get",
                "wasi:sockets/tcp@0.2.0",
                "env::f",
            ]
            .into_iter(),
        );
        assert_eq!(caps, vec!["env", "filesystem", "network"]);
    }
}
