//! Linking data into a runtime module in place of two function imports.

use std::collections::BTreeSet;

use anyhow::{bail, Context};
use wasm_encoder::reencode::{self, Reencode};
use wasm_encoder::{
    BlockType, CodeSection, ConstExpr, DataCountSection, DataSection, ElementSection, EntityType,
    ExportKind, ExportSection, Function, FunctionSection, GlobalSection, GlobalType, ImportSection,
    Instruction, MemoryType, Module, RawSection, SectionId, StartSection, TypeSection, ValType,
};
use wasmparser::{Payload, TypeRef};

/// What [`link()`] links into a runtime.
#[derive(Debug, Clone, Copy)]
pub struct Embed<'a> {
    /// The import module of the two functions, e.g. `wasmlayer`.
    pub import_module: &'a str,
    /// The import `() -> i32` that becomes `i32.const <data length>`.
    pub len: &'a str,
    /// The import `(dst: i32) -> ()` that becomes `memory.init` of the whole
    /// data at `dst`.
    pub copy: &'a str,
    /// The data: a passive segment, which costs no memory at instantiation.
    pub data: &'a [u8],
    /// For a runtime that imports its memory: declare a smaller minimum.
    pub shrink_memory: Option<MemoryShrink>,
    /// Immutable `i32` globals added to the module and exported by name.
    pub globals: &'a [(&'a str, i32)],
}

/// Lowering the minimum of a runtime's imported memory below what its
/// layout (stack, static data) needs: the runtime's active data segments
/// become passive, and a new start function grows the memory to the
/// original minimum, copies them in place, then runs the runtime's own
/// start function.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MemoryShrink {
    /// The minimum, in pages, the memory import declares.
    pub declared_min_pages: u64,
}

/// Renumbers functions once the two imports are gone: imports after them and
/// defined functions move down by two; the imports themselves become
/// defined functions after the runtime's own.
struct Renumber {
    len_import: u32,
    copy_import: u32,
    /// Functions of the runtime, imported and defined.
    total: u32,
}

impl Reencode for Renumber {
    type Error = std::convert::Infallible;

    fn function_index(&mut self, func: u32) -> Result<u32, reencode::Error<Self::Error>> {
        Ok(if func == self.len_import {
            self.total - 2
        } else if func == self.copy_import {
            self.total - 1
        } else {
            func - u32::from(func > self.len_import) - u32::from(func > self.copy_import)
        })
    }
}

/// A data segment of the runtime.
struct Segment {
    /// Where it goes in memory, if active.
    offset: Option<u32>,
    len: u32,
}

