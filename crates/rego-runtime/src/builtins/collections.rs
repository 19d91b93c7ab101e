//! Builtins on collections: `object.*`, the `is_*` type tests, `union` and
//! `intersection` of a set of sets, `walk`, `json.filter` and `json.remove`,
//! as regorus 0.14.1 evaluates them (its builtins/objects.rs, types.rs,
//! sets.rs and graph.rs), errors included.

use alloc::string::String;
use alloc::vec::Vec;
use core::cmp::Ordering;

use crate::abi::fail;
use crate::value::{compare, equal, get, object_find, set_find, Value, V};

/// The value of an argument (the generated code never passes undefined).
fn arg(a: i32) -> V {
    match unsafe { V::from_addr(a) } {
        Some(v) => v,
        None => fail("policy runtime: undefined builtin argument"),
    }
}

/// Fails with regorus's "`name` expects <what> argument" error.
pub(crate) fn expects(name: &str, what: &str, got: V) -> ! {
    let mut m = String::new();
    m.push('`');
    m.push_str(name);
    m.push_str("` expects ");
    m.push_str(what);
    m.push_str(" argument. Got ");
    m.push_str(got.type_name());
    m.push_str(" instead");
    fail(&m)
}

/// Fails with "`name` <text>".
fn fail_named(name: &str, text: &str) -> ! {
    let mut m = String::new();
    m.push('`');
    m.push_str(name);
    m.push_str("` ");
    m.push_str(text);
    fail(&m)
}

fn object_arg<'a>(name: &str, v: V) -> &'a [(V, V)] {
    match &*v {
        // SAFETY of the lifetime: values live until the host resets the heap.
        Value::Object(o) => unsafe { &*(o.as_slice() as *const [(V, V)]) },
        _ => expects(name, "object", v),
    }
}

fn set_arg<'a>(name: &str, v: V) -> &'a [V] {
    match &*v {
        Value::Set(s) => unsafe { &*(s.as_slice() as *const [V]) },
        _ => expects(name, "set", v),
    }
}

/// An object from entries already sorted by key without duplicates.
fn sorted_object(entries: Vec<(V, V)>) -> V {
    V::new(Value::Object(entries))
}

/// A set from elements already sorted without duplicates.
fn sorted_set(items: Vec<V>) -> V {
    V::new(Value::Set(items))
}

// ---------------------------------------------------------------- object.*

/// `object.get(obj, key, default)`; an array key is a path.
#[export_name = "builtin:object.get"]
pub extern "C" fn object_get(obj: i32, key: i32, default: i32) -> i32 {
    let (obj, key, default) = (arg(obj), arg(key), arg(default));
    object_arg("object.get", obj);
    match &*key {
        Value::Array(path) => {
            let mut v = obj;
            for k in path.iter() {
                match get(v, *k) {
                    Some(x) => v = x,
                    None => return default.addr(),
                }
            }
            v.addr()
        }
        _ => get(obj, key).unwrap_or(default).addr(),
    }
}

#[export_name = "builtin:object.keys"]
pub extern "C" fn object_keys(obj: i32) -> i32 {
    let obj = arg(obj);
    let o = object_arg("object.keys", obj);
    sorted_set(o.iter().map(|(k, _)| *k).collect()).addr()
}

/// regorus's recursive object union: `b` wins, objects on both sides merge.
fn union2(a: V, b: V) -> V {
    let (m1, m2) = match (&*a, &*b) {
        (Value::Object(m1), Value::Object(m2)) => (m1, m2),
        _ => return b,
    };
    let mut out = Vec::with_capacity(m1.len() + m2.len());
    let (mut i, mut j) = (0, 0);
    while i < m1.len() || j < m2.len() {
        let ord = match (m1.get(i), m2.get(j)) {
            (Some(x), Some(y)) => compare(x.0, y.0),
            (Some(_), None) => Ordering::Less,
            _ => Ordering::Greater,
        };
        match ord {
            Ordering::Less => {
                out.push(m1[i]);
                i += 1;
            }
            Ordering::Greater => {
                out.push(m2[j]);
                j += 1;
            }
            Ordering::Equal => {
                out.push((m1[i].0, union2(m1[i].1, m2[j].1)));
                i += 1;
                j += 1;
            }
        }
    }
    sorted_object(out)
}

#[export_name = "builtin:object.union"]
pub extern "C" fn object_union(a: i32, b: i32) -> i32 {
    let (a, b) = (arg(a), arg(b));
    object_arg("object.union", a);
    object_arg("object.union", b);
    union2(a, b).addr()
}

