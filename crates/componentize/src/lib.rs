//! Turning a WASI p1 core module into a WASI p2 component.
//!
//! The module's `wasi_snapshot_preview1` imports are satisfied by the
//! preview1 adapter released with Wasmtime (a core module that implements
//! preview1 on top of the p2 interfaces); `wit-component` links the two
//! into one component. A module that exports `_start` gets the command
//! adapter and becomes a `wasi:cli/command` component; any other module gets
//! the reactor adapter.

pub mod memshift;

use wasi_preview1_component_adapter_provider::{
    WASI_SNAPSHOT_PREVIEW1_ADAPTER_NAME, WASI_SNAPSHOT_PREVIEW1_COMMAND_ADAPTER,
    WASI_SNAPSHOT_PREVIEW1_REACTOR_ADAPTER,
};
use wasmlayer_core::artifact::{detect, Format};
use wasmlayer_core::{Error, Result};
use wasmparser::{Parser, Payload, TypeRef};

/// Which preview1 adapter a module was wrapped with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Adapter {
    /// For modules with `_start`: the component exports `wasi:cli/run`.
    Command,
    /// For library-style modules without `_start`.
    Reactor,
}

impl AdapterMemory {
    pub fn as_str(self) -> &'static str {
        match self {
            AdapterMemory::Reserved => "reserved",
            AdapterMemory::Grow => "grow",
        }
    }
}

impl std::str::FromStr for AdapterMemory {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "reserved" => Ok(AdapterMemory::Reserved),
            "grow" => Ok(AdapterMemory::Grow),
            _ => Err(format!("expected `reserved` or `grow`, got `{s}`")),
        }
    }
}

impl Adapter {
    pub fn as_str(self) -> &'static str {
        match self {
            Adapter::Command => "command",
            Adapter::Reactor => "reactor",
        }
    }
}

/// Where the adapter keeps its state and stack in the module's memory.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum AdapterMemory {
    /// Move the module up and give the adapter the reserved bottom of memory
    /// (see [`crate::memshift`]). Works with runtimes that assume they own all
    /// memory past their data, such as Go's. Not applied to modules that
    /// export their own allocator for the adapter or carry component type
    /// information; those get [`AdapterMemory::Grow`].
    #[default]
    Reserved,
    /// Let the adapter grow memory for itself (`wit-component`'s own
    /// placement). Works with runtimes that tolerate foreign `memory.grow`,
    /// such as wasi-libc's and Rust's.
    Grow,
}

/// The result of [`componentize`].
#[derive(Debug, Clone)]
pub struct Componentized {
    pub component: Vec<u8>,
    pub adapter: Adapter,
    /// Where the adapter's memory ended up.
    pub memory: AdapterMemory,
}

/// Wraps the core module in `bytes` (binary or text) into a component.
pub fn componentize(bytes: &[u8], memory: AdapterMemory) -> Result<Componentized> {
    let module = match detect(bytes)?.0 {
        Format::Wasm => bytes.to_vec(),
        Format::Wat => wat::parse_bytes(bytes)
            .map_err(|e| Error::invalid(format!("invalid WebAssembly text: {e}")))?
            .into_owned(),
        Format::Precompiled => return Err(Error::invalid(
            "the input is precompiled code (.cwasm); componentize needs the original .wasm module",
        )),
    };
    if Parser::is_component(&module) {
        return Err(Error::invalid(
            "the input is already a component; only core modules can be componentized",
        ));
    }
    let shape = ModuleShape::read(&module)?;
    // Refuse an invalid module with its own reason before any rewriting:
    // whatever fails later is then a limit of componentizing, not bad input.
    wasmparser::Validator::new_with_features(wasmparser::WasmFeatures::all())
        .validate_all(&module)
        .map_err(|e| Error::invalid(format!("invalid WebAssembly module: {e}")))?;
    if !shape.exports_memory {
        return Err(Error::invalid(
            "the module does not export its memory as `memory`, which the WASI preview1 adapter needs",
        ));
    }
    if !shape.foreign_imports.is_empty() && !shape.has_component_type {
        let shown = shape.foreign_imports.len().min(5);
        let more = shape.foreign_imports.len() - shown;
        let mut list = shape.foreign_imports[..shown].join(", ");
        if more > 0 {
            list.push_str(&format!(" and {more} more"));
        }
        return Err(Error::invalid(format!(
            "the module imports {list}, which WASI p2 does not provide; only `wasi_snapshot_preview1` imports can be adapted"
        )));
    }
    let (adapter, adapter_bytes) = if shape.exports_start {
        (Adapter::Command, WASI_SNAPSHOT_PREVIEW1_COMMAND_ADAPTER)
    } else {
        (Adapter::Reactor, WASI_SNAPSHOT_PREVIEW1_REACTOR_ADAPTER)
    };
    // A module that brings its own allocator for the adapter needs no room
    // made; one with component type information has exports lifted with real
    // addresses, which moving it would break.
    let (module, memory) = match memory {
        AdapterMemory::Reserved if !shape.exports_realloc && !shape.has_component_type => {
            (crate::memshift::shift(&module)?, AdapterMemory::Reserved)
        }
        _ => (module, AdapterMemory::Grow),
    };
    let component = wit_component::ComponentEncoder::default()
        .validate(true)
        .module(&module)
        .and_then(|e| e.adapter(WASI_SNAPSHOT_PREVIEW1_ADAPTER_NAME, adapter_bytes))
        .and_then(|e| e.encode())
        .map_err(|e| Error::invalid(format!("cannot componentize the module: {e:#}")))?;
    Ok(Componentized {
        component,
        adapter,
        memory,
    })
}

