//! The Rego runtime of Wasmlayer policy modules: the regorus interpreter
//! behind OPA's Wasm ABI (version 1.3), for wasm32-unknown-unknown.
//!
//! The policy is not compiled in. `wasmlayer policy build` appends a bundle
//! (JSON: Rego modules, data, entrypoints, and the builtins the policy calls
//! that a host could provide) to this module as a passive data segment and
//! turns the two `wasmlayer` imports below into functions that copy it out.
//! On the first call of any export the runtime reads the bundle, loads the
//! policy into an engine and prepares it. Builtins the policy calls that are
//! not compiled in here are delegated to the host (`opa_builtinN`).
//!
//! Memory model: see [`heap`]. Hosts reset the heap to a saved pointer between
//! evaluations, so the prepared engine must lie below any pointer a host can
//! save: every export initialises first, and each evaluation works on a clone
//! of the prepared engine, never writing to what was set up at initialisation.
//! The stack (1 MiB, see `.cargo/config.toml`) lies below static data.
//!
//! Values handed to hosts are addresses of `regorus::Value`s on the heap;
//! hosts only pass them back or have them dumped as text.

mod heap;
mod text;

use core::cell::UnsafeCell;
use regorus::{Engine, Value};

#[global_allocator]
static ALLOC: heap::Bump = heap::Bump;

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
}

const OPA_ERR_OK: i32 = 0;
const OPA_ERR_INVALID_TYPE: i32 = 2;
const OPA_ERR_INVALID_PATH: i32 = 3;

// ---------------------------------------------------------------------------
// Strings and values in linear memory.

/// Copies `s` onto the heap with a terminating NUL; returns its address.
fn c_string(s: &str) -> i32 {
    let mut bytes = Vec::with_capacity(s.len() + 1);
    bytes.extend_from_slice(s.as_bytes());
    bytes.push(0);
    let addr = bytes.as_ptr() as i32;
    core::mem::forget(bytes);
    addr
}

/// Hands a value to the host: its address on the heap.
fn boxed(v: Value) -> i32 {
    Box::into_raw(Box::new(v)) as i32
}

/// The value at an address a host passed back; `None` for 0.
///
/// # Safety
/// `addr` is 0 or came from [`boxed`].
unsafe fn value_at<'a>(addr: i32) -> Option<&'a mut Value> {
    if addr == 0 {
        None
    } else {
        Some(unsafe { &mut *(addr as *mut Value) })
    }
}

/// Reports a fatal error to the host (which turns it into an error of its
/// own) and stops.
fn abort(msg: &str) -> ! {
    let addr = c_string(msg);
    unsafe { opa_abort(addr as *const u8) };
    core::arch::wasm32::unreachable()
}

// ---------------------------------------------------------------------------
// The prepared policy.

struct Entrypoint {
    /// Its ABI name, e.g. `example/allow`.
    name: String,
    /// Its data path, e.g. `data.example.allow`.
    path: String,
    /// A rule (evaluated with `eval_rule`), or a package or other prefix
    /// (evaluated as a query).
    rule: bool,
    /// A rule compiled on its own: evaluating it builds a fresh, small
    /// interpreter instead of cloning the whole engine, and leaves the
    /// prepared state untouched. None for packages, and when the policy
    /// prints (a compiled rule does not gather `print` output).
    compiled: Option<regorus::CompiledPolicy>,
}

struct State {
    engine: Engine,
    /// Names of the Rego files.
    files: Vec<String>,
    /// The data compiled into the module; host data is merged over it.
    data: Value,
    entrypoints: Vec<Entrypoint>,
    builtins_addr: i32,
    entrypoints_addr: i32,
}

struct Global(UnsafeCell<Option<State>>);
// SAFETY: wasm32-unknown-unknown without threads: one thread only.
unsafe impl Sync for Global {}

static STATE: Global = Global(UnsafeCell::new(None));

