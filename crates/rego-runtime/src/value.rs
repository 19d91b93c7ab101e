//! Values of compiled policies.
//!
//! A value lives on the module's heap (see [`crate::heap`]) and is never
//! freed one by one: hosts reset the heap between evaluations. Values are
//! shared by pointer ([`V`], an `i32` address for the host and the generated
//! code; 0 stands for "undefined") and are immutable once handed out, except
//! for collections the generated code is still building.
//!
//! Order and equality are Rego's (as regorus orders values): null < booleans
//! < numbers < strings < arrays < sets < objects; numbers by value (`1 ==
//! 1.0`), strings by bytes, collections element by element. Sets and objects
//! are vectors kept sorted (objects by key) without duplicates, so lookups are
//! binary searches and iteration is in order.

use alloc::boxed::Box;
use alloc::vec::Vec;
use core::cmp::Ordering;
use core::ptr::NonNull;

/// A Rego number: an integer while it fits, a float otherwise.
#[derive(Clone, Copy, Debug)]
pub enum Number {
    Int(i64),
    Float(f64),
}

impl Number {
    pub fn as_f64(self) -> f64 {
        match self {
            Number::Int(i) => i as f64,
            Number::Float(f) => f,
        }
    }

    /// The integer this number is, if it is one (`2.0` is).
    pub fn as_i64(self) -> Option<i64> {
        match self {
            Number::Int(i) => Some(i),
            Number::Float(f) => {
                if f.is_finite() && libm::trunc(f) == f && f.abs() < 9.007_199_254_740_992e15 {
                    Some(f as i64)
                } else {
                    None
                }
            }
        }
    }

    /// A float that holds an integer exactly becomes an integer.
    pub fn normalized(self) -> Number {
        match self.as_i64() {
            Some(i) => Number::Int(i),
            None => self,
        }
    }

    pub fn cmp(self, other: Number) -> Ordering {
        match (self, other) {
            (Number::Int(a), Number::Int(b)) => a.cmp(&b),
            (a, b) => a
                .as_f64()
                .partial_cmp(&b.as_f64())
                .unwrap_or(Ordering::Equal),
        }
    }
}

pub enum Value {
    Null,
    Bool(bool),
    Number(Number),
    /// Text on the heap: a copy, or a slice of JSON text the value was
    /// parsed from (which lives as long as the value: both are on the heap,
    /// reset together).
    String(&'static str),
    Array(Vec<V>),
    /// Sorted, without duplicates.
    Set(Vec<V>),
    /// Sorted by key, without duplicate keys.
    Object(Vec<(V, V)>),
    /// An array or object of JSON text not read yet (see [`crate::json`]):
    /// reading the value through [`V`] parses it, one level, in place. No
    /// reference to a `Lazy` value is ever handed out.
    Lazy(crate::json::Lazy),
}

// SAFETY: wasm32-unknown-unknown without threads: one thread only.
unsafe impl Sync for Value {}

/// A value on the heap (or a static one). Copying it copies the pointer.
#[derive(Clone, Copy)]
pub struct V(NonNull<Value>);

impl core::ops::Deref for V {
    type Target = Value;
    #[inline(always)]
    fn deref(&self) -> &Value {
        let p = self.0.as_ptr();
        // SAFETY: a V always points at a live value (the heap is only reset
        // by the host between evaluations, when no V is held). A lazy value
        // is replaced before any reference to it exists (none is handed out
        // while it is lazy), on the one thread there is.
        unsafe {
            if let Value::Lazy(_) = &*p {
                read_lazy(p);
            }
            &*p
        }
    }
}

/// Reads the lazy value at `p` in place (see [`V`]'s `Deref`). Out of line:
/// the value read is returned through memory, and a caller that made room
/// for it would make room in every call, lazy value or not.
#[cold]
#[inline(never)]
unsafe fn read_lazy(p: *mut Value) {
    // SAFETY: by the caller (`Deref`): p points at a live lazy value, and
    // no reference to it exists.
    unsafe {
        if let Value::Lazy(l) = &*p {
            let l = *l;
            p.write(crate::json::force(l));
        }
    }
}

pub static NULL: Value = Value::Null;
pub static TRUE: Value = Value::Bool(true);
pub static FALSE: Value = Value::Bool(false);

impl V {
    /// Puts a value on the heap.
    #[inline(always)]
    pub fn new(v: Value) -> V {
        V(NonNull::from(Box::leak(Box::new(v))))
    }

