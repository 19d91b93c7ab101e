//! Reserving memory for the preview1 adapter below a core module's own.
//!
//! The preview1 adapter has no memory of its own: it keeps its state and
//! stack in the main module's linear memory. By default `wit-component` gets
//! those pages with `memory.grow`, which only works if the module's runtime
//! tolerates someone else growing its memory. Go's runtime does not: its
//! allocator assumes every page past the end of its data is its own, so it
//! overwrites the adapter's state as soon as the heap grows (and the
//! adapter then fails an assertion).
//!
//! This pass moves the whole module up by [`RESERVED`] bytes instead, so that
//! the module never touches the first [`RESERVED`] bytes of its memory:
//!
//! - every load and store gets `RESERVED` added to its static offset; the
//!   destination and source operands of `memory.fill`, `memory.copy` and
//!   `memory.init` get it added at run time; active data segments move up;
//! - `memory.size` and `memory.grow` report sizes without the reserved pages;
//! - every WASI preview1 import that takes pointers is called through a
//!   small shim that converts the module's addresses to real ones, including
//!   the buffer pointers inside I/O vectors, and converts the pointers that
//!   `args_get` and `environ_get` write back;
//! - the module exports `cabi_realloc_adapter`, a bump allocator over the
//!   reserved region, which `wit-component` uses for the adapter's state and
//!   stack instead of growing memory.
//!
//! The result is an ordinary core module that still imports preview1 and
//! exports the same names; it only makes sense together with the adapter.

use std::collections::HashMap;
use wasm_encoder::reencode::Reencode;
use wasm_encoder::{
    CodeSection, ConstExpr, DataSection, ElementSection, ExportKind, ExportSection, Function,
    FunctionSection, GlobalSection, ImportSection, Instruction, MemArg, MemorySection, MemoryType,
    Module, TableSection, TypeSection, ValType,
};
use wasmlayer_core::{Error, Result};
use wasmparser::{DataKind, ExternalKind, FunctionBody, Operator, Parser, Payload, TypeRef};

const PAGE: u32 = 65536;
/// Pages of the largest 32-bit memory (4 GiB).
const MAX_PAGES: u64 = 65536;
/// Bytes reserved at the bottom of memory for the adapter and the shims.
pub const RESERVED: u32 = 4 * PAGE;
const RESERVED_PAGES: i32 = (RESERVED / PAGE) as i32;
/// Physical address of the bump allocator's next free byte (0 = not yet used).
const BUMP_PTR: u32 = 0;
/// Physical address where `args_sizes_get`/`environ_sizes_get` write in shims.
const SIZES: u32 = 8;
/// Physical address of the translated I/O vectors.
const IOV_SCRATCH: u32 = 64;
/// At most this many I/O vectors are passed on (short reads and writes are allowed).
const IOV_MAX: i32 = 1024;
/// First byte handed out by `cabi_realloc_adapter`.
const BUMP_START: u32 = 16384;

const WASI: &str = "wasi_snapshot_preview1";

/// How a preview1 function's parameters carry pointers.
struct Pointers {
    /// Parameters that are plain pointers into memory.
    flat: &'static [u32],
    /// A parameter that points to an array of I/O vectors; its length follows it.
    iovs: Option<u32>,
    /// `args_get` / `environ_get`: the callee writes pointers back.
    writes_pointers: Option<&'static str>,
}

const fn flat(flat: &'static [u32]) -> Pointers {
    Pointers {
        flat,
        iovs: None,
        writes_pointers: None,
    }
}

const fn iov(iov: u32, flat: &'static [u32]) -> Pointers {
    Pointers {
        flat,
        iovs: Some(iov),
        writes_pointers: None,
    }
}