/// The prepared policy, set up on first use.
fn state() -> &'static State {
    // SAFETY: one thread; the state is written once, before any reference to
    // it is handed out, and never again.
    unsafe {
        if (*STATE.0.get()).is_none() {
            let st = init();
            *STATE.0.get() = Some(st);
        }
        (*STATE.0.get())
            .as_ref()
            .unwrap_or_else(|| abort("policy state missing"))
    }
}

fn init() -> State {
    std::panic::set_hook(Box::new(|info| abort(&format!("policy runtime: {info}"))));

    let len = unsafe { bundle_len() } as usize;
    let mut buf = vec![0u8; len];
    unsafe { bundle_copy(buf.as_mut_ptr()) };
    let bundle = text::parse_json(&buf).unwrap_or_else(|| abort("policy bundle is not valid JSON"));
    drop(buf);

    let mut engine = Engine::new();
    engine.set_gather_prints(true);
    // Rego v0 when the policy was built with `--v0-compatible`.
    engine.set_rego_v0(matches!(bundle["rego_v0"], Value::Bool(true)));
    let list = |key: &str| -> Vec<Value> {
        match &bundle[key] {
            Value::Array(a) => a.iter().cloned().collect(),
            Value::Undefined => Vec::new(),
            _ => abort(&format!("policy bundle: `{key}` is not an array")),
        }
    };
    let string = |v: &Value| -> String {
        v.as_string()
            .map(|s| s.to_string())
            .unwrap_or_else(|_| abort("policy bundle: expected a string"))
    };

    let mut files = Vec::new();
    for m in list("modules") {
        let (name, rego) = (string(&m[0]), string(&m[1]));
        files.push(name.clone());
        if let Err(e) = engine.add_policy(name, rego) {
            abort(&format!("{e}"));
        }
    }
    let data = match &bundle["data"] {
        v @ Value::Object(_) => v.clone(),
        _ => Value::new_object(),
    };
    if let Err(e) = engine.add_data(data.clone()) {
        abort(&format!("policy data: {e}"));
    }

    // The bundle lists the builtins the policy calls that a host could
    // provide; those not compiled in here are delegated to the host, and
    // numbered in bundle order. (regorus consults extensions before its own
    // builtins, so compiled-in ones must not become extensions.)
    let mut builtins = Value::new_object();
    let mut id = 0i32;
    for b in list("builtins") {
        let name = string(&b[0]);
        if regorus::unstable::BUILTINS.contains_key(name.as_str()) {
            continue;
        }
        let nargs = b[1]
            .as_u8()
            .unwrap_or_else(|_| abort("policy bundle: bad builtin arity"));
        if let Err(e) = engine.add_extension(name.clone(), nargs, Box::new(delegate(id))) {
            abort(&format!("builtin {name}: {e}"));
        }
        builtins
            .as_object_mut()
            .unwrap_or_else(|_| abort("builtins"))
            .insert(Value::from(name), Value::from(id as u64));
        id += 1;
    }

    let mut entrypoints = Vec::new();
    let mut names = Value::new_object();
    for (id, e) in list("entrypoints").into_iter().enumerate() {
        let ep = Entrypoint {
            name: string(&e[0]),
            path: string(&e[1]),
            rule: e[2] == Value::Bool(true),
            compiled: None,
        };
        names
            .as_object_mut()
            .unwrap_or_else(|_| abort("entrypoints"))
            .insert(Value::from(ep.name.as_str()), Value::from(id as u64));
        entrypoints.push(ep);
    }

    // Prepare the engine (rule analysis) and initialise the interpreter's
    // lazily built tables now, below every heap pointer a host can save.
    if let Err(e) = engine.eval_query("count([1]) == 1".to_string(), false) {
        abort(&format!("{e}"));
    }
    let prints = list("modules").iter().any(|m| calls_print(&string(&m[1])));
    if !prints {
        for ep in entrypoints.iter_mut().filter(|ep| ep.rule) {
            ep.compiled = engine
                .compile_with_entrypoint(&ep.path.as_str().into())
                .ok();
        }
    }

    State {
        engine,
        files,
        data,
        entrypoints,
        builtins_addr: boxed(builtins),
        entrypoints_addr: boxed(names),
    }
}