/// Links `embed.data` into `runtime` (see [`Embed`]): the two imports of
/// `embed.import_module` become defined functions over a passive data
/// segment holding the data, placed after the runtime's own functions and
/// segments. Any other import of that module is an error. Custom sections
/// are dropped (names, producers), except the component type information
/// that bindings generators leave (`component-type*`), which names imports
/// and exports rather than indices and lets the result become a component.
pub fn link(runtime: &[u8], embed: &Embed<'_>) -> anyhow::Result<Vec<u8>> {
    let data = embed.data;
    let data_len = i32::try_from(data.len()).context("the data is too large for a Wasm module")?;
    let shrink = embed.shrink_memory;

    // Pass 1: the runtime's imports, types, functions, globals, segments.
    let mut imported_funcs = 0u32;
    let mut defined_funcs = 0u32;
    let mut globals = 0u32;
    let mut types = 0u32;
    let mut void_type = None;
    let mut len_import = None;
    let mut copy_import = None;
    let mut imported_pages = None;
    let mut old_start = None;
    let mut segments: Vec<Segment> = Vec::new();
    for payload in wasmparser::Parser::new(0).parse_all(runtime) {
        match payload? {
            Payload::TypeSection(s) => {
                for group in s {
                    for sub in group?.into_types() {
                        if let wasmparser::CompositeInnerType::Func(f) = &sub.composite_type.inner {
                            if f.params().is_empty()
                                && f.results().is_empty()
                                && void_type.is_none()
                            {
                                void_type = Some(types);
                            }
                        }
                        types += 1;
                    }
                }
            }
            Payload::ImportSection(s) => {
                for imp in s.into_imports() {
                    let imp = imp?;
                    match imp.ty {
                        TypeRef::Func(ty) | TypeRef::FuncExact(ty) => {
                            if imp.module == embed.import_module {
                                if imp.name == embed.len {
                                    len_import = Some((imported_funcs, ty));
                                } else if imp.name == embed.copy {
                                    copy_import = Some((imported_funcs, ty));
                                } else {
                                    bail!("unexpected runtime import {}.{}", imp.module, imp.name);
                                }
                            }
                            imported_funcs += 1;
                        }
                        TypeRef::Global(_) => globals += 1,
                        TypeRef::Memory(m) if shrink.is_some() => {
                            if m.memory64 || m.shared || imported_pages.is_some() {
                                bail!("the runtime must import one plain 32-bit memory");
                            }
                            imported_pages = Some(m.initial);
                        }
                        _ => {}
                    }
                }
            }
            Payload::FunctionSection(s) => defined_funcs = s.count(),
            Payload::GlobalSection(s) => globals += s.count(),
            Payload::MemorySection(s) if s.count() > 0 && shrink.is_some() => {
                bail!("the runtime must import its memory, not define it")
            }
            Payload::StartSection { func, .. } => old_start = Some(func),
            Payload::DataSection(s) => {
                for d in s {
                    let d = d?;
                    let offset = match d.kind {
                        wasmparser::DataKind::Passive => None,
                        wasmparser::DataKind::Active {
                            memory_index: 0,
                            offset_expr,
                        } => match offset_expr.get_operators_reader().read()? {
                            wasmparser::Operator::I32Const { value } => Some(value as u32),
                            // Moved only when the memory shrinks.
                            _ if shrink.is_none() => Some(0),
                            op => bail!("unsupported data segment offset {op:?} in the runtime"),
                        },
                        wasmparser::DataKind::Active { .. } => {
                            bail!("data segment for another memory")
                        }
                    };
                    segments.push(Segment {
                        offset,
                        len: d.data.len() as u32,
                    });
                }
            }
            _ => {}
        }
    }
    let (Some((len_idx, len_ty)), Some((copy_idx, copy_ty))) = (len_import, copy_import) else {
        bail!(
            "the runtime lacks the {m}.{} / {m}.{} imports",
            embed.len,
            embed.copy,
            m = embed.import_module
        );
    };
    let needed_pages = match shrink {
        Some(_) => {
            let Some(pages) = imported_pages else {
                bail!("the runtime does not import its memory");
            };
            Some(i32::try_from(pages).context("the runtime needs too much memory")?)
        }
        None => None,
    };
    let total = imported_funcs + defined_funcs;
    let mut re = Renumber {
        len_import: len_idx,
        copy_import: copy_idx,
        total,
    };
    let data_segment = segments.len() as u32;
    let old_start = old_start.map(|f| re.function_index(f)).transpose()?;
    // With a shrunk memory, a new start function after the two data
    // functions (total - 2, total - 1); otherwise the runtime's own.
    let start_type = void_type.unwrap_or(types);
    let start_func = if shrink.is_some() {
        Some(total)
    } else {
        old_start
    };

    // The functions the linker adds, in function index order.
    let added_functions = || {
        let mut len_fn = Function::new([]);
        len_fn.instruction(&Instruction::I32Const(data_len));
        len_fn.instruction(&Instruction::End);

        let mut copy_fn = Function::new([]);
        copy_fn.instruction(&Instruction::LocalGet(0));
        copy_fn.instruction(&Instruction::I32Const(0));
        copy_fn.instruction(&Instruction::I32Const(data_len));
        copy_fn.instruction(&Instruction::MemoryInit {
            mem: 0,
            data_index: data_segment,
        });
        copy_fn.instruction(&Instruction::End);

        let mut added = vec![len_fn, copy_fn];
        if let Some(needed_pages) = needed_pages {
            added.push(grow_and_copy_start(needed_pages, &segments, old_start));
        }
        added
    };
    let added_globals = |section: &mut GlobalSection| {
        for (_, v) in embed.globals {
            section.global(
                GlobalType {
                    val_type: ValType::I32,
                    mutable: false,
                    shared: false,
                },
                &ConstExpr::i32_const(*v),
            );
        }
    };
    let added_exports = |section: &mut ExportSection| {
        for (i, (name, _)) in embed.globals.iter().enumerate() {
            section.export(name, ExportKind::Global, globals + i as u32);
        }
    };

    // Pass 2: rewrite, adding sections the runtime lacks where they belong.
    let mut module = Module::new();
    let mut code: Option<(CodeSection, u32)> = None;
    let mut emitted = BTreeSet::new();
    let finish_code = |module: &mut Module, mut c: CodeSection| {
        for f in added_functions() {
            c.function(&f);
        }
        module.section(&c);
    };
    // Sections in the order a module holds them.
    let order = |id: u8| {
        const ORDER: [u8; 13] = [1, 2, 3, 4, 5, 13, 6, 7, 8, 9, 12, 10, 11];
        ORDER.iter().position(|x| *x == id).unwrap_or(usize::MAX)
    };
    // Adds the sections the linker needs that the runtime lacks, before a
    // section `next` of the runtime.
    let fill_in = |module: &mut Module, emitted: &mut BTreeSet<u8>, next: u8| {
        let missing = |id: SectionId, emitted: &BTreeSet<u8>| {
            !emitted.contains(&(id as u8)) && order(id as u8) < order(next)
        };
        if !embed.globals.is_empty() && missing(SectionId::Global, emitted) {
            let mut g = GlobalSection::new();
            added_globals(&mut g);
            module.section(&g);
            emitted.insert(SectionId::Global as u8);
        }
        if !embed.globals.is_empty() && missing(SectionId::Export, emitted) {
            let mut e = ExportSection::new();
            added_exports(&mut e);
            module.section(&e);
            emitted.insert(SectionId::Export as u8);
        }
        if let Some(function_index) = start_func {
            if missing(SectionId::Start, emitted) {
                module.section(&StartSection { function_index });
                emitted.insert(SectionId::Start as u8);
            }
        }
        if missing(SectionId::DataCount, emitted) {
            module.section(&DataCountSection {
                count: data_segment + 1,
            });
            emitted.insert(SectionId::DataCount as u8);
        }
    };
    let raw = |module: &mut Module, id: SectionId, range: std::ops::Range<u64>| {
        module.section(&RawSection {
            id: id as u8,
            data: section_bytes(runtime, range),
        });
    };

    for payload in wasmparser::Parser::new(0).parse_all(runtime) {
        let payload = payload?;
        if let Some((id, _)) = payload.as_section() {
            if id != SectionId::Custom as u8 {
                fill_in(&mut module, &mut emitted, id);
                emitted.insert(id);
            }
        }
        match payload {
            Payload::Version { .. } | Payload::End(_) => {}
            Payload::TypeSection(s) => {
                if void_type.is_some() || shrink.is_none() {
                    raw(&mut module, SectionId::Type, s.range());
                } else {
                    let mut t = TypeSection::new();
                    re.parse_type_section(&mut t, s)?;
                    t.ty().function([], []);
                    module.section(&t);
                }
            }
            Payload::ImportSection(s) => {
                let mut imports = ImportSection::new();
                for imp in s.into_imports() {
                    let imp = imp?;
                    if imp.module == embed.import_module {
                        continue;
                    }
                    let ty = match (imp.ty, shrink) {
                        (TypeRef::Memory(m), Some(shrink)) => EntityType::Memory(MemoryType {
                            minimum: m.initial.min(shrink.declared_min_pages),
                            maximum: None,
                            memory64: false,
                            shared: false,
                            page_size_log2: None,
                        }),
                        (other, _) => re.entity_type(other)?,
                    };
                    imports.import(imp.module, imp.name, ty);
                }
                module.section(&imports);
            }
            Payload::FunctionSection(s) => {
                let mut funcs = FunctionSection::new();
                re.parse_function_section(&mut funcs, s)?;
                funcs.function(len_ty);
                funcs.function(copy_ty);
                if shrink.is_some() {
                    funcs.function(start_type);
                }
                module.section(&funcs);
            }
            Payload::TableSection(s) => raw(&mut module, SectionId::Table, s.range()),
            Payload::MemorySection(s) => raw(&mut module, SectionId::Memory, s.range()),
            Payload::TagSection(s) => raw(&mut module, SectionId::Tag, s.range()),
            Payload::GlobalSection(s) => {
                let mut g = GlobalSection::new();
                re.parse_global_section(&mut g, s)?;
                added_globals(&mut g);
                module.section(&g);
            }
            Payload::ExportSection(s) => {
                let mut e = ExportSection::new();
                re.parse_export_section(&mut e, s)?;
                added_exports(&mut e);
                module.section(&e);
            }
            Payload::StartSection { .. } => {
                if let Some(function_index) = start_func {
                    module.section(&StartSection { function_index });
                }
            }
            Payload::ElementSection(s) => {
                let mut e = ElementSection::new();
                re.parse_element_section(&mut e, s)?;
                module.section(&e);
            }
            Payload::DataCountSection { .. } => {
                module.section(&DataCountSection {
                    count: data_segment + 1,
                });
            }
            Payload::CodeSectionStart { count, .. } => {
                if count == 0 {
                    finish_code(&mut module, CodeSection::new());
                } else {
                    code = Some((CodeSection::new(), count));
                }
            }
            Payload::CodeSectionEntry(body) => {
                let Some((c, left)) = code.as_mut() else {
                    bail!("function body outside the code section");
                };
                re.parse_function_body(c, body)?;
                *left -= 1;
                if *left == 0 {
                    if let Some((c, _)) = code.take() {
                        finish_code(&mut module, c);
                    }
                }
            }
            Payload::DataSection(s) => {
                let mut d = DataSection::new();
                for datum in s {
                    let datum = datum?;
                    if shrink.is_some() {
                        // Active segments are copied in by the start function.
                        d.passive(datum.data.iter().copied());
                    } else {
                        re.parse_data(&mut d, datum)?;
                    }
                }
                d.passive(data.iter().copied());
                module.section(&d);
            }
            Payload::CustomSection(c) if c.name().starts_with("component-type") => {
                module.section(&wasm_encoder::CustomSection {
                    name: c.name().into(),
                    data: c.data().into(),
                });
            }
            // Names and other custom sections are dropped.
            Payload::CustomSection(_) => {}
            other => {
                if let Some((id, range)) = other.as_section() {
                    bail!(
                        "unexpected section {id} ({} bytes) in the runtime",
                        range.end - range.start
                    );
                }
            }
        }
    }
    if !emitted.contains(&(SectionId::Code as u8)) {
        bail!("the runtime has no code");
    }
    if !emitted.contains(&(SectionId::Data as u8)) {
        let mut d = DataSection::new();
        d.passive(data.iter().copied());
        module.section(&d);
    }
    Ok(module.finish())
}