/// The pointer parameters of every preview1 function.
fn preview1_pointers(name: &str) -> Option<Pointers> {
    Some(match name {
        "args_get" => Pointers {
            flat: &[0, 1],
            iovs: None,
            writes_pointers: Some("args_sizes_get"),
        },
        "environ_get" => Pointers {
            flat: &[0, 1],
            iovs: None,
            writes_pointers: Some("environ_sizes_get"),
        },
        "args_sizes_get" | "environ_sizes_get" => flat(&[0, 1]),
        "clock_res_get"
        | "fd_fdstat_get"
        | "fd_filestat_get"
        | "fd_prestat_get"
        | "fd_prestat_dir_name"
        | "fd_tell"
        | "path_create_directory"
        | "path_remove_directory"
        | "path_unlink_file" => flat(&[1]),
        "clock_time_get" | "path_filestat_set_times" | "sock_accept" => flat(&[2]),
        "fd_seek" => flat(&[3]),
        "fd_readdir" | "path_rename" => flat(&[1, 4]),
        "path_filestat_get" => flat(&[2, 4]),
        "path_link" => flat(&[2, 5]),
        "path_open" => flat(&[2, 8]),
        "path_readlink" => flat(&[1, 3, 5]),
        "path_symlink" => flat(&[0, 3]),
        "poll_oneoff" => flat(&[0, 1, 3]),
        "random_get" => flat(&[0]),
        "fd_read" | "fd_write" => iov(1, &[3]),
        "fd_pread" | "fd_pwrite" | "sock_send" => iov(1, &[4]),
        "sock_recv" => iov(1, &[4, 5]),
        "fd_advise"
        | "fd_allocate"
        | "fd_close"
        | "fd_datasync"
        | "fd_fdstat_set_flags"
        | "fd_fdstat_set_rights"
        | "fd_filestat_set_size"
        | "fd_filestat_set_times"
        | "fd_renumber"
        | "fd_sync"
        | "proc_exit"
        | "proc_raise"
        | "sched_yield"
        | "sock_shutdown" => flat(&[]),
        _ => return None,
    })
}

fn unsupported(what: impl std::fmt::Display) -> Error {
    Error::invalid(format!(
        "cannot reserve adapter memory in this module: {what}"
    ))
}

/// What the first pass learns about the module.
#[derive(Default)]
struct Layout {
    func_types: Vec<wasmparser::FuncType>,
    /// Type index of every function, imports first.
    funcs: Vec<u32>,
    /// (function index, name, type index) of preview1 function imports.
    wasi_imports: Vec<(u32, String, u32)>,
    num_imported_funcs: u32,
    memories: u32,
}

impl Layout {
    fn read(module: &[u8]) -> Result<Self> {
        let bad =
            |e: wasmparser::BinaryReaderError| Error::invalid(format!("malformed module: {e}"));
        let mut l = Layout::default();
        for payload in Parser::new(0).parse_all(module) {
            match payload.map_err(bad)? {
                Payload::TypeSection(s) => {
                    for ty in s.into_iter_err_on_gc_types() {
                        l.func_types.push(ty.map_err(bad)?);
                    }
                }
                Payload::ImportSection(s) => {
                    for imp in s.into_imports() {
                        let imp = imp.map_err(bad)?;
                        match imp.ty {
                            TypeRef::Func(t) | TypeRef::FuncExact(t) => {
                                if imp.module == WASI {
                                    l.wasi_imports.push((
                                        l.funcs.len() as u32,
                                        imp.name.to_string(),
                                        t,
                                    ));
                                }
                                l.funcs.push(t);
                                l.num_imported_funcs += 1;
                            }
                            TypeRef::Memory(_) => return Err(unsupported("it imports its memory")),
                            _ => {}
                        }
                    }
                }
                Payload::FunctionSection(s) => {
                    for t in s {
                        l.funcs.push(t.map_err(bad)?);
                    }
                }
                Payload::MemorySection(s) => {
                    for m in s {
                        let m = m.map_err(bad)?;
                        if m.memory64 || m.shared || m.page_size_log2.is_some() {
                            return Err(unsupported(
                                "only a 32-bit, unshared memory with 64 KiB pages is supported",
                            ));
                        }
                        l.memories += 1;
                    }
                }
                _ => {}
            }
        }
        if l.memories != 1 {
            return Err(unsupported(format!(
                "it defines {} memories (exactly one is supported)",
                l.memories
            )));
        }
        Ok(l)
    }

    fn params(&self, func: u32) -> &[wasmparser::ValType] {
        self.func_types[self.funcs[func as usize] as usize].params()
    }
}

/// The re-encoder: shifts static offsets and redirects calls to shims.
struct Shifter {
    redirect: HashMap<u32, u32>,
}

impl Reencode for Shifter {
    type Error = String;

    fn function_index(&mut self, func: u32) -> Result<u32, wasm_encoder::reencode::Error<String>> {
        Ok(self.redirect.get(&func).copied().unwrap_or(func))
    }

    fn mem_arg(
        &mut self,
        arg: wasmparser::MemArg,
    ) -> Result<MemArg, wasm_encoder::reencode::Error<String>> {
        if arg.memory != 0 {
            return Err(wasm_encoder::reencode::Error::UserError(
                "access to a second memory".into(),
            ));
        }
        let offset = arg.offset + u64::from(RESERVED);
        if offset > u64::from(u32::MAX) {
            return Err(wasm_encoder::reencode::Error::UserError(format!(
                "static offset {} too large",
                arg.offset
            )));
        }
        Ok(MemArg {
            offset,
            align: arg.align.into(),
            memory_index: 0,
        })
    }
}

