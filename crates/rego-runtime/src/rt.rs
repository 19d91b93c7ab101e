//! The operations the generated code calls: `rt_*` exports, each its own
//! function so that linking keeps only those a policy reaches.
//!
//! Values are i32 addresses (see [`crate::value::V`]); 0 is "undefined".
//! Arguments documented as values are never 0 (the generated code checks
//! first); a 0 there fails the evaluation rather than crashing.

use crate::abi::{self, fail};
use crate::json;
use crate::value::{self, addr_of, Value, V};
use alloc::string::String;
use alloc::vec::Vec;
use core::cmp::Ordering;

/// The value at `addr`, which must not be undefined.
#[inline]
fn val(addr: i32) -> V {
    // SAFETY: the generated code passes 0 or addresses of values.
    match unsafe { V::from_addr(addr) } {
        Some(v) => v,
        None => fail("policy runtime: undefined value where one is required"),
    }
}

/// The value at `addr`, or None for 0.
#[inline]
fn opt(addr: i32) -> Option<V> {
    // SAFETY: as in `val`.
    unsafe { V::from_addr(addr) }
}

fn index(i: i32) -> usize {
    usize::try_from(i).unwrap_or(usize::MAX)
}

#[export_name = "rt_const"]
pub extern "C" fn rt_const(i: i32) -> i32 {
    match abi::consts().get(index(i)) {
        Some(v) => v.addr(),
        None => fail("policy runtime: constant index out of range"),
    }
}

#[export_name = "rt_input"]
pub extern "C" fn rt_input() -> i32 {
    abi::input()
}

#[export_name = "rt_data"]
pub extern "C" fn rt_data() -> i32 {
    abi::data()
}

#[export_name = "rt_set_input"]
pub extern "C" fn rt_set_input(v: i32) {
    abi::set_input(v);
}

#[export_name = "rt_set_data"]
pub extern "C" fn rt_set_data(v: i32) {
    abi::set_data(v);
}

#[export_name = "rt_array_new"]
pub extern "C" fn rt_array_new() -> i32 {
    V::array(Vec::new()).addr()
}

#[export_name = "rt_array_push"]
pub extern "C" fn rt_array_push(a: i32, v: i32) {
    let (a, v) = (val(a), val(v));
    // SAFETY: the generated code only pushes to arrays it is building.
    if let Value::Array(items) = unsafe { a.get_mut() } {
        items.push(v);
    }
}

#[export_name = "rt_set_new"]
pub extern "C" fn rt_set_new() -> i32 {
    V::set(Vec::new()).addr()
}

#[export_name = "rt_set_add"]
pub extern "C" fn rt_set_add(s: i32, v: i32) {
    let (s, v) = (val(s), val(v));
    // SAFETY: the generated code only adds to sets it is building.
    unsafe { value::set_insert(s, v) };
}

#[export_name = "rt_object_new"]
pub extern "C" fn rt_object_new() -> i32 {
    V::object(Vec::new()).addr()
}

#[export_name = "rt_object_insert"]
pub extern "C" fn rt_object_insert(o: i32, k: i32, v: i32) -> i32 {
    let (o, k, v) = (val(o), val(k), val(v));
    // SAFETY: the generated code only inserts into objects it is building.
    unsafe { value::object_insert(o, k, v) as i32 }
}

#[export_name = "rt_get"]
pub extern "C" fn rt_get(coll: i32, key: i32) -> i32 {
    match (opt(coll), opt(key)) {
        (Some(c), Some(k)) => addr_of(value::get(c, k)),
        _ => 0,
    }
}

#[export_name = "rt_len"]
pub extern "C" fn rt_len(v: i32) -> i32 {
    match &*val(v) {
        Value::Array(a) | Value::Set(a) => a.len() as i32,
        Value::Object(o) => o.len() as i32,
        _ => -1,
    }
}

#[export_name = "rt_key_at"]
pub extern "C" fn rt_key_at(coll: i32, i: i32) -> i32 {
    let n = index(i);
    match &*val(coll) {
        Value::Array(a) if n < a.len() => V::int(n as i64).addr(),
        Value::Set(s) => addr_of(s.get(n).copied()),
        Value::Object(o) => addr_of(o.get(n).map(|e| e.0)),
        _ => 0,
    }
}

#[export_name = "rt_val_at"]
pub extern "C" fn rt_val_at(coll: i32, i: i32) -> i32 {
    let n = index(i);
    match &*val(coll) {
        Value::Array(a) | Value::Set(a) => addr_of(a.get(n).copied()),
        Value::Object(o) => addr_of(o.get(n).map(|e| e.1)),
        _ => 0,
    }
}