    pub fn from_static(v: &'static Value) -> V {
        V(NonNull::from(v))
    }

    pub fn null() -> V {
        V::from_static(&NULL)
    }

    pub fn bool(b: bool) -> V {
        V::from_static(if b { &TRUE } else { &FALSE })
    }

    pub fn int(i: i64) -> V {
        V::new(Value::Number(Number::Int(i)))
    }

    pub fn float(f: f64) -> V {
        V::new(Value::Number(Number::Float(f)))
    }

    /// A number; a float that holds an integer becomes an integer.
    pub fn number(n: Number) -> V {
        V::new(Value::Number(n.normalized()))
    }

    pub fn string(s: &str) -> V {
        V::string_owned(s.into())
    }

    pub fn string_owned(s: alloc::string::String) -> V {
        V::new(Value::String(alloc::boxed::Box::leak(s.into_boxed_str())))
    }

    /// A string over text that lives as long as values do (see
    /// [`Value::String`]).
    ///
    /// # Safety
    /// `s` stays valid until the heap is reset below the value.
    pub unsafe fn string_borrowed(s: &str) -> V {
        // SAFETY: by the caller.
        V::new(Value::String(unsafe { &*(s as *const str) }))
    }

    pub fn array(items: Vec<V>) -> V {
        V::new(Value::Array(items))
    }

    /// A set of `items` (sorted and deduplicated here).
    pub fn set(mut items: Vec<V>) -> V {
        items.sort_by(|a, b| compare(*a, *b));
        items.dedup_by(|a, b| compare(*a, *b) == Ordering::Equal);
        V::new(Value::Set(items))
    }

    /// An object of `entries` (sorted here; of duplicate keys the last wins).
    pub fn object(entries: Vec<(V, V)>) -> V {
        V::new(Value::object(entries))
    }

    /// The address the host and the generated code see.
    pub fn addr(self) -> i32 {
        self.0.as_ptr() as i32
    }

    /// The value at `addr`; None for 0 (undefined).
    ///
    /// # Safety
    /// `addr` is 0 or came from [`V::addr`].
    pub unsafe fn from_addr(addr: i32) -> Option<V> {
        NonNull::new(addr as u32 as usize as *mut Value).map(V)
    }

    /// The value, to change a collection still being built.
    ///
    /// # Safety
    /// No reference to the value is live, and the value is not shared yet (or
    /// is meant to change for all holders, as the host's data is).
    #[allow(clippy::mut_from_ref)]
    pub unsafe fn get_mut(self) -> &'static mut Value {
        // Read a lazy value first.
        let _: &Value = &self;
        unsafe { &mut *self.0.as_ptr() }
    }

    pub fn ptr_eq(self, other: V) -> bool {
        self.0 == other.0
    }
}

/// A lazy value seen through a reference, which [`V`] never hands out.
#[cold]
pub fn never_lazy() -> ! {
    crate::abi::fail("policy runtime: a lazy value was read directly")
}

/// Undefined (None) as address 0.
pub fn addr_of(v: Option<V>) -> i32 {
    v.map_or(0, V::addr)
}

impl Value {
    /// An object of `entries` (sorted here; of duplicate keys the last wins).
    pub fn object(mut entries: Vec<(V, V)>) -> Value {
        // Small objects with string keys, as JSON documents mostly have: an
        // insertion sort on the keys' text, much cheaper than [`compare`]
        // and the general sort (which larger ones keep: n log n).
        if entries.len() <= SMALL_OBJECT && entries.iter().all(|(k, _)| k.as_str().is_some()) {
            return Value::Object(sort_string_keys(entries));
        }
        if entries
            .windows(2)
            .all(|w| compare(w[0].0, w[1].0) == Ordering::Less)
        {
            return Value::Object(entries);
        }
        entries.reverse();
        entries.sort_by(|a, b| compare(a.0, b.0));
        entries.dedup_by(|a, b| compare(a.0, b.0) == Ordering::Equal);
        Value::Object(entries)
    }

