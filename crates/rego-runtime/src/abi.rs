//! OPA's Wasm ABI (1.3): the exports hosts call and the `env` imports.
//!
//! The policy is compiled to functions linked into this module: the
//! `wasmlayer` import `plan_eval(entrypoint)` becomes the generated code,
//! which reads the input, data and constants through the `rt_*` ops. The
//! bundle (JSON: entrypoints, host-delegated builtins, base data, constants)
//! is a passive data segment the linker turns `bundle_len` / `bundle_copy`
//! into functions reading.
//!
//! Memory model: see [`crate::heap`]. Hosts save the heap pointer and reset
//! the heap to it between evaluations, so whatever lives across evaluations
//! (the parsed bundle) must lie below any pointer a host can save: every
//! export initialises first (on the first call of any of them), and nothing
//! made at initialisation is written to afterwards.

use crate::heap;
use crate::json;
use crate::value::{self, Value, V};
use alloc::boxed::Box;
use alloc::string::String;
use alloc::vec::Vec;
use core::cell::{Cell, UnsafeCell};
use core::cmp::Ordering;

#[link(wasm_import_module = "env")]
extern "C" {
    fn opa_abort(addr: *const u8);
    fn opa_println(addr: *const u8);
    fn opa_builtin0(id: i32, ctx: i32) -> i32;
    fn opa_builtin1(id: i32, ctx: i32, a: i32) -> i32;
    fn opa_builtin2(id: i32, ctx: i32, a: i32, b: i32) -> i32;
    fn opa_builtin3(id: i32, ctx: i32, a: i32, b: i32, c: i32) -> i32;
    fn opa_builtin4(id: i32, ctx: i32, a: i32, b: i32, c: i32, d: i32) -> i32;
}

// Replaced by defined functions when the policy is linked in.
#[link(wasm_import_module = "wasmlayer")]
extern "C" {
    fn bundle_len() -> i32;
    fn bundle_copy(dst: *mut u8);
    fn plan_eval(entrypoint: i32) -> i32;
}

const OPA_ERR_OK: i32 = 0;
const OPA_ERR_INVALID_TYPE: i32 = 2;
const OPA_ERR_INVALID_PATH: i32 = 3;

/// Holds the message of `fail` when the heap is exhausted.
struct FailBuf(UnsafeCell<[u8; 128]>);
// SAFETY: wasm32-unknown-unknown without threads: one thread only.
unsafe impl Sync for FailBuf {}
static FAIL_BUF: FailBuf = FailBuf(UnsafeCell::new([0; 128]));

/// Ends the evaluation with an error: the host gets `msg` through
/// `opa_abort` (and turns it into an error of its own).
pub fn fail(msg: &str) -> ! {
    let bytes = msg.as_bytes();
    let mut dst = heap::alloc(bytes.len() + 1, 1);
    let mut len = bytes.len();
    if dst.is_null() {
        // Out of memory: a truncated message in static memory.
        dst = FAIL_BUF.0.get() as *mut u8;
        len = len.min(127);
    }
    // SAFETY: `dst` holds `len + 1` bytes.
    unsafe {
        core::ptr::copy_nonoverlapping(bytes.as_ptr(), dst, len);
        *dst.add(len) = 0;
        opa_abort(dst);
    }
    core::arch::wasm32::unreachable()
}

// ---------------------------------------------------------------------------
// The prepared policy.

struct State {
    /// The bundle's constant table (`rt_const`).
    consts: Vec<V>,
    /// The data compiled into the module; host data is merged over it.
    data: V,
    /// How many entrypoints there are.
    entrypoint_count: usize,
    /// `{name: id}` of the entrypoints and of the host-delegated builtins.
    entrypoints: V,
    builtins: V,
    /// The heap top after initialisation: what lies below stays.
    floor: usize,
}

struct Global(UnsafeCell<Option<State>>);
// SAFETY: wasm32-unknown-unknown without threads: one thread only.
unsafe impl Sync for Global {}

static STATE: Global = Global(UnsafeCell::new(None));

/// A value address of the evaluation under way.
struct Slot(Cell<i32>);
// SAFETY: wasm32-unknown-unknown without threads: one thread only.
unsafe impl Sync for Slot {}

static INPUT: Slot = Slot(Cell::new(0));
static DATA: Slot = Slot(Cell::new(0));
/// Address of the context of the evaluation under way (for host builtins).
static CTX: Slot = Slot(Cell::new(0));