#[export_name = "builtin:object.union_n"]
pub extern "C" fn object_union_n(arr: i32) -> i32 {
    let arr = arg(arr);
    let items = match &*arr {
        Value::Array(a) => a,
        _ => expects("object.union_n", "array", arr),
    };
    let mut u = sorted_object(Vec::new());
    for (idx, item) in items.iter().enumerate() {
        if item.as_object().is_none() {
            let mut m = String::from("`object.union_n`: item at index ");
            crate::json::write_u64(idx as u64, &mut m);
            m.push_str(" is not an object");
            fail(&m);
        }
        u = union2(u, *item);
    }
    u.addr()
}

/// Keeps (`keep`) or drops the entries of `obj` whose keys are in `keys` (an
/// array, set or object).
fn filter_keys(name: &str, obj: V, keys: V, keep: bool) -> V {
    let o = object_arg(name, obj);
    let mut sorted = Vec::new();
    match &*keys {
        Value::Array(a) => {
            sorted = a.clone();
            sorted.sort_by(|x, y| compare(*x, *y));
        }
        Value::Set(_) | Value::Object(_) => {}
        _ => fail_named(name, "requires array/object/set argument"),
    }
    let contains = |k: V| match &*keys {
        Value::Set(s) => set_find(s, k).is_ok(),
        Value::Object(m) => object_find(m, k).is_ok(),
        _ => set_find(&sorted, k).is_ok(),
    };
    sorted_object(
        o.iter()
            .filter(|(k, _)| contains(*k) == keep)
            .copied()
            .collect(),
    )
}

#[export_name = "builtin:object.remove"]
pub extern "C" fn object_remove(obj: i32, keys: i32) -> i32 {
    filter_keys("object.remove", arg(obj), arg(keys), false).addr()
}

#[export_name = "builtin:object.filter"]
pub extern "C" fn object_filter(obj: i32, keys: i32) -> i32 {
    filter_keys("object.filter", arg(obj), arg(keys), true).addr()
}

/// regorus's `is_subset` (no type checks: anything else compares equal).
fn is_subset(sup: V, sub: V) -> bool {
    match (&*sup, &*sub) {
        (Value::Object(sup), Value::Object(sub)) => {
            sub.iter().all(|(k, vsub)| match object_find(sup, *k) {
                Ok(i) => is_subset(sup[i].1, *vsub),
                Err(_) => false,
            })
        }
        (Value::Set(sup), Value::Set(sub)) => sub.iter().all(|e| set_find(sup, *e).is_ok()),
        (Value::Array(sup), Value::Array(sub)) => {
            // regorus uses `windows(sub.len())`, which panics on an empty
            // `sub`; the empty array is taken as a subset here.
            if sub.is_empty() {
                return true;
            }
            sup.windows(sub.len())
                .any(|w| w.iter().zip(sub.iter()).all(|(x, y)| equal(*x, *y)))
        }
        (Value::Array(sup), Value::Set(sub)) => {
            let mut s = sup.clone();
            s.sort_by(|x, y| compare(*x, *y));
            sub.iter().all(|e| set_find(&s, *e).is_ok())
        }
        _ => equal(sup, sub),
    }
}

#[export_name = "builtin:object.subset"]
pub extern "C" fn object_subset(sup: i32, sub: i32) -> i32 {
    V::bool(is_subset(arg(sup), arg(sub))).addr()
}

// ---------------------------------------------------------------- is_*

#[export_name = "builtin:is_object"]
pub extern "C" fn is_object(v: i32) -> i32 {
    V::bool(matches!(&*arg(v), Value::Object(_))).addr()
}

#[export_name = "builtin:is_string"]
pub extern "C" fn is_string(v: i32) -> i32 {
    V::bool(matches!(&*arg(v), Value::String(_))).addr()
}

#[export_name = "builtin:is_array"]
pub extern "C" fn is_array(v: i32) -> i32 {
    V::bool(matches!(&*arg(v), Value::Array(_))).addr()
}

#[export_name = "builtin:is_set"]
pub extern "C" fn is_set(v: i32) -> i32 {
    V::bool(matches!(&*arg(v), Value::Set(_))).addr()
}

#[export_name = "builtin:is_number"]
pub extern "C" fn is_number(v: i32) -> i32 {
    V::bool(matches!(&*arg(v), Value::Number(_))).addr()
}

#[export_name = "builtin:is_boolean"]
pub extern "C" fn is_boolean(v: i32) -> i32 {
    V::bool(matches!(&*arg(v), Value::Bool(_))).addr()
}