/// Whether Rego text calls `print` (and not merely `sprintf`).
fn calls_print(text: &str) -> bool {
    text.match_indices("print(").any(|(i, _)| {
        !text[..i]
            .chars()
            .next_back()
            .is_some_and(|c| c.is_alphanumeric() || c == '_' || c == '.')
    })
}

/// Evaluation context of the ABI's context API.
#[repr(C)]
struct Ctx {
    input: i32,
    data: i32,
    entrypoint: i32,
    result: i32,
}

/// Address of the context of the evaluation under way (passed to builtins).
struct CurrentCtx(core::cell::Cell<i32>);
unsafe impl Sync for CurrentCtx {}
static CURRENT_CTX: CurrentCtx = CurrentCtx(core::cell::Cell::new(0));

/// A builtin the host implements: `opa_builtinN` with the arguments as values.
fn delegate(
    id: i32,
) -> impl FnMut(Vec<Value>) -> anyhow::Result<Value> + Clone + Send + Sync + 'static {
    move |args: Vec<Value>| {
        let a: Vec<i32> = args.into_iter().map(boxed).collect();
        let ctx = CURRENT_CTX.0.get();
        let r = unsafe {
            match a[..] {
                [] => opa_builtin0(id, ctx),
                [x] => opa_builtin1(id, ctx, x),
                [x, y] => opa_builtin2(id, ctx, x, y),
                [x, y, z] => opa_builtin3(id, ctx, x, y, z),
                [x, y, z, w] => opa_builtin4(id, ctx, x, y, z, w),
                _ => anyhow::bail!("a host builtin takes at most 4 arguments"),
            }
        };
        Ok(unsafe { value_at(r) }
            .map(|v| v.clone())
            .unwrap_or(Value::Undefined))
    }
}

/// Deep-merges `over` into `base`; `over` wins where both hold a value.
fn merge(base: &mut Value, over: &Value) {
    match (base, over) {
        (Value::Object(b), Value::Object(o)) => {
            let b = regorus::Rc::make_mut(b);
            for (k, v) in o.iter() {
                match b.get_mut(k) {
                    Some(bv) => merge(bv, v),
                    None => {
                        b.insert(k.clone(), v.clone());
                    }
                }
            }
        }
        (b, o) => *b = o.clone(),
    }
}

/// Evaluates entrypoint `id`: a compiled rule directly, anything else on a
/// clone of the prepared engine.
fn evaluate(st: &State, id: i32, data: Option<&Value>, input: Value) -> Value {
    let ep = usize::try_from(id)
        .ok()
        .and_then(|i| st.entrypoints.get(i))
        .unwrap_or_else(|| abort(&format!("unknown entrypoint id {id}")));
    let no_host_data = match data {
        None | Some(Value::Null) | Some(Value::Undefined) => true,
        Some(Value::Object(o)) => o.is_empty(),
        Some(_) => false,
    };
    if let (Some(compiled), true) = (&ep.compiled, no_host_data) {
        return compiled
            .eval_with_input(input)
            .unwrap_or_else(|e| abort(&format!("{}: {}", ep.name, e.to_string().trim_start())));
    }
    let mut engine = st.engine.clone();
    match data {
        None | Some(Value::Null) | Some(Value::Undefined) => {}
        Some(Value::Object(o)) if o.is_empty() => {}
        Some(d @ Value::Object(_)) => {
            let mut merged = st.data.clone();
            merge(&mut merged, d);
            engine.clear_data();
            if let Err(e) = engine.add_data(merged) {
                abort(&format!("data: {e}"));
            }
        }
        Some(_) => abort("data must be an object"),
    }
    engine.set_input(input);
    let result = if ep.rule {
        engine.eval_rule(ep.path.clone())
    } else {
        engine.eval_query(ep.path.clone(), false).map(|r| {
            r.result
                .into_iter()
                .next()
                .and_then(|r| r.expressions.into_iter().next())
                .map(|e| e.value)
                .unwrap_or(Value::Undefined)
        })
    };
    if let Ok(prints) = engine.take_prints() {
        for p in prints {
            let addr = c_string(print_message(st, &p));
            unsafe { opa_println(addr as *const u8) };
        }
    }
    result.unwrap_or_else(|e| abort(&format!("{}: {}", ep.name, e.to_string().trim_start())))
}