/// The prepared policy, set up on first use.
#[inline]
fn state() -> &'static State {
    // SAFETY: one thread; the state is written once, before any reference to
    // it is handed out, and never again.
    match unsafe { (*STATE.0.get()).as_ref() } {
        Some(st) => st,
        None => init(),
    }
}

#[cold]
#[inline(never)]
fn init() -> &'static State {
    // The host may have given fewer pages than static data and the stack
    // need: grow memory up to where the heap starts.
    let base = heap::top();
    let have = core::arch::wasm32::memory_size(0) * 65536;
    if base > have {
        let pages = (base - have).div_ceil(65536);
        if core::arch::wasm32::memory_grow(0, pages) == usize::MAX {
            fail("policy runtime: cannot grow memory");
        }
    }

    let len = unsafe { bundle_len() };
    let mut buf = alloc::vec![0u8; usize::try_from(len).unwrap_or(0)];
    unsafe { bundle_copy(buf.as_mut_ptr()) };
    let bundle = match json::parse_bundle(&buf) {
        Some(b) => b,
        None => fail("policy bundle is not valid JSON"),
    };
    // Kept: strings of the bundle's values borrow its text.
    core::mem::forget(buf);

    let list = |key: &str| -> &'static [V] {
        match value::get_str(bundle, key) {
            None => &[],
            Some(v) => match v.as_array() {
                // SAFETY: bundle values are never freed nor changed.
                Some(a) => unsafe { &*(a as *const [V]) },
                None => fail("policy bundle: a list is not an array"),
            },
        }
    };
    let names = |key: &str| -> V {
        let mut entries = Vec::new();
        for (id, e) in list(key).iter().enumerate() {
            // A name, or [name, ...].
            let name = match &**e {
                Value::String(_) => *e,
                Value::Array(a) => match a.first() {
                    Some(n) if n.as_str().is_some() => *n,
                    _ => fail("policy bundle: bad name"),
                },
                _ => fail("policy bundle: bad name"),
            };
            entries.push((name, V::int(id as i64)));
        }
        V::object(entries)
    };

    let consts = list("consts").to_vec();
    let data = match value::get_str(bundle, "data") {
        Some(d) if d.as_object().is_some() => d,
        _ => V::object(Vec::new()),
    };
    let entrypoint_count = list("entrypoints").len();
    let entrypoints = names("entrypoints");
    let builtins = names("builtins");
    let st = State {
        consts,
        data,
        entrypoint_count,
        entrypoints,
        builtins,
        floor: 0,
    };
    // SAFETY: one thread; no reference to the state exists yet.
    unsafe {
        let slot = &mut *STATE.0.get();
        *slot = Some(st);
        match slot.as_mut() {
            Some(st) => {
                st.floor = heap::top();
                st
            }
            None => core::arch::wasm32::unreachable(),
        }
    }
}

/// The constants (`rt_const`).
pub fn consts() -> &'static [V] {
    &state().consts
}

/// The input of the evaluation under way (0: none).
pub fn input() -> i32 {
    INPUT.0.get()
}

/// The data of the evaluation under way.
pub fn data() -> i32 {
    match DATA.0.get() {
        0 => state().data.addr(),
        d => d,
    }
}

pub fn set_input(v: i32) {
    INPUT.0.set(v);
}

pub fn set_data(v: i32) {
    DATA.0.set(v);
}

/// Prints a line through the host.
pub fn println(msg: &str) {
    let mut s = String::with_capacity(msg.len() + 1);
    s.push_str(msg);
    let addr = c_string(s);
    unsafe { opa_println(addr as *const u8) };
}

// Host builtins: `opa_builtinN(id, ctx, args...)`.

pub fn host0(id: i32) -> i32 {
    unsafe { opa_builtin0(id, CTX.0.get()) }
}

pub fn host1(id: i32, a: i32) -> i32 {
    unsafe { opa_builtin1(id, CTX.0.get(), a) }
}

pub fn host2(id: i32, a: i32, b: i32) -> i32 {
    unsafe { opa_builtin2(id, CTX.0.get(), a, b) }
}

pub fn host3(id: i32, a: i32, b: i32, c: i32) -> i32 {
    unsafe { opa_builtin3(id, CTX.0.get(), a, b, c) }
}

pub fn host4(id: i32, a: i32, b: i32, c: i32, d: i32) -> i32 {
    unsafe { opa_builtin4(id, CTX.0.get(), a, b, c, d) }
}