fn reencode_err(e: wasm_encoder::reencode::Error<String>) -> Error {
    match e {
        wasm_encoder::reencode::Error::UserError(s) => unsupported(s),
        other => Error::invalid(format!("malformed module: {other}")),
    }
}

/// Moves the module `bytes` up by [`RESERVED`] bytes as described in the
/// module documentation.
pub fn shift(module: &[u8]) -> Result<Vec<u8>> {
    let layout = Layout::read(module)?;
    let num_funcs = layout.funcs.len() as u32;
    let num_types = layout.func_types.len() as u32;
    let realloc_type = num_types;

    // Plan the shims: one new function per preview1 import with pointers.
    let wasi_index = |name: &str| {
        layout
            .wasi_imports
            .iter()
            .find(|(_, n, _)| n == name)
            .map(|(i, _, _)| *i)
    };
    let mut shims: Vec<(u32, u32, Function)> = Vec::new(); // (import, type, body)
    for (import, name, ty) in &layout.wasi_imports {
        let ptrs = preview1_pointers(name)
            .ok_or_else(|| unsupported(format!("unknown import {WASI}::{name}")))?;
        let params = layout.params(*import);
        let pointer_params = ptrs
            .flat
            .iter()
            .copied()
            .chain(ptrs.iovs.into_iter().flat_map(|i| [i, i + 1]));
        for p in pointer_params {
            if params.get(p as usize) != Some(&wasmparser::ValType::I32) {
                return Err(unsupported(format!(
                    "{WASI}::{name} has an unexpected signature"
                )));
            }
        }
        if ptrs.flat.is_empty() && ptrs.iovs.is_none() {
            continue;
        }
        let sizes = match ptrs.writes_pointers {
            Some(sizes) => Some(
                wasi_index(sizes)
                    .ok_or_else(|| unsupported(format!("{name} is imported without {sizes}")))?,
            ),
            None => None,
        };
        shims.push((*import, *ty, shim_body(*import, params, &ptrs, sizes)));
    }
    let mut redirect = HashMap::new();
    for (k, (import, _, _)) in shims.iter().enumerate() {
        redirect.insert(*import, num_funcs + k as u32);
    }
    let realloc_index = num_funcs + shims.len() as u32;
    let mut shifter = Shifter { redirect };

    let bad = |e: wasmparser::BinaryReaderError| Error::invalid(format!("malformed module: {e}"));
    let mut out = Module::new();
    let mut code: Option<CodeSection> = None;
    let mut func_index = layout.num_imported_funcs;
    let mut saw = (false, false, false); // type, function, export sections
    for payload in Parser::new(0).parse_all(module) {
        let payload = payload.map_err(bad)?;
        // The code section ends at the first payload that is not one of its entries.
        if !matches!(payload, Payload::CodeSectionEntry(_)) {
            if let Some(mut c) = code.take() {
                for (_, _, body) in &shims {
                    c.function(body);
                }
                c.function(&realloc_body());
                out.section(&c);
            }
        }
        match payload {
            Payload::Version {
                encoding: wasmparser::Encoding::Module,
                ..
            } => {}
            Payload::Version { .. } => return Err(Error::invalid("not a core module")),
            Payload::TypeSection(s) => {
                let mut types = TypeSection::new();
                shifter
                    .parse_type_section(&mut types, s)
                    .map_err(reencode_err)?;
                types.ty().function([ValType::I32; 4], [ValType::I32]);
                out.section(&types);
                saw.0 = true;
            }
            Payload::ImportSection(s) => {
                let mut imports = ImportSection::new();
                shifter
                    .parse_import_section(&mut imports, s)
                    .map_err(reencode_err)?;
                out.section(&imports);
            }
            Payload::FunctionSection(s) => {
                let mut funcs = FunctionSection::new();
                shifter
                    .parse_function_section(&mut funcs, s)
                    .map_err(reencode_err)?;
                for (_, ty, _) in &shims {
                    funcs.function(*ty);
                }
                funcs.function(realloc_type);
                out.section(&funcs);
                saw.1 = true;
            }
            Payload::TableSection(s) => {
                let mut tables = TableSection::new();
                shifter
                    .parse_table_section(&mut tables, s)
                    .map_err(reencode_err)?;
                out.section(&tables);
            }
            Payload::MemorySection(s) => {
                let mut mems = MemorySection::new();
                for m in s {
                    let m = m.map_err(bad)?;
                    let extra = u64::from(RESERVED / PAGE);
                    if m.memory64 || m.shared || m.page_size_log2.is_some() {
                        return Err(unsupported(
                            "its memory is 64-bit, shared or has custom pages",
                        ));
                    }
                    if m.initial + extra > MAX_PAGES {
                        return Err(unsupported(format!(
                            "its memory starts at {} pages ({}), and the {extra} pages reserved for the adapter would take it past the {MAX_PAGES}-page (4 GiB) limit of a 32-bit memory",
                            m.initial,
                            wasmlayer_core::limits::format_size(m.initial.saturating_mul(u64::from(PAGE))),
                        )));
                    }
                    mems.memory(MemoryType {
                        minimum: m.initial + extra,
                        maximum: m.maximum.map(|max| (max + extra).min(MAX_PAGES)),
                        memory64: false,
                        shared: false,
                        page_size_log2: None,
                    });
                }
                out.section(&mems);
            }
            Payload::GlobalSection(s) => {
                let mut globals = GlobalSection::new();
                shifter
                    .parse_global_section(&mut globals, s)
                    .map_err(reencode_err)?;
                out.section(&globals);
            }
            Payload::ExportSection(s) => {
                let mut exports = ExportSection::new();
                for e in s {
                    let e = e.map_err(bad)?;
                    let index = match e.kind {
                        ExternalKind::Func | ExternalKind::FuncExact => {
                            shifter.function_index(e.index).map_err(reencode_err)?
                        }
                        _ => e.index,
                    };
                    exports.export(
                        e.name,
                        shifter.export_kind(e.kind).map_err(reencode_err)?,
                        index,
                    );
                }
                exports.export("cabi_realloc_adapter", ExportKind::Func, realloc_index);
                out.section(&exports);
                saw.2 = true;
            }
            Payload::StartSection { func, .. } => {
                out.section(&wasm_encoder::StartSection {
                    function_index: shifter.function_index(func).map_err(reencode_err)?,
                });
            }
            Payload::ElementSection(s) => {
                let mut elems = ElementSection::new();
                shifter
                    .parse_element_section(&mut elems, s)
                    .map_err(reencode_err)?;
                out.section(&elems);
            }
            Payload::DataCountSection { count, .. } => {
                out.section(&wasm_encoder::DataCountSection { count });
            }
            Payload::CodeSectionStart { .. } => code = Some(CodeSection::new()),
            Payload::CodeSectionEntry(body) => {
                let params = layout.params(func_index).len() as u32;
                let f = shift_body(&mut shifter, params, body)?;
                code.as_mut()
                    .expect("code section entry inside a code section")
                    .function(&f);
                func_index += 1;
            }
            Payload::DataSection(s) => {
                let mut data = DataSection::new();
                for d in s {
                    let d = d.map_err(bad)?;
                    match d.kind {
                        DataKind::Passive => {
                            data.passive(d.data.iter().copied());
                        }
                        DataKind::Active {
                            memory_index: 0,
                            offset_expr,
                        } => {
                            let mut ops = offset_expr.get_operators_reader();
                            let offset = match (ops.read().map_err(bad)?, ops.read().map_err(bad)?)
                            {
                                (Operator::I32Const { value }, Operator::End) => value,
                                _ => {
                                    return Err(unsupported(
                                        "a data segment whose offset is not a constant",
                                    ))
                                }
                            };
                            let moved = (offset as u32)
                                .checked_add(RESERVED)
                                .ok_or_else(|| unsupported("data segment offset too large"))?;
                            data.active(
                                0,
                                &ConstExpr::i32_const(moved as i32),
                                d.data.iter().copied(),
                            );
                        }
                        DataKind::Active { .. } => {
                            return Err(unsupported("a data segment for a second memory"))
                        }
                    }
                }
                out.section(&data);
            }
            Payload::CustomSection(c) => {
                // DWARF refers to code offsets, which have moved.
                if !c.name().starts_with(".debug_") {
                    out.section(&wasm_encoder::CustomSection {
                        name: c.name().into(),
                        data: c.data().into(),
                    });
                }
            }
            Payload::End(_) => {}
            Payload::TagSection(_) => return Err(unsupported("exception tags")),
            other => {
                return Err(unsupported(format!(
                    "unexpected section {:?}",
                    other.as_section().map(|(id, _)| id)
                )));
            }
        }
    }
    if saw != (true, true, true) {
        return Err(unsupported("it lacks a type, function or export section"));
    }
    let bytes = out.finish();
    wasmparser::Validator::new_with_features(wasmparser::WasmFeatures::all())
        .validate_all(&bytes)
        .map_err(|e| {
            Error::host(format!(
                "reserving adapter memory produced an invalid module: {e}"
            ))
        })?;
    Ok(bytes)
}

