//! `inspect`: what an artifact is, imports and exports, and the WASI
//! capabilities it could use.

use crate::artifact::{ArtifactKind, Format};
use crate::runtime::{Compiled, Loaded};
use serde::Serialize;
use wasmtime::component::types::ComponentItem;
use wasmtime::{Engine, ExternType};

/// An import or export with a readable type.
#[derive(Debug, Clone, Serialize)]
pub struct Item {
    pub name: String,
    #[serde(rename = "type")]
    pub ty: String,
    /// For component instances: the names of what they hold.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub items: Vec<String>,
}

/// The full report of `wasmlayer inspect`.
#[derive(Debug, Clone, Serialize)]
pub struct Inspection {
    pub path: String,
    pub kind: ArtifactKind,
    /// The WASI release it is written for: `p1` (core modules), `p2` or
    /// `p3` (components with any WASI 0.3 import or export).
    pub wasi: &'static str,
    pub format: Format,
    pub size: u64,
    pub sha256: String,
    pub imports: Vec<Item>,
    pub exports: Vec<Item>,
    /// WASI capability classes the artifact could use.
    pub capabilities: Vec<&'static str>,
}

/// Inspects a loaded artifact.
pub fn inspect(loaded: &Loaded) -> Inspection {
    let engine = loaded.compiled.engine();
    let (imports, exports) = match &loaded.compiled {
        Compiled::Module(m) => (
            m.imports()
                .map(|i| item(format!("{}::{}", i.module(), i.name()), extern_ty(&i.ty())))
                .collect(),
            m.exports()
                .map(|e| item(e.name().to_string(), extern_ty(&e.ty())))
                .collect(),
        ),
        Compiled::Component(c) => {
            let ty = c.component_type();
            (
                ty.imports(engine)
                    .map(|(n, e)| component_item(engine, n, &e.ty))
                    .collect(),
                ty.exports(engine)
                    .map(|(n, e)| component_item(engine, n, &e.ty))
                    .collect(),
            )
        }
    };
    let wasi = match &loaded.compiled {
        Compiled::Module(_) => "p1",
        Compiled::Component(_) => {
            let p3 = |items: &Vec<Item>| {
                items
                    .iter()
                    .any(|i| i.name.starts_with("wasi:") && i.name.contains("@0.3"))
            };
            if p3(&imports) || p3(&exports) {
                "p3"
            } else {
                "p2"
            }
        }
    };
    Inspection {
        path: loaded.path.display().to_string(),
        kind: loaded.facts.kind,
        wasi,
        format: loaded.facts.format,
        size: loaded.facts.size,
        sha256: loaded.facts.sha256.clone(),
        imports,
        exports,
        capabilities: loaded.facts.capabilities(),
    }
}

fn item(name: String, ty: String) -> Item {
    Item {
        name,
        ty,
        items: Vec::new(),
    }
}

fn extern_ty(ty: &ExternType) -> String {
    match ty {
        ExternType::Func(f) => {
            let params: Vec<String> = f.params().map(|p| p.to_string()).collect();
            let results: Vec<String> = f.results().map(|p| p.to_string()).collect();
            if results.is_empty() {
                format!("func({})", params.join(", "))
            } else {
                format!("func({}) -> {}", params.join(", "), results.join(", "))
            }
        }
        ExternType::Memory(m) => match m.maximum() {
            Some(max) => format!("memory {}..{} pages", m.minimum(), max),
            None => format!("memory {}.. pages", m.minimum()),
        },
        ExternType::Table(t) => format!("table {} {}..", t.element(), t.minimum()),
        ExternType::Global(g) => format!("global {}", g.content()),
        ExternType::Tag(_) => "tag".to_string(),
    }
}

fn component_item(engine: &Engine, name: &str, ty: &ComponentItem) -> Item {
    let kind = match ty {
        ComponentItem::ComponentFunc(f) => {
            let params: Vec<&str> = f.params().map(|(n, _)| n).collect();
            format!("func({})", params.join(", "))
        }
        ComponentItem::CoreFunc(_) => "core func".to_string(),
        ComponentItem::Module(_) => "core module".to_string(),
        ComponentItem::Component(_) => "component".to_string(),
        ComponentItem::ComponentInstance(_) => "instance".to_string(),
        ComponentItem::Type(_) => "type".to_string(),
        ComponentItem::Resource(_) => "resource".to_string(),
    };
    let items = match ty {
        ComponentItem::ComponentInstance(i) => {
            i.exports(engine).map(|(n, _)| n.to_string()).collect()
        }
        _ => Vec::new(),
    };
    Item {
        name: name.to_string(),
        ty: kind,
        items,
    }
}