// ---------------------------------------------------------------------------
// Evaluation.

/// Evaluation context of the ABI's context API.
#[repr(C)]
struct Ctx {
    input: i32,
    data: i32,
    entrypoint: i32,
    result: i32,
}

fn new_ctx() -> *mut Ctx {
    Box::into_raw(Box::new(Ctx {
        input: 0,
        data: 0,
        entrypoint: 0,
        result: 0,
    }))
}

fn ctx_at<'a>(ctx: i32) -> &'a mut Ctx {
    if ctx == 0 {
        fail("null evaluation context");
    }
    // SAFETY: contexts come from opa_eval_ctx_new.
    unsafe { &mut *(ctx as *mut Ctx) }
}

/// `over` deep-merged over `base` (neither changes); `over` wins where
/// both hold a value that is not an object.
fn merge(base: V, over: V) -> V {
    let (Some(b), Some(o)) = (base.as_object(), over.as_object()) else {
        return over;
    };
    if b.is_empty() {
        return over;
    }
    if o.is_empty() {
        return base;
    }
    let mut out = Vec::with_capacity(b.len() + o.len());
    let (mut i, mut j) = (0, 0);
    loop {
        match (b.get(i), o.get(j)) {
            (Some(x), Some(y)) => match value::compare(x.0, y.0) {
                Ordering::Less => {
                    out.push(*x);
                    i += 1;
                }
                Ordering::Greater => {
                    out.push(*y);
                    j += 1;
                }
                Ordering::Equal => {
                    out.push((y.0, merge(x.1, y.1)));
                    i += 1;
                    j += 1;
                }
            },
            (Some(x), None) => {
                out.push(*x);
                i += 1;
            }
            (None, Some(y)) => {
                out.push(*y);
                j += 1;
            }
            (None, None) => break,
        }
    }
    V::new(Value::Object(out))
}

/// The data an evaluation sees: the host's (0 / null / object) over the base.
fn merged_data(st: &State, host: i32) -> V {
    // SAFETY: hosts pass 0 or addresses of values.
    match unsafe { V::from_addr(host) } {
        None => st.data,
        Some(d) => match &*d {
            Value::Null => st.data,
            Value::Object(_) => merge(st.data, d),
            _ => fail("data must be an object"),
        },
    }
}

/// The value of entrypoint `id` (0: undefined).
fn evaluate(st: &State, id: i32, input: i32, data: i32, ctx: i32) -> i32 {
    if usize::try_from(id).map_or(true, |i| i >= st.entrypoint_count) {
        let mut msg = alloc::string::String::from("unknown entrypoint id ");
        crate::json::write_i64(i64::from(id), &mut msg);
        fail(&msg);
    }
    let data = merged_data(st, data);
    INPUT.0.set(input);
    DATA.0.set(data.addr());
    CTX.0.set(ctx);
    let v = unsafe { plan_eval(id) };
    INPUT.0.set(0);
    DATA.0.set(0);
    CTX.0.set(0);
    v
}

/// `[{"result": v}]`, or `[]` when `v` is undefined (0).
fn result_set(v: i32) -> V {
    // SAFETY: the generated code returns 0 or addresses of values.
    let rows = match unsafe { V::from_addr(v) } {
        None => Vec::new(),
        Some(v) => alloc::vec![V::object(alloc::vec![(V::string("result"), v)])],
    };
    V::array(rows)
}

// ---------------------------------------------------------------------------
// Strings and values in linear memory.

/// Hands `s` to the host NUL-terminated; returns its address.
fn c_string(mut s: String) -> i32 {
    s.push('\0');
    let addr = s.as_ptr() as i32;
    core::mem::forget(s);
    addr
}

fn bytes_at<'a>(addr: i32, len: i32) -> &'a [u8] {
    if len <= 0 || addr == 0 {
        return &[];
    }
    // SAFETY: the host wrote `len` bytes at `addr` in linear memory.
    unsafe { core::slice::from_raw_parts(addr as u32 as usize as *const u8, len as usize) }
}

/// A value address a host passed; None for 0.
fn value_at(addr: i32) -> Option<V> {
    // SAFETY: hosts pass 0 or addresses of values.
    unsafe { V::from_addr(addr) }
}

/// Room a written value starts with: most results fit, and a larger one
/// grows in place (it is on top of the heap).
const DUMP_START: usize = 256;