/// Re-encodes one function body with the memory operations moved up.
fn shift_body(shifter: &mut Shifter, params: u32, body: FunctionBody<'_>) -> Result<Function> {
    let mut locals = Vec::new();
    let mut count = params;
    for l in body
        .get_locals_reader()
        .map_err(|e| Error::invalid(format!("malformed module: {e}")))?
    {
        let (n, ty) = l.map_err(|e| Error::invalid(format!("malformed module: {e}")))?;
        count += n;
        locals.push((n, shifter.val_type(ty).map_err(reencode_err)?));
    }
    let (t0, t1) = (count, count + 1);
    locals.push((2, ValType::I32));
    let mut f = Function::new(locals);
    let mut ops = body
        .get_operators_reader()
        .map_err(|e| Error::invalid(format!("malformed module: {e}")))?;
    let shift = RESERVED as i32;
    use Instruction as I;
    while !ops.eof() {
        let op = ops
            .read()
            .map_err(|e| Error::invalid(format!("malformed module: {e}")))?;
        match op {
            Operator::MemorySize { mem: 0 } => {
                f.instruction(&I::MemorySize(0))
                    .instruction(&I::I32Const(RESERVED_PAGES))
                    .instruction(&I::I32Sub);
            }
            Operator::MemoryGrow { mem: 0 } => {
                // old == -1 ? -1 : old - reserved
                for i in [
                    I::MemoryGrow(0),
                    I::LocalTee(t0),
                    I::LocalGet(t0),
                    I::I32Const(RESERVED_PAGES),
                    I::I32Sub,
                    I::LocalGet(t0),
                    I::I32Const(-1),
                    I::I32Eq,
                    I::Select,
                ] {
                    f.instruction(&i);
                }
            }
            Operator::MemoryFill { mem: 0 } => {
                for i in [
                    I::LocalSet(t1),
                    I::LocalSet(t0),
                    I::I32Const(shift),
                    I::I32Add,
                    I::LocalGet(t0),
                    I::LocalGet(t1),
                    I::MemoryFill(0),
                ] {
                    f.instruction(&i);
                }
            }
            Operator::MemoryCopy {
                dst_mem: 0,
                src_mem: 0,
            } => {
                for i in [
                    I::LocalSet(t1),
                    I::I32Const(shift),
                    I::I32Add,
                    I::LocalSet(t0),
                    I::I32Const(shift),
                    I::I32Add,
                    I::LocalGet(t0),
                    I::LocalGet(t1),
                    I::MemoryCopy {
                        src_mem: 0,
                        dst_mem: 0,
                    },
                ] {
                    f.instruction(&i);
                }
            }
            Operator::MemoryInit { data_index, mem: 0 } => {
                for i in [
                    I::LocalSet(t1),
                    I::LocalSet(t0),
                    I::I32Const(shift),
                    I::I32Add,
                    I::LocalGet(t0),
                    I::LocalGet(t1),
                ] {
                    f.instruction(&i);
                }
                f.instruction(&I::MemoryInit { mem: 0, data_index });
            }
            Operator::MemorySize { .. }
            | Operator::MemoryGrow { .. }
            | Operator::MemoryFill { .. }
            | Operator::MemoryCopy { .. }
            | Operator::MemoryInit { .. }
            | Operator::MemoryDiscard { .. } => {
                return Err(unsupported(format!("instruction {op:?}")))
            }
            other => {
                f.instruction(&shifter.instruction(other).map_err(reencode_err)?);
            }
        }
    }
    Ok(f)
}