    /// Rank of the kind in Rego's order: 0 null, 1 boolean, 2 number, 3
    /// string, 4 array, 5 set, 6 object.
    pub fn rank(&self) -> u8 {
        match self {
            Value::Lazy(_) => crate::value::never_lazy(),
            Value::Null => 0,
            Value::Bool(_) => 1,
            Value::Number(_) => 2,
            Value::String(_) => 3,
            Value::Array(_) => 4,
            Value::Set(_) => 5,
            Value::Object(_) => 6,
        }
    }

    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::String(s) => Some(s),
            _ => None,
        }
    }

    pub fn as_number(&self) -> Option<Number> {
        match self {
            Value::Number(n) => Some(*n),
            _ => None,
        }
    }

    pub fn as_array(&self) -> Option<&[V]> {
        match self {
            Value::Array(a) => Some(a),
            _ => None,
        }
    }

    pub fn as_set(&self) -> Option<&[V]> {
        match self {
            Value::Set(s) => Some(s),
            _ => None,
        }
    }

    pub fn as_object(&self) -> Option<&[(V, V)]> {
        match self {
            Value::Object(o) => Some(o),
            _ => None,
        }
    }

    /// Rego's `type_name`.
    pub fn type_name(&self) -> &'static str {
        match self {
            Value::Lazy(_) => never_lazy(),
            Value::Null => "null",
            Value::Bool(_) => "boolean",
            Value::Number(_) => "number",
            Value::String(_) => "string",
            Value::Array(_) => "array",
            Value::Set(_) => "set",
            Value::Object(_) => "object",
        }
    }

    /// Elements of an array or set, entries' values of an object; how many.
    pub fn len(&self) -> Option<usize> {
        match self {
            Value::Array(a) => Some(a.len()),
            Value::Set(s) => Some(s.len()),
            Value::Object(o) => Some(o.len()),
            Value::String(s) => Some(s.chars().count()),
            _ => None,
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == Some(0)
    }
}

/// Objects up to this many entries with string keys are sorted by
/// [`sort_string_keys`].
const SMALL_OBJECT: usize = 32;

/// Entries whose keys are all strings, sorted by the keys' bytes (stable:
/// of equal keys the one that came last is kept).
fn sort_string_keys(mut entries: Vec<(V, V)>) -> Vec<(V, V)> {
    #[inline(always)]
    fn key(e: &(V, V)) -> &'static [u8] {
        match &*e.0 {
            Value::String(s) => s.as_bytes(),
            _ => &[],
        }
    }
    let n = entries.len();
    let mut duplicate = false;
    for i in 1..n {
        let k = key(&entries[i]);
        let mut j = i;
        loop {
            match crate::mem::cmp_bytes(key(&entries[j - 1]), k) {
                Ordering::Greater => {}
                Ordering::Equal => {
                    duplicate = true;
                    break;
                }
                Ordering::Less => break,
            }
            j -= 1;
            if j == 0 {
                break;
            }
        }
        if j < i {
            entries[j..=i].rotate_right(1);
        }
    }
    if duplicate {
        let mut w = 0;
        for r in 0..n {
            if w > 0 && crate::mem::cmp_bytes(key(&entries[w - 1]), key(&entries[r])).is_eq() {
                entries[w - 1] = entries[r];
            } else {
                entries[w] = entries[r];
                w += 1;
            }
        }
        entries.truncate(w);
    }
    entries
}

/// Rego's total order on values.
///
/// Strings, which most comparisons are (keys of objects), first: their
/// bytes compared inline, without the general case's frame.
pub fn compare(a: V, b: V) -> Ordering {
    if let (Value::String(x), Value::String(y)) = (&*a, &*b) {
        return crate::mem::cmp_bytes(x.as_bytes(), y.as_bytes());
    }
    compare_values(a, b)
}

#[inline(never)]
fn compare_values(a: V, b: V) -> Ordering {
    if a.ptr_eq(b) {
        return Ordering::Equal;
    }
    match (&*a, &*b) {
        (Value::Null, Value::Null) => Ordering::Equal,
        (Value::Bool(x), Value::Bool(y)) => x.cmp(y),
        (Value::Number(x), Value::Number(y)) => x.cmp(*y),
        (Value::String(x), Value::String(y)) => crate::mem::cmp_bytes(x.as_bytes(), y.as_bytes()),
        (Value::Array(x), Value::Array(y)) | (Value::Set(x), Value::Set(y)) => {
            for (p, q) in x.iter().zip(y.iter()) {
                match compare(*p, *q) {
                    Ordering::Equal => {}
                    o => return o,
                }
            }
            x.len().cmp(&y.len())
        }
        (Value::Object(x), Value::Object(y)) => {
            for ((pk, pv), (qk, qv)) in x.iter().zip(y.iter()) {
                match compare(*pk, *qk) {
                    Ordering::Equal => {}
                    o => return o,
                }
                match compare(*pv, *qv) {
                    Ordering::Equal => {}
                    o => return o,
                }
            }
            x.len().cmp(&y.len())
        }
        (x, y) => x.rank().cmp(&y.rank()),
    }
}