/// What a Rego `print` printed, without the `file:line: ` regorus puts
/// first (OPA passes hosts the message alone).
fn print_message<'a>(st: &State, line: &'a str) -> &'a str {
    for file in &st.files {
        let Some(rest) = line
            .strip_prefix(file.as_str())
            .and_then(|r| r.strip_prefix(':'))
        else {
            continue;
        };
        let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
        if let Some(msg) = rest[digits..].strip_prefix(": ") {
            if digits > 0 {
                return msg;
            }
        }
    }
    line
}

/// `[{"result": v}]`, or `[]` when `v` is undefined.
fn result_set(v: Value) -> Value {
    let mut set = Value::new_array();
    if v != Value::Undefined {
        let mut row = Value::new_object();
        if let Ok(o) = row.as_object_mut() {
            o.insert(Value::from("result"), v);
        }
        if let Ok(a) = set.as_array_mut() {
            a.push(row);
        }
    }
    set
}

// ---------------------------------------------------------------------------
// Exports: OPA's Wasm ABI.

#[no_mangle]
pub extern "C" fn builtins() -> i32 {
    state().builtins_addr
}

#[no_mangle]
pub extern "C" fn entrypoints() -> i32 {
    state().entrypoints_addr
}

#[no_mangle]
pub extern "C" fn opa_malloc(size: i32) -> i32 {
    state();
    let p = heap::alloc(size.max(0) as usize, 8);
    if p.is_null() {
        abort("opa_malloc: out of memory");
    }
    p as i32
}

#[no_mangle]
pub extern "C" fn opa_free(_addr: i32) {
    state();
}

#[no_mangle]
pub extern "C" fn opa_heap_ptr_get() -> i32 {
    state();
    heap::top() as i32
}

#[no_mangle]
pub extern "C" fn opa_heap_ptr_set(addr: i32) {
    state();
    heap::set_top(addr as u32 as usize);
}

fn bytes_at<'a>(addr: i32, len: i32) -> &'a [u8] {
    if len <= 0 {
        return &[];
    }
    // SAFETY: the host wrote `len` bytes at `addr` in linear memory.
    unsafe { core::slice::from_raw_parts(addr as *const u8, len as usize) }
}

#[no_mangle]
pub extern "C" fn opa_json_parse(addr: i32, len: i32) -> i32 {
    state();
    text::parse_json(bytes_at(addr, len)).map_or(0, boxed)
}

#[no_mangle]
pub extern "C" fn opa_value_parse(addr: i32, len: i32) -> i32 {
    state();
    text::parse_rego(bytes_at(addr, len)).map_or(0, boxed)
}

#[no_mangle]
pub extern "C" fn opa_json_dump(v: i32) -> i32 {
    state();
    match unsafe { value_at(v) } {
        Some(v) => c_string(&text::json(v)),
        None => c_string("null"),
    }
}

#[no_mangle]
pub extern "C" fn opa_value_dump(v: i32) -> i32 {
    state();
    match unsafe { value_at(v) } {
        Some(v) => c_string(&text::rego(v)),
        None => c_string("null"),
    }
}

/// The path argument of the `opa_value_*_path` functions: an array of keys.
fn path_keys(path: i32) -> Option<Vec<Value>> {
    match unsafe { value_at(path) }? {
        Value::Array(a) if !a.is_empty() => Some(a.iter().cloned().collect()),
        _ => None,
    }
}

fn add_path(base: &mut Value, path: &[Value], v: Value) -> i32 {
    let Ok(obj) = base.as_object_mut() else {
        return OPA_ERR_INVALID_TYPE;
    };
    match path {
        [last] => {
            obj.insert(last.clone(), v);
            OPA_ERR_OK
        }
        [first, rest @ ..] => {
            let next = obj.get_or_insert_with(first.clone(), Value::new_object);
            add_path(next, rest, v)
        }
        [] => OPA_ERR_INVALID_PATH,
    }
}