#[export_name = "builtin:is_null"]
pub extern "C" fn is_null(v: i32) -> i32 {
    V::bool(matches!(&*arg(v), Value::Null)).addr()
}

// ---------------------------------------------------------------- sets of sets

/// The members of a set of sets; fails when a member is no set.
fn sets_of<'a>(name: &str, v: V) -> Vec<&'a [V]> {
    let members = set_arg(name, v);
    let mut out = Vec::with_capacity(members.len());
    for m in members {
        match &**m {
            Value::Set(s) => out.push(unsafe { &*(s.as_slice() as *const [V]) }),
            _ => fail_named(name, "expects set of sets"),
        }
    }
    out
}

#[export_name = "builtin:union"]
pub extern "C" fn union(sets: i32) -> i32 {
    let sets = sets_of("union", arg(sets));
    let mut all = Vec::new();
    for s in sets {
        all.extend_from_slice(s);
    }
    V::set(all).addr()
}

#[export_name = "builtin:intersection"]
pub extern "C" fn intersection(sets: i32) -> i32 {
    let sets = sets_of("intersection", arg(sets));
    let mut res: Vec<V> = match sets.first() {
        Some(s) => s.to_vec(),
        None => Vec::new(),
    };
    for s in sets.iter().skip(1) {
        res.retain(|e| set_find(s, *e).is_ok());
    }
    sorted_set(res).addr()
}

// ---------------------------------------------------------------- walk

fn walk_visit(path: &mut Vec<V>, v: V, out: &mut Vec<V>) {
    out.push(V::array(alloc::vec![V::array(path.clone()), v]));
    match &*v {
        Value::Array(a) => {
            for (i, e) in a.iter().enumerate() {
                path.push(V::int(i as i64));
                walk_visit(path, *e, out);
                path.pop();
            }
        }
        Value::Set(s) => {
            for e in s.iter() {
                path.push(*e);
                walk_visit(path, *e, out);
                path.pop();
            }
        }
        Value::Object(o) => {
            for (k, e) in o.iter() {
                path.push(*k);
                walk_visit(path, *e, out);
                path.pop();
            }
        }
        _ => {}
    }
}

/// `walk(x)`: the array of every `[path, value]` in `x`, pre-order.
#[export_name = "builtin:walk"]
pub extern "C" fn walk(v: i32) -> i32 {
    let mut out = Vec::new();
    walk_visit(&mut Vec::new(), arg(v), &mut out);
    V::array(out).addr()
}

// ---------------------------------------------------------------- json.filter / json.remove

/// regorus's filter tree: an object of path components (`Obj`, sorted by
/// key) whose key `null` with value `null` (`Null`) marks a path's end.
enum F {
    Null,
    Obj(Vec<(V, F)>),
}

impl F {
    fn find(fields: &[(V, F)], key: V) -> Result<usize, usize> {
        fields.binary_search_by(|(k, _)| compare(*k, key))
    }

    fn get(fields: &[(V, F)], key: V) -> Option<&F> {
        Self::find(fields, key).ok().map(|i| &fields[i].1)
    }

    /// `filter[null] == null`.
    fn marked(fields: &[(V, F)]) -> bool {
        matches!(Self::get(fields, V::null()), Some(F::Null))
    }
}

/// The child of `f` at `key`, made an empty object when missing (`f`
/// itself when it is no object).
fn child(f: &mut F, key: V) -> &mut F {
    match f {
        F::Obj(fields) => {
            let i = match F::find(fields, key) {
                Ok(i) => i,
                Err(i) => {
                    fields.insert(i, (key, F::Obj(Vec::new())));
                    i
                }
            };
            &mut fields[i].1
        }
        other => other,
    }
}

/// Sets `f[null] = null` when `f` is an object.
fn mark(f: &mut F) {
    if let F::Obj(fields) = f {
        let key = V::null();
        match F::find(fields, key) {
            Ok(i) => fields[i].1 = F::Null,
            Err(i) => fields.insert(i, (key, F::Null)),
        }
    }
}

/// regorus's `merge_filters`: paths are "a/b" strings or arrays of keys.
fn merge_filters(name: &str, paths: &[V]) -> F {
    let mut root = F::Obj(Vec::new());
    for p in paths {
        match &**p {
            Value::String(s) => {
                let mut f = &mut root;
                for part in s.split('/') {
                    // String keys always hold objects.
                    f = child(f, V::string(part));
                }
                mark(f);
            }
            Value::Array(a) => {
                let mut f = &mut root;
                for k in a.iter() {
                    if !matches!(f, F::Obj(_)) {
                        break;
                    }
                    f = child(f, *k);
                }
                mark(f);
            }
            _ => fail_named(
                name,
                "requires path to be '/' separated string or array of path components.",
            ),
        }
    }
    root
}