fn dump_json(v: i32) -> i32 {
    let mut s = String::with_capacity(DUMP_START);
    match value_at(v) {
        Some(v) => json::dump(v, &mut s),
        None => s.push_str("null"),
    }
    c_string(s)
}

fn dump_rego(v: i32) -> i32 {
    let mut s = String::with_capacity(DUMP_START);
    match value_at(v) {
        Some(v) => json::dump_rego(v, &mut s),
        None => s.push_str("null"),
    }
    c_string(s)
}

/// The keys of an `opa_value_*_path` path (a non-empty array).
fn path_keys(path: i32) -> Option<&'static [V]> {
    let p = value_at(path)?;
    let keys = p.as_array()?;
    if keys.is_empty() {
        return None;
    }
    // SAFETY: values on the heap live until the host resets it.
    Some(unsafe { &*(keys as *const [V]) })
}

/// `v`, or a copy of it when it was made at initialisation (which must not
/// change).
fn writable(st: &State, v: V) -> V {
    if (v.addr() as u32 as usize) < st.floor {
        if let Some(o) = v.as_object() {
            return V::new(Value::Object(o.to_vec()));
        }
    }
    v
}

/// The object at `keys` under `base`, made (as empty objects) on the way;
/// Err with the ABI's error code when a value on the way is no object.
fn descend(st: &State, base: V, keys: &[V], create: bool) -> Result<Option<V>, i32> {
    let mut cur = base;
    for key in keys {
        // SAFETY: the host's values may change (as the ABI has it); values
        // made at initialisation are copied first (`writable`).
        let Value::Object(o) = (unsafe { cur.get_mut() }) else {
            return Err(OPA_ERR_INVALID_TYPE);
        };
        cur = match value::object_find(o, *key) {
            Ok(i) => match o.get_mut(i) {
                Some(e) => {
                    e.1 = writable(st, e.1);
                    e.1
                }
                None => return Err(OPA_ERR_INVALID_PATH),
            },
            Err(_) if !create => return Ok(None),
            Err(i) => {
                let new = V::object(Vec::new());
                o.insert(i, (*key, new));
                new
            }
        };
    }
    if cur.as_object().is_none() {
        return Err(OPA_ERR_INVALID_TYPE);
    }
    Ok(Some(cur))
}

// ---------------------------------------------------------------------------
// Exports: OPA's Wasm ABI.

#[export_name = "builtins"]
pub extern "C" fn builtins() -> i32 {
    state().builtins.addr()
}

#[export_name = "entrypoints"]
pub extern "C" fn entrypoints() -> i32 {
    state().entrypoints.addr()
}

#[export_name = "opa_malloc"]
pub extern "C" fn opa_malloc(size: i32) -> i32 {
    state();
    let p = heap::alloc(size.max(0) as usize, 8);
    if p.is_null() {
        fail("opa_malloc: out of memory");
    }
    p as i32
}

#[export_name = "opa_free"]
pub extern "C" fn opa_free(_addr: i32) {
    state();
}

#[export_name = "opa_heap_ptr_get"]
pub extern "C" fn opa_heap_ptr_get() -> i32 {
    state();
    heap::top() as i32
}

#[export_name = "opa_heap_ptr_set"]
pub extern "C" fn opa_heap_ptr_set(addr: i32) {
    let st = state();
    heap::set_top((addr as u32 as usize).max(st.floor));
}

#[export_name = "opa_json_parse"]
pub extern "C" fn opa_json_parse(addr: i32, len: i32) -> i32 {
    state();
    value::addr_of(json::parse(bytes_at(addr, len)))
}

#[export_name = "opa_value_parse"]
pub extern "C" fn opa_value_parse(addr: i32, len: i32) -> i32 {
    state();
    value::addr_of(json::parse_rego(bytes_at(addr, len)))
}

#[export_name = "opa_json_dump"]
pub extern "C" fn opa_json_dump(v: i32) -> i32 {
    state();
    dump_json(v)
}

#[export_name = "opa_value_dump"]
pub extern "C" fn opa_value_dump(v: i32) -> i32 {
    state();
    dump_rego(v)
}