/// The start function of a runtime whose memory shrinks: grows memory to
/// `needed_pages` if the host gave less (trapping if it cannot), copies the
/// runtime's active segments (now passive) in place, then calls the
/// runtime's own start function.
fn grow_and_copy_start(
    needed_pages: i32,
    segments: &[Segment],
    old_start: Option<u32>,
) -> Function {
    let mut start = Function::new([]);
    // if memory.size < NEEDED { if memory.grow(NEEDED - memory.size) == -1 { trap } }
    start.instruction(&Instruction::MemorySize(0));
    start.instruction(&Instruction::I32Const(needed_pages));
    start.instruction(&Instruction::I32LtU);
    start.instruction(&Instruction::If(BlockType::Empty));
    start.instruction(&Instruction::I32Const(needed_pages));
    start.instruction(&Instruction::MemorySize(0));
    start.instruction(&Instruction::I32Sub);
    start.instruction(&Instruction::MemoryGrow(0));
    start.instruction(&Instruction::I32Const(-1));
    start.instruction(&Instruction::I32Eq);
    start.instruction(&Instruction::If(BlockType::Empty));
    start.instruction(&Instruction::Unreachable);
    start.instruction(&Instruction::End);
    start.instruction(&Instruction::End);
    for (i, seg) in segments.iter().enumerate() {
        if let Some(offset) = seg.offset {
            start.instruction(&Instruction::I32Const(offset as i32));
            start.instruction(&Instruction::I32Const(0));
            start.instruction(&Instruction::I32Const(seg.len as i32));
            start.instruction(&Instruction::MemoryInit {
                mem: 0,
                data_index: i as u32,
            });
            start.instruction(&Instruction::DataDrop(i as u32));
        }
    }
    if let Some(f) = old_start {
        start.instruction(&Instruction::Call(f));
    }
    start.instruction(&Instruction::End);
    start
}