/// What componentize needs to know about a module before encoding it.
#[derive(Debug, Default)]
struct ModuleShape {
    exports_start: bool,
    exports_memory: bool,
    /// Exports an allocator `wit-component` would use for the adapter.
    exports_realloc: bool,
    has_component_type: bool,
    /// `module::name` of every function import outside preview1.
    foreign_imports: Vec<String>,
}

impl ModuleShape {
    fn read(module: &[u8]) -> Result<Self> {
        let mut shape = ModuleShape::default();
        let bad =
            |e: wasmparser::BinaryReaderError| Error::invalid(format!("malformed module: {e}"));
        for payload in Parser::new(0).parse_all(module) {
            match payload.map_err(bad)? {
                Payload::ImportSection(section) => {
                    for import in section.into_imports() {
                        let import = import.map_err(bad)?;
                        let foreign = import.module != WASI_SNAPSHOT_PREVIEW1_ADAPTER_NAME;
                        if foreign && matches!(import.ty, TypeRef::Func(_) | TypeRef::FuncExact(_))
                        {
                            shape
                                .foreign_imports
                                .push(format!("{}::{}", import.module, import.name));
                        }
                    }
                }
                Payload::ExportSection(section) => {
                    for export in section {
                        let export = export.map_err(bad)?;
                        match (export.name, export.kind) {
                            ("_start", wasmparser::ExternalKind::Func) => {
                                shape.exports_start = true
                            }
                            ("memory", wasmparser::ExternalKind::Memory) => {
                                shape.exports_memory = true
                            }
                            (
                                "cabi_realloc" | "canonical_abi_realloc" | "cabi_realloc_adapter",
                                wasmparser::ExternalKind::Func,
                            ) => shape.exports_realloc = true,
                            _ => {}
                        }
                    }
                }
                Payload::CustomSection(c) if c.name().starts_with("component-type") => {
                    shape.has_component_type = true
                }
                _ => {}
            }
        }
        Ok(shape)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn command_module_becomes_a_command_component() {
        let m = wat::parse_str(
            r#"(module
                 (import "wasi_snapshot_preview1" "proc_exit" (func $exit (param i32)))
                 (memory (export "memory") 1)
                 (func (export "_start") (call $exit (i32.const 3))))"#,
        )
        .unwrap();
        let c = componentize(&m, AdapterMemory::Reserved).unwrap();
        assert_eq!(c.memory, AdapterMemory::Reserved);
        assert_eq!(c.adapter, Adapter::Command);
        assert!(wasmparser::Parser::is_component(&c.component));
        let text = wasmprinter_names(&c.component);
        assert!(
            text.iter().any(|n| n.starts_with("wasi:cli/run")),
            "{text:?}"
        );
    }

    #[test]
    fn rejects_components_and_foreign_imports() {
        let m = wat::parse_str(
            r#"(module (import "env" "log" (func)) (memory (export "memory") 1) (func (export "_start")))"#,
        )
        .unwrap();
        let e = componentize(&m, AdapterMemory::Grow).unwrap_err();
        assert!(e.to_string().contains("env::log"), "{e}");
        let c = wat::parse_str("(component)").unwrap();
        assert!(componentize(&c, AdapterMemory::Grow)
            .unwrap_err()
            .to_string()
            .contains("already a component"));
        let no_mem = wat::parse_str(r#"(module (func (export "_start")))"#).unwrap();
        assert!(componentize(&no_mem, AdapterMemory::Grow)
            .unwrap_err()
            .to_string()
            .contains("memory"));
    }

    #[test]
    fn invalid_and_oversized_modules_are_refused_with_the_reason() {
        let bad = wat::parse_str(
            r#"(module (memory (export "memory") 1) (func (export "_start") i32.add))"#,
        )
        .unwrap();
        let e = componentize(&bad, AdapterMemory::Reserved).unwrap_err();
        assert_eq!(e.kind(), wasmlayer_core::ErrorKind::InvalidArtifact);
        assert!(e.to_string().contains("invalid WebAssembly module"), "{e}");
        let full =
            wat::parse_str(r#"(module (memory (export "memory") 65536) (func (export "_start")))"#)
                .unwrap();
        let e = componentize(&full, AdapterMemory::Reserved).unwrap_err();
        assert_eq!(e.kind(), wasmlayer_core::ErrorKind::InvalidArtifact, "{e}");
        assert!(e.to_string().contains("65536 pages"), "{e}");
    }

    /// Names of the component's top-level exports.
    fn wasmprinter_names(component: &[u8]) -> Vec<String> {
        let mut names = Vec::new();
        let mut depth = 0;
        for p in Parser::new(0).parse_all(component) {
            match p.unwrap() {
                Payload::ModuleSection { .. } | Payload::ComponentSection { .. } => depth += 1,
                Payload::End(_) if depth > 0 => depth -= 1,
                Payload::ComponentExportSection(s) if depth == 0 => {
                    for e in s {
                        names.push(e.unwrap().name.name.to_string());
                    }
                }
                _ => {}
            }
        }
        names
    }
}