pub fn equal(a: V, b: V) -> bool {
    compare(a, b) == Ordering::Equal
}

/// Index of `key` in a sorted object, or where it would go.
///
/// A string key (as most are) is compared with the keys inline.
pub fn object_find(entries: &[(V, V)], key: V) -> Result<usize, usize> {
    match &*key {
        Value::String(s) => find_str(entries, s.as_bytes()),
        _ => entries.binary_search_by(|(k, _)| compare(*k, key)),
    }
}

/// Index of the string key `key` in a sorted object, or where it would go:
/// a binary search with the comparison inline.
#[inline(never)]
fn find_str(entries: &[(V, V)], key: &[u8]) -> Result<usize, usize> {
    let (mut lo, mut hi) = (0, entries.len());
    while lo < hi {
        let mid = lo + (hi - lo) / 2;
        // SAFETY: lo <= mid < hi <= len.
        let k = unsafe { entries.get_unchecked(mid).0 };
        let order = match &*k {
            Value::String(s) => crate::mem::cmp_bytes(s.as_bytes(), key),
            other => other.rank().cmp(&3),
        };
        match order {
            Ordering::Less => lo = mid + 1,
            Ordering::Greater => hi = mid,
            Ordering::Equal => return Ok(mid),
        }
    }
    Err(lo)
}

/// Index of `elem` in a sorted set, or where it would go.
pub fn set_find(items: &[V], elem: V) -> Result<usize, usize> {
    items.binary_search_by(|e| compare(*e, elem))
}

/// `coll[key]`: an object's value, an array's element (integer index), a
/// set's element itself; None when there is none or `coll` is no collection.
///
/// An object and a string key, as most lookups are, first and inline: the
/// binary search is the only call.
#[inline]
pub fn get(coll: V, key: V) -> Option<V> {
    if let (Value::Object(o), Value::String(k)) = (&*coll, &*key) {
        // SAFETY: find_str returns an index within the entries.
        return find_str(o, k.as_bytes())
            .ok()
            .map(|i| unsafe { o.get_unchecked(i).1 });
    }
    get_any(coll, key)
}

#[inline(never)]
fn get_any(coll: V, key: V) -> Option<V> {
    match &*coll {
        Value::Object(o) => object_find(o, key).ok().map(|i| o[i].1),
        Value::Array(a) => {
            let i = key.as_number()?.as_i64()?;
            usize::try_from(i).ok().and_then(|i| a.get(i).copied())
        }
        Value::Set(s) => set_find(s, key).ok().map(|i| s[i]),
        _ => None,
    }
}

/// Looks `key` up in an object by string, without making a value.
pub fn get_str(coll: V, key: &str) -> Option<V> {
    let o = coll.as_object()?;
    find_str(o, key.as_bytes()).ok().map(|i| o[i].1)
}

/// Adds `elem` to a set being built (no-op if present).
///
/// # Safety
/// `set` is a set not shared yet.
pub unsafe fn set_insert(set: V, elem: V) {
    if let Value::Set(s) = unsafe { set.get_mut() } {
        if let Err(i) = set_find(s, elem) {
            s.insert(i, elem);
        }
    }
}

/// Sets `key` to `value` in an object being built. Returns false when the key
/// is there with another value (the object is then unchanged).
///
/// # Safety
/// `obj` is an object not shared yet, or one meant to change for all holders.
pub unsafe fn object_insert(obj: V, key: V, value: V) -> bool {
    if let Value::Object(o) = unsafe { obj.get_mut() } {
        match object_find(o, key) {
            Ok(i) => return equal(o[i].1, value),
            Err(i) => o.insert(i, (key, value)),
        }
    }
    true
}

/// Sets `key` to `value`, replacing what is there.
///
/// # Safety
/// As [`object_insert`].
pub unsafe fn object_set(obj: V, key: V, value: V) {
    if let Value::Object(o) = unsafe { obj.get_mut() } {
        match object_find(o, key) {
            Ok(i) => o[i].1 = value,
            Err(i) => o.insert(i, (key, value)),
        }
    }
}