/// `base + i * stride`, with `base` and `i` locals.
fn element(base: u32, i: u32, stride: i32) -> [Instruction<'static>; 5] {
    use Instruction as I;
    [
        I::LocalGet(i),
        I::I32Const(stride),
        I::I32Mul,
        I::LocalGet(base),
        I::I32Add,
    ]
}

/// `for i in 0..count { body }`, with `i` and `count` locals.
fn counted_loop(f: &mut Function, i: u32, count: u32, body: &[Instruction<'_>]) {
    use Instruction as I;
    let empty = wasm_encoder::BlockType::Empty;
    for ins in [
        I::I32Const(0),
        I::LocalSet(i),
        I::Block(empty),
        I::Loop(empty),
        I::LocalGet(i),
        I::LocalGet(count),
        I::I32GeU,
        I::BrIf(1),
    ] {
        f.instruction(&ins);
    }
    for ins in body {
        f.instruction(ins);
    }
    for ins in [
        I::LocalGet(i),
        I::I32Const(1),
        I::I32Add,
        I::LocalSet(i),
        I::Br(0),
        I::End,
        I::End,
    ] {
        f.instruction(&ins);
    }
}

fn load32(offset: u32) -> Instruction<'static> {
    Instruction::I32Load(MemArg {
        offset: u64::from(offset),
        align: 2,
        memory_index: 0,
    })
}