/// The bytes of a section of `module` (wasmparser gives ranges as `u64`).
fn section_bytes(module: &[u8], range: std::ops::Range<u64>) -> &[u8] {
    // The ranges come from parsing `module`, so they are within it.
    &module[range.start as usize..range.end as usize]
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A runtime with the two imports between others, a start function, an
    /// active segment and a function table.
    const RUNTIME: &str = r#"(module
        (import "env" "before" (func $before (param i32)))
        (import "m" "len" (func $len (result i32)))
        (import "env" "between" (func $between))
        (import "m" "copy" (func $copy (param i32)))
        (import "env" "memory" (memory 17))
        (table 2 funcref)
        (elem (i32.const 0) $run $init)
        (global $g (mut i32) (i32.const 5))
        (func $init (global.set $g (i32.const 6)))
        (func $run (export "run") (result i32)
            (call $copy (i32.const 1024))
            (call $before (call $len))
            (call $between)
            (i32.load8_u (i32.const 1024)))
        (start $init)
        (data (i32.const 16) "static"))"#;

    /// Imports, exports, data segments (active?, bytes), start function.
    type Parsed = (Vec<String>, Vec<String>, Vec<(bool, Vec<u8>)>, Option<u32>);

    fn parse(wasm: &[u8]) -> Parsed {
        let (mut imports, mut exports, mut data, mut start) = (vec![], vec![], vec![], None);
        for p in wasmparser::Parser::new(0).parse_all(wasm) {
            match p.unwrap() {
                Payload::ImportSection(s) => {
                    for i in s.into_imports() {
                        let i = i.unwrap();
                        imports.push(format!("{}.{}", i.module, i.name));
                    }
                }
                Payload::ExportSection(s) => {
                    exports.extend(s.into_iter().map(|e| e.unwrap().name.to_string()))
                }
                Payload::DataSection(s) => {
                    for d in s {
                        let d = d.unwrap();
                        let active = matches!(d.kind, wasmparser::DataKind::Active { .. });
                        data.push((active, d.data.to_vec()));
                    }
                }
                Payload::StartSection { func, .. } => start = Some(func),
                _ => {}
            }
        }
        wasmparser::Validator::new_with_features(wasmparser::WasmFeatures::all())
            .validate_all(wasm)
            .unwrap();
        (imports, exports, data, start)
    }

    fn embed(
        shrink_memory: Option<MemoryShrink>,
        globals: &'static [(&'static str, i32)],
    ) -> Embed<'static> {
        Embed {
            import_module: "m",
            len: "len",
            copy: "copy",
            data: b"the data",
            shrink_memory,
            globals,
        }
    }

    #[test]
    fn imports_become_functions_over_a_passive_segment() {
        let runtime = wat::parse_str(RUNTIME).unwrap();
        let wasm = link(&runtime, &embed(None, &[])).unwrap();
        let (imports, exports, data, start) = parse(&wasm);
        assert_eq!(imports, ["env.before", "env.between", "env.memory"]);
        assert_eq!(exports, ["run"]);
        assert_eq!(
            data,
            [(true, b"static".to_vec()), (false, b"the data".to_vec())]
        );
        // $init, after the 2 function imports left.
        assert_eq!(start, Some(2));
    }

    #[test]
    fn memory_shrinks_and_globals_are_exported() {
        let runtime = wat::parse_str(RUNTIME).unwrap();
        let shrink = MemoryShrink {
            declared_min_pages: 2,
        };
        let wasm = link(&runtime, &embed(Some(shrink), &[("abi", 1), ("minor", 3)])).unwrap();
        let (imports, exports, data, start) = parse(&wasm);
        assert_eq!(imports, ["env.before", "env.between", "env.memory"]);
        assert_eq!(exports, ["run", "abi", "minor"]);
        // Every segment passive; the new start function follows the 2
        // function imports left, the runtime's 2 functions and the 2 linked.
        assert_eq!(
            data,
            [(false, b"static".to_vec()), (false, b"the data".to_vec())]
        );
        assert_eq!(start, Some(2 + 2 + 2));
        let memory_min =
            wasmparser::Parser::new(0)
                .parse_all(&wasm)
                .find_map(|p| match p.unwrap() {
                    Payload::ImportSection(s) => {
                        s.into_imports().find_map(|i| match i.unwrap().ty {
                            TypeRef::Memory(m) => Some(m.initial),
                            _ => None,
                        })
                    }
                    _ => None,
                });
        assert_eq!(memory_min, Some(2));
    }

    #[test]
    fn other_imports_of_the_module_are_refused() {
        let runtime = wat::parse_str(
            r#"(module (import "m" "len" (func (result i32))) (import "m" "copy" (func (param i32)))
                (import "m" "other" (func)) (memory 1))"#,
        )
        .unwrap();
        let err = link(&runtime, &embed(None, &[])).unwrap_err().to_string();
        assert!(err.contains("unexpected runtime import m.other"), "{err}");
        let runtime = wat::parse_str(r#"(module (memory 1))"#).unwrap();
        let err = link(&runtime, &embed(None, &[])).unwrap_err().to_string();
        assert!(err.contains("lacks the m.len / m.copy imports"), "{err}");
    }
}