fn paths_arg<'a>(name: &str, v: V) -> &'a [V] {
    match &*v {
        Value::Array(a) => unsafe { &*(a.as_slice() as *const [V]) },
        Value::Set(s) => unsafe { &*(s.as_slice() as *const [V]) },
        _ => fail_named(name, "requires set/array argument"),
    }
}

/// regorus's `json_filter_impl`; None is undefined.
fn json_filter_impl(v: Option<V>, filter: &F) -> Option<V> {
    let fields = match filter {
        F::Obj(fields) if fields.len() == 1 && F::marked(fields) => return v,
        F::Obj(fields) if !fields.is_empty() => fields,
        _ => return v,
    };
    let v = v?;
    match &*v {
        Value::Array(_) => {
            let mut items = Vec::new();
            for (idx, f) in fields.iter() {
                // Keys are array indexes only as strings of JSON numbers.
                if let Value::String(idx) = &**idx {
                    if let Some(idx) = crate::json::parse(idx.as_bytes()) {
                        if let Some(item) = json_filter_impl(get(v, idx), f) {
                            items.push(item);
                        }
                    }
                }
            }
            Some(V::array(items))
        }
        Value::Set(s) => {
            let mut items = Vec::new();
            for (item, f) in fields.iter() {
                if set_find(s, *item).is_ok() {
                    if let Some(item) = json_filter_impl(Some(*item), f) {
                        items.push(item);
                    }
                }
            }
            Some(V::set(items))
        }
        Value::Object(_) => {
            let mut items = Vec::new();
            for (key, f) in fields.iter() {
                if let Some(item) = json_filter_impl(get(v, *key), f) {
                    items.push((*key, item));
                }
            }
            Some(V::object(items))
        }
        _ => None,
    }
}

/// regorus's `json_remove_impl`; None is undefined (removed).
fn json_remove_impl(v: V, filter: &F) -> Option<V> {
    let fields = match filter {
        F::Obj(fields) if !fields.is_empty() => fields,
        _ => return Some(v),
    };
    if F::marked(fields) {
        return None;
    }
    match &*v {
        Value::Array(a) => {
            let mut items = Vec::with_capacity(a.len());
            let mut key = String::new();
            for (idx, item) in a.iter().enumerate() {
                key.clear();
                crate::json::write_u64(idx as u64, &mut key);
                let f = F::get(fields, V::string(&key));
                match f {
                    Some(f) => {
                        if let Some(x) = json_remove_impl(*item, f) {
                            items.push(x);
                        }
                    }
                    None => items.push(*item),
                }
            }
            Some(V::array(items))
        }
        Value::Set(s) => {
            let mut items = Vec::with_capacity(s.len());
            for item in s.iter() {
                match F::get(fields, *item) {
                    Some(f) => {
                        if let Some(x) = json_remove_impl(*item, f) {
                            items.push(x);
                        }
                    }
                    None => items.push(*item),
                }
            }
            Some(V::set(items))
        }
        Value::Object(o) => {
            let mut items = Vec::with_capacity(o.len());
            for (k, item) in o.iter() {
                match F::get(fields, *k) {
                    Some(f) => {
                        if let Some(x) = json_remove_impl(*item, f) {
                            items.push((*k, x));
                        }
                    }
                    None => items.push((*k, *item)),
                }
            }
            Some(sorted_object(items))
        }
        _ => None,
    }
}

#[export_name = "builtin:json.filter"]
pub extern "C" fn json_filter(obj: i32, paths: i32) -> i32 {
    let name = "json.filter";
    let (obj, paths) = (arg(obj), arg(paths));
    object_arg(name, obj);
    let filters = merge_filters(name, paths_arg(name, paths));
    if let F::Obj(f) = &filters {
        if f.is_empty() {
            return sorted_object(Vec::new()).addr();
        }
    }
    crate::value::addr_of(json_filter_impl(Some(obj), &filters))
}

#[export_name = "builtin:json.remove"]
pub extern "C" fn json_remove(obj: i32, paths: i32) -> i32 {
    let name = "json.remove";
    let (obj, paths) = (arg(obj), arg(paths));
    object_arg(name, obj);
    let filters = merge_filters(name, paths_arg(name, paths));
    crate::value::addr_of(json_remove_impl(obj, &filters))
}