#[export_name = "opa_value_add_path"]
pub extern "C" fn opa_value_add_path(base: i32, path: i32, value: i32) -> i32 {
    let st = state();
    let (Some(base), Some(keys)) = (value_at(base), path_keys(path)) else {
        return OPA_ERR_INVALID_PATH;
    };
    if base.as_object().is_none() || (base.addr() as u32 as usize) < st.floor {
        return OPA_ERR_INVALID_TYPE;
    }
    let v = value_at(value).unwrap_or_else(V::null);
    let Some((last, parents)) = keys.split_last() else {
        return OPA_ERR_INVALID_PATH;
    };
    match descend(st, base, parents, true) {
        Ok(Some(obj)) => {
            // SAFETY: as in `descend`.
            unsafe { value::object_set(obj, *last, v) };
            OPA_ERR_OK
        }
        Ok(None) => OPA_ERR_OK,
        Err(code) => code,
    }
}

#[export_name = "opa_value_remove_path"]
pub extern "C" fn opa_value_remove_path(base: i32, path: i32) -> i32 {
    let st = state();
    let (Some(base), Some(keys)) = (value_at(base), path_keys(path)) else {
        return OPA_ERR_INVALID_PATH;
    };
    if base.as_object().is_none() || (base.addr() as u32 as usize) < st.floor {
        return OPA_ERR_INVALID_TYPE;
    }
    let Some((last, parents)) = keys.split_last() else {
        return OPA_ERR_INVALID_PATH;
    };
    match descend(st, base, parents, false) {
        Ok(Some(obj)) => {
            // SAFETY: as in `descend`.
            if let Value::Object(o) = unsafe { obj.get_mut() } {
                if let Ok(i) = value::object_find(o, *last) {
                    o.remove(i);
                }
            }
            OPA_ERR_OK
        }
        Ok(None) => OPA_ERR_OK,
        Err(code) => code,
    }
}

#[export_name = "opa_eval_ctx_new"]
pub extern "C" fn opa_eval_ctx_new() -> i32 {
    state();
    new_ctx() as i32
}

#[export_name = "opa_eval_ctx_set_input"]
pub extern "C" fn opa_eval_ctx_set_input(ctx: i32, v: i32) {
    state();
    ctx_at(ctx).input = v;
}

#[export_name = "opa_eval_ctx_set_data"]
pub extern "C" fn opa_eval_ctx_set_data(ctx: i32, v: i32) {
    state();
    ctx_at(ctx).data = v;
}

#[export_name = "opa_eval_ctx_set_entrypoint"]
pub extern "C" fn opa_eval_ctx_set_entrypoint(ctx: i32, id: i32) {
    state();
    ctx_at(ctx).entrypoint = id;
}

#[export_name = "opa_eval_ctx_get_result"]
pub extern "C" fn opa_eval_ctx_get_result(ctx: i32) -> i32 {
    state();
    ctx_at(ctx).result
}

#[export_name = "eval"]
pub extern "C" fn eval(ctx: i32) -> i32 {
    let st = state();
    let c = ctx_at(ctx);
    let v = evaluate(st, c.entrypoint, c.input, c.data, ctx);
    c.result = result_set(v).addr();
    OPA_ERR_OK
}

/// ABI 1.2's one-call evaluation: input is JSON text at `input_addr`, the
/// heap restarts at `heap_ptr`, and the result set comes back as text
/// (format 0: JSON, 1: Rego value text).
#[export_name = "opa_eval"]
pub extern "C" fn opa_eval(
    _reserved: i32,
    entrypoint: i32,
    data: i32,
    input_addr: i32,
    input_len: i32,
    heap_ptr: i32,
    format: i32,
) -> i32 {
    let st = state();
    let mut top = (heap_ptr as u32 as usize).max(st.floor);
    if input_len > 0 && input_addr as u32 as usize >= st.floor {
        // The input's text stays untouched while the evaluation allocates:
        // values parsed from it borrow its strings.
        top = top.max(input_addr as u32 as usize + input_len as u32 as usize);
    }
    heap::set_top(top);
    let input = if input_len > 0 {
        // Lazily: the input lives for this evaluation only.
        match json::parse_lazy(bytes_at(input_addr, input_len)) {
            Some(v) => v.addr(),
            None => fail("input is not valid JSON"),
        }
    } else {
        0
    };
    let ctx = new_ctx();
    // SAFETY: just made.
    unsafe {
        (*ctx).input = input;
        (*ctx).data = data;
        (*ctx).entrypoint = entrypoint;
    }
    let v = evaluate(st, entrypoint, input, data, ctx as i32);
    let rs = result_set(v);
    unsafe { (*ctx).result = rs.addr() };
    match format {
        1 => dump_rego(rs.addr()),
        _ => dump_json(rs.addr()),
    }
}