fn store32(offset: u32) -> Instruction<'static> {
    Instruction::I32Store(MemArg {
        offset: u64::from(offset),
        align: 2,
        memory_index: 0,
    })
}

/// A shim with the import's signature: converts pointers, then calls it.
fn shim_body(
    import: u32,
    params: &[wasmparser::ValType],
    ptrs: &Pointers,
    sizes: Option<u32>,
) -> Function {
    use Instruction as I;
    let n = params.len() as u32;
    // Two extra locals: a loop index and a count; `zero` is a local holding 0
    // for addressing the scratch area by the index alone.
    let (i, count, zero) = (n, n + 1, n + 2);
    let mut f = Function::new([(3, ValType::I32)]);
    let shift = RESERVED as i32;
    if let Some(iovs) = ptrs.iovs {
        let len = iovs + 1;
        // count = min(len, IOV_MAX)
        for ins in [
            I::LocalGet(len),
            I::I32Const(IOV_MAX),
            I::LocalGet(len),
            I::I32Const(IOV_MAX),
            I::I32LtU,
            I::Select,
            I::LocalSet(count),
        ] {
            f.instruction(&ins);
        }
        let mut body = Vec::new();
        // scratch[i].buf = iovs[i].buf + shift (the module's iovs are at iovs + shift)
        body.extend(element(zero, i, 8));
        body.extend(element(iovs, i, 8));
        body.extend([
            load32(RESERVED),
            I::I32Const(shift),
            I::I32Add,
            store32(IOV_SCRATCH),
        ]);
        // scratch[i].len = iovs[i].len
        body.extend(element(zero, i, 8));
        body.extend(element(iovs, i, 8));
        body.extend([load32(RESERVED + 4), store32(IOV_SCRATCH + 4)]);
        counted_loop(&mut f, i, count, &body);
    }
    for p in 0..n {
        if Some(p) == ptrs.iovs {
            f.instruction(&I::I32Const(IOV_SCRATCH as i32));
        } else if ptrs.iovs.map(|v| v + 1) == Some(p) {
            f.instruction(&I::LocalGet(count));
        } else if ptrs.flat.contains(&p) {
            f.instruction(&I::LocalGet(p))
                .instruction(&I::I32Const(shift))
                .instruction(&I::I32Add);
        } else {
            f.instruction(&I::LocalGet(p));
        }
    }
    f.instruction(&I::Call(import));
    if let Some(sizes) = sizes {
        // The callee wrote real addresses into the pointer array at param 0;
        // convert them back to the module's addresses. Errors return as is.
        let empty = wasm_encoder::BlockType::Empty;
        for ins in [
            I::LocalTee(i),
            I::If(empty),
            I::LocalGet(i),
            I::Return,
            I::End,
            I::I32Const(SIZES as i32),
            I::I32Const(SIZES as i32 + 4),
            I::Call(sizes),
            I::LocalTee(i),
            I::If(empty),
            I::LocalGet(i),
            I::Return,
            I::End,
            I::I32Const(0),
            load32(SIZES),
            I::LocalSet(count),
        ] {
            f.instruction(&ins);
        }
        // array[i] -= shift (the module's array is at param 0 + shift)
        let mut body = Vec::new();
        body.extend(element(0, i, 4));
        body.extend(element(0, i, 4));
        body.extend([
            load32(RESERVED),
            I::I32Const(shift),
            I::I32Sub,
            store32(RESERVED),
        ]);
        counted_loop(&mut f, i, count, &body);
        f.instruction(&I::I32Const(0));
    }
    f.instruction(&I::End);
    f
}