fn remove_path(base: &mut Value, path: &[Value]) -> i32 {
    let Ok(obj) = base.as_object_mut() else {
        return OPA_ERR_INVALID_TYPE;
    };
    match path {
        [last] => {
            obj.remove(last);
            OPA_ERR_OK
        }
        [first, rest @ ..] => match obj.get_mut(first) {
            Some(next) => remove_path(next, rest),
            None => OPA_ERR_OK,
        },
        [] => OPA_ERR_INVALID_PATH,
    }
}

#[no_mangle]
pub extern "C" fn opa_value_add_path(base: i32, path: i32, value: i32) -> i32 {
    state();
    let (Some(base), Some(keys)) = (unsafe { value_at(base) }, path_keys(path)) else {
        return OPA_ERR_INVALID_PATH;
    };
    let v = unsafe { value_at(value) }
        .map(|v| v.clone())
        .unwrap_or(Value::Null);
    add_path(base, &keys, v)
}

#[no_mangle]
pub extern "C" fn opa_value_remove_path(base: i32, path: i32) -> i32 {
    state();
    let (Some(base), Some(keys)) = (unsafe { value_at(base) }, path_keys(path)) else {
        return OPA_ERR_INVALID_PATH;
    };
    remove_path(base, &keys)
}

#[no_mangle]
pub extern "C" fn opa_eval_ctx_new() -> i32 {
    state();
    Box::into_raw(Box::new(Ctx {
        input: 0,
        data: 0,
        entrypoint: 0,
        result: 0,
    })) as i32
}

fn ctx_at<'a>(ctx: i32) -> &'a mut Ctx {
    if ctx == 0 {
        abort("null evaluation context");
    }
    // SAFETY: contexts come from opa_eval_ctx_new.
    unsafe { &mut *(ctx as *mut Ctx) }
}

#[no_mangle]
pub extern "C" fn opa_eval_ctx_set_input(ctx: i32, v: i32) {
    state();
    ctx_at(ctx).input = v;
}

#[no_mangle]
pub extern "C" fn opa_eval_ctx_set_data(ctx: i32, v: i32) {
    state();
    ctx_at(ctx).data = v;
}

#[no_mangle]
pub extern "C" fn opa_eval_ctx_set_entrypoint(ctx: i32, id: i32) {
    state();
    ctx_at(ctx).entrypoint = id;
}

#[no_mangle]
pub extern "C" fn opa_eval_ctx_get_result(ctx: i32) -> i32 {
    state();
    ctx_at(ctx).result
}

#[no_mangle]
pub extern "C" fn eval(ctx: i32) -> i32 {
    let st = state();
    let c = ctx_at(ctx);
    let input = unsafe { value_at(c.input) }
        .map(|v| v.clone())
        .unwrap_or(Value::Undefined);
    let data = unsafe { value_at(c.data) }.map(|v| &*v);
    CURRENT_CTX.0.set(ctx);
    let v = evaluate(st, c.entrypoint, data, input);
    CURRENT_CTX.0.set(0);
    c.result = boxed(result_set(v));
    OPA_ERR_OK
}

/// ABI 1.2's one-call evaluation: input is JSON text at `input_addr`, the
/// heap restarts at `heap_ptr`, and the result set comes back as text
/// (format 0: JSON, 1: Rego value text).
#[no_mangle]
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
    heap::set_top(heap_ptr as u32 as usize);
    let input = if input_len > 0 {
        text::parse_json(bytes_at(input_addr, input_len))
            .unwrap_or_else(|| abort("input is not valid JSON"))
    } else {
        Value::Undefined
    };
    let data = unsafe { value_at(data) }.map(|v| &*v);
    let v = result_set(evaluate(st, entrypoint, data, input));
    match format {
        1 => c_string(&text::rego(&v)),
        _ => c_string(&text::json(&v)),
    }
}