#[export_name = "rt_equal"]
pub extern "C" fn rt_equal(a: i32, b: i32) -> i32 {
    value::equal(val(a), val(b)) as i32
}

#[export_name = "rt_compare"]
pub extern "C" fn rt_compare(a: i32, b: i32) -> i32 {
    match value::compare(val(a), val(b)) {
        Ordering::Less => -1,
        Ordering::Equal => 0,
        Ordering::Greater => 1,
    }
}

#[export_name = "rt_is_false"]
pub extern "C" fn rt_is_false(v: i32) -> i32 {
    matches!(opt(v).as_deref(), Some(Value::Bool(false))) as i32
}

#[export_name = "rt_kind"]
pub extern "C" fn rt_kind(v: i32) -> i32 {
    i32::from(val(v).rank())
}

/// A copy of `base` (None: an empty object) with `value` at `path`; objects
/// are created (or replace other values) on the way.
fn upsert(base: Option<V>, path: &[V], value: V) -> V {
    let Some((key, rest)) = path.split_first() else {
        return value;
    };
    let mut entries: Vec<(V, V)> = match base.as_deref() {
        Some(Value::Object(o)) => o.clone(),
        _ => Vec::new(),
    };
    match value::object_find(&entries, *key) {
        Ok(i) => {
            if let Some(e) = entries.get_mut(i) {
                e.1 = upsert(Some(e.1), rest, value);
            }
        }
        Err(i) => entries.insert(i, (*key, upsert(None, rest, value))),
    }
    V::new(Value::Object(entries))
}

#[export_name = "rt_upsert"]
pub extern "C" fn rt_upsert(base: i32, path: i32, value: i32) -> i32 {
    let path = val(path);
    let Some(keys) = path.as_array() else {
        fail("policy runtime: rt_upsert: path is not an array");
    };
    upsert(opt(base), keys, val(value)).addr()
}

#[export_name = "rt_fail"]
pub extern "C" fn rt_fail(msg: i32) {
    match abi::consts().get(index(msg)).and_then(|v| v.as_str()) {
        Some(s) => fail(s),
        None => fail("policy runtime: evaluation failed"),
    }
}

#[export_name = "rt_host0"]
pub extern "C" fn rt_host0(id: i32) -> i32 {
    abi::host0(id)
}

#[export_name = "rt_host1"]
pub extern "C" fn rt_host1(id: i32, a: i32) -> i32 {
    abi::host1(id, a)
}

#[export_name = "rt_host2"]
pub extern "C" fn rt_host2(id: i32, a: i32, b: i32) -> i32 {
    abi::host2(id, a, b)
}

#[export_name = "rt_host3"]
pub extern "C" fn rt_host3(id: i32, a: i32, b: i32, c: i32) -> i32 {
    abi::host3(id, a, b, c)
}

#[export_name = "rt_host4"]
pub extern "C" fn rt_host4(id: i32, a: i32, b: i32, c: i32, d: i32) -> i32 {
    abi::host4(id, a, b, c, d)
}

/// A value as regorus's `print` shows it inside a collection: scalars as
/// JSON, collections with `, ` and `: ` separators, sets in braces.
fn printable(v: V, out: &mut String, depth: u32) {
    if depth > 1000 {
        fail("value nested too deeply to print");
    }
    match &*v {
        Value::Array(items) | Value::Set(items) => {
            let set = matches!(&*v, Value::Set(_));
            out.push(if set { '{' } else { '[' });
            for (n, e) in items.iter().enumerate() {
                if n > 0 {
                    out.push_str(", ");
                }
                printable(*e, out, depth + 1);
            }
            out.push(if set { '}' } else { ']' });
        }
        Value::Object(entries) => {
            out.push('{');
            for (n, (k, e)) in entries.iter().enumerate() {
                if n > 0 {
                    out.push_str(", ");
                }
                printable(*k, out, depth + 1);
                out.push_str(": ");
                printable(*e, out, depth + 1);
            }
            out.push('}');
        }
        _ => json::dump(v, out),
    }
}

/// Rego's `print`: the arguments (an array) joined by spaces, strings as
/// they are, other values as regorus prints them.
#[export_name = "rt_print"]
pub extern "C" fn rt_print(args: i32) {
    let args = val(args);
    let mut msg = String::new();
    for (n, a) in args.as_array().unwrap_or(&[]).iter().enumerate() {
        if n > 0 {
            msg.push(' ');
        }
        match a.as_str() {
            Some(s) => msg.push_str(s),
            None => printable(*a, &mut msg, 0),
        }
    }
    abi::println(&msg);
}

#[export_name = "rt_num"]
pub extern "C" fn rt_num(n: i64) -> i32 {
    V::int(n).addr()
}