/// `cabi_realloc_adapter(old_ptr, old_len, align, new_len) -> ptr`: a bump
/// allocator over the reserved region that only makes new allocations.
fn realloc_body() -> Function {
    use Instruction as I;
    // locals: 0 old_ptr, 1 old_len, 2 align, 3 new_len, 4 ptr, 5 end
    let mut f = Function::new([(2, ValType::I32)]);
    let at_bump = MemArg {
        offset: u64::from(BUMP_PTR),
        align: 2,
        memory_index: 0,
    };
    for ins in [
        // Only fresh allocations.
        I::LocalGet(0),
        I::If(wasm_encoder::BlockType::Empty),
        I::Unreachable,
        I::End,
        // ptr = load(BUMP_PTR) or BUMP_START
        I::I32Const(0),
        I::I32Load(at_bump),
        I::LocalTee(4),
        I::I32Eqz,
        I::If(wasm_encoder::BlockType::Empty),
        I::I32Const(BUMP_START as i32),
        I::LocalSet(4),
        I::End,
        // align = max(align, 1); ptr = (ptr + align - 1) & -align
        I::LocalGet(2),
        I::I32Eqz,
        I::If(wasm_encoder::BlockType::Empty),
        I::I32Const(1),
        I::LocalSet(2),
        I::End,
        I::LocalGet(4),
        I::LocalGet(2),
        I::I32Add,
        I::I32Const(1),
        I::I32Sub,
        I::I32Const(0),
        I::LocalGet(2),
        I::I32Sub,
        I::I32And,
        I::LocalTee(4),
        // end = ptr + new_len, which must stay inside the reserved region
        I::LocalGet(3),
        I::I32Add,
        I::LocalTee(5),
        I::I32Const(RESERVED as i32),
        I::I32GtU,
        I::LocalGet(5),
        I::LocalGet(4),
        I::I32LtU,
        I::I32Or,
        I::If(wasm_encoder::BlockType::Empty),
        I::Unreachable,
        I::End,
        I::I32Const(0),
        I::LocalGet(5),
        I::I32Store(at_bump),
        I::LocalGet(4),
        I::End,
    ] {
        f.instruction(&ins);
    }
    f
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Instantiates `wasm` with stand-ins for args_sizes_get/args_get that
    /// report two arguments, stored at real addresses.
    fn instantiate(wasm: &[u8]) -> (wasmtime::Store<()>, wasmtime::Instance) {
        let engine = wasmtime::Engine::default();
        let module = wasmtime::Module::new(&engine, wasm).unwrap();
        let mut store = wasmtime::Store::new(&engine, ());
        let mut linker = wasmtime::Linker::new(&engine);
        linker
            .func_wrap(
                WASI,
                "args_sizes_get",
                |mut c: wasmtime::Caller<'_, ()>, argc: i32, size: i32| {
                    let m = c.get_export("memory").unwrap().into_memory().unwrap();
                    m.write(&mut c, argc as usize, &2u32.to_le_bytes()).unwrap();
                    m.write(&mut c, size as usize, &4u32.to_le_bytes()).unwrap();
                    0
                },
            )
            .unwrap();
        linker
            .func_wrap(
                WASI,
                "args_get",
                |mut c: wasmtime::Caller<'_, ()>, argv: i32, buf: i32| {
                    let m = c.get_export("memory").unwrap().into_memory().unwrap();
                    m.write(&mut c, buf as usize, b"a\0b\0").unwrap();
                    m.write(&mut c, argv as usize, &(buf as u32).to_le_bytes())
                        .unwrap();
                    m.write(&mut c, argv as usize + 4, &(buf as u32 + 2).to_le_bytes())
                        .unwrap();
                    0
                },
            )
            .unwrap();
        let instance = linker.instantiate(&mut store, &module).unwrap();
        (store, instance)
    }

    fn run_i32(wasm: &[u8], func: &str) -> i32 {
        let (mut store, instance) = instantiate(wasm);
        instance
            .get_typed_func::<(), i32>(&mut store, func)
            .unwrap()
            .call(&mut store, ())
            .unwrap()
    }

    const PROGRAM: &str = r#"(module
        (import "wasi_snapshot_preview1" "args_sizes_get" (func $sizes (param i32 i32) (result i32)))
        (import "wasi_snapshot_preview1" "args_get" (func $args (param i32 i32) (result i32)))
        (memory (export "memory") 1)
        (data (i32.const 16) "\2a")
        (func (export "_start"))
        (func (export "data") (result i32) (i32.load8_u (i32.const 16)))
        (func (export "size") (result i32) (memory.size))
        (func (export "grow") (result i32) (memory.grow (i32.const 1)))
        (func (export "copy") (result i32)
            (memory.fill (i32.const 100) (i32.const 7) (i32.const 4))
            (memory.copy (i32.const 200) (i32.const 100) (i32.const 4))
            (i32.load (i32.const 200)))
        ;; argv[1] must point at "b" in the module's own addresses
        (func (export "argv") (result i32)
            (drop (call $args (i32.const 300) (i32.const 400)))
            (i32.load8_u (i32.load (i32.const 304)))))"#;

    #[test]
    fn shifted_module_behaves_the_same() {
        let original = wat::parse_str(PROGRAM).unwrap();
        let shifted = shift(&original).unwrap();
        for f in ["data", "size", "grow", "copy", "argv"] {
            assert_eq!(run_i32(&original, f), run_i32(&shifted, f), "{f}");
        }
        assert_eq!(run_i32(&shifted, "argv"), i32::from(b'b'));
        assert_eq!(run_i32(&shifted, "copy"), 0x07070707);
    }

    /// fd_write through the shim: the host sees real buffer addresses.
    #[test]
    fn io_vectors_are_translated() {
        let wat = r#"(module
            (import "wasi_snapshot_preview1" "fd_write" (func $write (param i32 i32 i32 i32) (result i32)))
            (memory (export "memory") 1)
            (data (i32.const 100) "abc")
            (data (i32.const 200) "de")
            (data (i32.const 400) "\64\00\00\00\03\00\00\00\c8\00\00\00\02\00\00\00")
            (func (export "_start"))
            (func (export "write") (result i32)
                (drop (call $write (i32.const 1) (i32.const 400) (i32.const 2) (i32.const 300)))
                (i32.load (i32.const 300))))"#;
        let shifted = shift(&wat::parse_str(wat).unwrap()).unwrap();
        let engine = wasmtime::Engine::default();
        let module = wasmtime::Module::new(&engine, &shifted).unwrap();
        let mut store = wasmtime::Store::new(&engine, Vec::<u8>::new());
        let mut linker = wasmtime::Linker::new(&engine);
        linker
            .func_wrap(
                WASI,
                "fd_write",
                |mut c: wasmtime::Caller<'_, Vec<u8>>,
                 _fd: i32,
                 iovs: i32,
                 n: i32,
                 written: i32| {
                    let m = c.get_export("memory").unwrap().into_memory().unwrap();
                    let mut out = Vec::new();
                    for k in 0..n as usize {
                        let mut iov = [0u8; 8];
                        m.read(&c, iovs as usize + 8 * k, &mut iov).unwrap();
                        let buf = u32::from_le_bytes(iov[..4].try_into().unwrap()) as usize;
                        let len = u32::from_le_bytes(iov[4..].try_into().unwrap()) as usize;
                        let mut data = vec![0; len];
                        m.read(&c, buf, &mut data).unwrap();
                        out.extend(data);
                    }
                    m.write(&mut c, written as usize, &(out.len() as u32).to_le_bytes())
                        .unwrap();
                    *c.data_mut() = out;
                    0
                },
            )
            .unwrap();
        let instance = linker.instantiate(&mut store, &module).unwrap();
        let n = instance
            .get_typed_func::<(), i32>(&mut store, "write")
            .unwrap()
            .call(&mut store, ())
            .unwrap();
        assert_eq!(store.data().as_slice(), b"abcde");
        assert_eq!(n, 5);
    }

    #[test]
    fn module_never_touches_the_reserved_region() {
        let shifted = shift(&wat::parse_str(PROGRAM).unwrap()).unwrap();
        let (mut store, instance) = instantiate(&shifted);
        let memory = instance.get_memory(&mut store, "memory").unwrap();
        assert_eq!(memory.data(&store)[RESERVED as usize + 16], 0x2a);
        let realloc = instance
            .get_typed_func::<(i32, i32, i32, i32), i32>(&mut store, "cabi_realloc_adapter")
            .unwrap();
        let a = realloc.call(&mut store, (0, 0, 8, 65536)).unwrap();
        let b = realloc.call(&mut store, (0, 0, 8, 100)).unwrap();
        assert_eq!(a as u32, BUMP_START);
        assert_eq!(b as u32, BUMP_START + 65536);
        assert!(
            realloc
                .call(&mut store, (0, 0, 8, RESERVED as i32))
                .is_err(),
            "allocating past the region traps"
        );
        assert!(memory.data(&store)[..RESERVED as usize]
            .iter()
            .skip(8)
            .all(|b| *b == 0));
    }
}
