//! Arithmetic and set operators, number builtins, aggregates and array
//! builtins, as regorus 0.14.1 implements them (src/builtins/{numbers,
//! aggregates,arrays,sets}.rs and src/number.rs there).
//!
//! regorus computes integers with arbitrary precision (BigInt); here an
//! integer is an i64 and a result that does not fit one (an overflowing
//! `+`, `-`, `*`, `sum`, `product`, `abs(i64::MIN)`...) falls back to an f64
//! approximation instead.

use alloc::vec::Vec;
use core::cmp::Ordering;

use super::strings::{
    arg, array_arg, as_i64, exact_integer, fail_with, is_integer, num_arg, type_error,
};
use crate::abi::fail;
use crate::value::{compare, set_find, Number, Value, V};

/// 2^63 (the magnitude of i64::MIN) as a float.
const TWO_POW_63: f64 = 9_223_372_036_854_775_808.0;

/// A float result of arithmetic: Rego has no infinities (regorus fails with
/// "numeric overflow"), and integral values become integers.
fn float_result(f: f64, op: &str) -> Number {
    if !f.is_finite() {
        fail_with(&["numeric overflow in ", op]);
    }
    Number::Float(f).normalized()
}

fn add(a: Number, b: Number) -> Number {
    match (a, b) {
        // Overflow: regorus goes to BigInt, we approximate with f64.
        (Number::Int(x), Number::Int(y)) => match x.checked_add(y) {
            Some(s) => Number::Int(s),
            None => Number::Float(x as f64 + y as f64),
        },
        _ => float_result(a.as_f64() + b.as_f64(), "addition"),
    }
}

fn sub(a: Number, b: Number) -> Number {
    match (a, b) {
        (Number::Int(x), Number::Int(y)) => match x.checked_sub(y) {
            Some(s) => Number::Int(s),
            None => Number::Float(x as f64 - y as f64),
        },
        _ => float_result(a.as_f64() - b.as_f64(), "subtraction"),
    }
}

fn mul(a: Number, b: Number) -> Number {
    match (a, b) {
        (Number::Int(x), Number::Int(y)) => match x.checked_mul(y) {
            Some(p) => Number::Int(p),
            None => Number::Float(x as f64 * y as f64),
        },
        _ => float_result(a.as_f64() * b.as_f64(), "multiplication"),
    }
}

fn is_zero(n: Number) -> bool {
    match n {
        Number::Int(i) => i == 0,
        Number::Float(f) => f == 0.0,
    }
}

/// A number value as it is (a float stays a float, as regorus keeps the
/// quotient of a division and `abs` of a float).
fn number_raw(n: Number) -> i32 {
    V::new(Value::Number(n)).addr()
}

fn number(n: Number) -> i32 {
    V::number(n).addr()
}

fn two_numbers(name: &str, a: V, b: V) -> (Number, Number) {
    (num_arg(name, 1, a), num_arg(name, 2, b))
}

#[export_name = "builtin:plus"]
pub extern "C" fn plus(a: i32, b: i32) -> i32 {
    let (x, y) = two_numbers("plus", arg(a), arg(b));
    number(add(x, y))
}

/// Numbers, or the difference of two sets.
#[export_name = "builtin:minus"]
pub extern "C" fn minus(a: i32, b: i32) -> i32 {
    let (av, bv) = (arg(a), arg(b));
    if av.as_set().is_some() || bv.as_set().is_some() {
        let (s, t) = two_sets("minus", &av, &bv);
        let items: Vec<V> = s
            .iter()
            .filter(|e| set_find(t, **e).is_err())
            .copied()
            .collect();
        return V::new(Value::Set(items)).addr();
    }
    let (x, y) = two_numbers("minus", av, bv);
    number(sub(x, y))
}

#[export_name = "builtin:mul"]
pub extern "C" fn mul_(a: i32, b: i32) -> i32 {
    let (x, y) = two_numbers("mul", arg(a), arg(b));
    number(mul(x, y))
}

/// Division: by zero an error; integers that divide exactly give an
/// integer, anything else the f64 quotient (kept a float, as regorus does).
#[export_name = "builtin:div"]
pub extern "C" fn div(a: i32, b: i32) -> i32 {
    let (x, y) = two_numbers("div", arg(a), arg(b));
    if is_zero(y) {
        fail("div: divide by zero");
    }
    let q = match (x, y) {
        (Number::Int(i64::MIN), Number::Int(-1)) => Number::Float(TWO_POW_63),
        (Number::Int(p), Number::Int(q)) if p % q == 0 => Number::Int(p / q),
        _ => {
            let f = x.as_f64() / y.as_f64();
            if !f.is_finite() {
                fail("div: numeric overflow in division");
            }
            Number::Float(f)
        }
    };
    number_raw(q)
}

/// Remainder (Rust's `%`: the sign of the dividend) of integers.
#[export_name = "builtin:rem"]
pub extern "C" fn rem(a: i32, b: i32) -> i32 {
    let (x, y) = two_numbers("rem", arg(a), arg(b));
    if is_zero(y) {
        fail("rem: modulo by zero");
    }
    match (exact_integer(x), exact_integer(y)) {
        (Some(p), Some(q)) => number_raw(Number::Int((p % q) as i64)),
        _ => fail("rem: modulo on floating-point number"),
    }
}

fn two_sets<'a>(name: &str, a: &'a V, b: &'a V) -> (&'a [V], &'a [V]) {
    match (&**a, &**b) {
        (Value::Set(s), Value::Set(t)) => (s, t),
        (Value::Set(_), _) => fail_with(&[name, ": operand 2 must be set but got ", b.type_name()]),
        _ => fail_with(&[name, ": operand 1 must be set but got ", a.type_name()]),
    }
}

/// Set union (`|`).
#[export_name = "builtin:or"]
pub extern "C" fn or(a: i32, b: i32) -> i32 {
    let (av, bv) = (arg(a), arg(b));
    let (s, t) = two_sets("or", &av, &bv);
    let mut out = Vec::with_capacity(s.len() + t.len());
    let (mut i, mut j) = (0, 0);
    while i < s.len() && j < t.len() {
        match compare(s[i], t[j]) {
            Ordering::Less => {
                out.push(s[i]);
                i += 1;
            }
            Ordering::Greater => {
                out.push(t[j]);
                j += 1;
            }
            Ordering::Equal => {
                out.push(s[i]);
                i += 1;
                j += 1;
            }
        }
    }
    out.extend_from_slice(&s[i..]);
    out.extend_from_slice(&t[j..]);
    V::new(Value::Set(out)).addr()
}

/// Set intersection (`&`).
#[export_name = "builtin:and"]
pub extern "C" fn and(a: i32, b: i32) -> i32 {
    let (av, bv) = (arg(a), arg(b));
    let (s, t) = two_sets("and", &av, &bv);
    let items: Vec<V> = s
        .iter()
        .filter(|e| set_find(t, **e).is_ok())
        .copied()
        .collect();
    V::new(Value::Set(items)).addr()
}

#[export_name = "builtin:abs"]
pub extern "C" fn abs(a: i32) -> i32 {
    match num_arg("abs", 1, arg(a)) {
        Number::Int(i) => match i.checked_abs() {
            Some(v) => V::int(v).addr(),
            None => number_raw(Number::Float(TWO_POW_63)),
        },
        Number::Float(f) => number_raw(Number::Float(libm::fabs(f))),
    }
}

#[inline(always)]
fn rounding(name: &str, a: i32, op: impl Fn(f64) -> f64) -> i32 {
    let v = arg(a);
    match num_arg(name, 1, v) {
        Number::Int(_) => v.addr(),
        Number::Float(f) => number(Number::Float(op(f))),
    }
}

#[export_name = "builtin:ceil"]
pub extern "C" fn ceil(a: i32) -> i32 {
    rounding("ceil", a, libm::ceil)
}

#[export_name = "builtin:floor"]
pub extern "C" fn floor(a: i32) -> i32 {
    rounding("floor", a, libm::floor)
}

/// Half away from zero (Rust's `f64::round`).
#[export_name = "builtin:round"]
pub extern "C" fn round(a: i32) -> i32 {
    rounding("round", a, libm::round)
}

/// An integer operand of numbers.range(_step).
fn range_bound(name: &str, operand: u8, v: V) -> i64 {
    let n = num_arg(name, operand, v);
    if !is_integer(n) {
        fail_with(&[name, ": operand must be integer"]);
    }
    match as_i64(n) {
        Some(i) => i,
        None => fail_with(&[name, ": could not determine number of elements"]),
    }
}

/// Elements a range may have (more would exhaust the heap anyway).
const MAX_RANGE: u64 = 1 << 26;

fn range_len(name: &str, n: u64) -> usize {
    if n > MAX_RANGE {
        fail_with(&[name, ": range too large"]);
    }
    n as usize
}

/// `numbers.range(a, b)`: a to b inclusive, ascending or descending.
#[export_name = "builtin:numbers.range"]
pub extern "C" fn range(a: i32, b: i32) -> i32 {
    let name = "numbers.range";
    let lo = range_bound(name, 1, arg(a));
    let hi = range_bound(name, 2, arg(b));
    let n = range_len(name, (hi as i128 - lo as i128).unsigned_abs() as u64 + 1);
    let step: i64 = if hi >= lo { 1 } else { -1 };
    let mut out = Vec::with_capacity(n);
    let mut v = lo;
    for _ in 0..n {
        out.push(V::int(v));
        v = v.wrapping_add(step);
    }
    V::array(out).addr()
}

/// `numbers.range_step(a, b, step)`: from a towards b by a positive step.
#[export_name = "builtin:numbers.range_step"]
pub extern "C" fn range_step(a: i32, b: i32, c: i32) -> i32 {
    let name = "numbers.range_step";
    let lo = range_bound(name, 1, arg(a));
    let hi = range_bound(name, 2, arg(b));
    let step = num_arg(name, 3, arg(c));
    let step = match as_i64(step) {
        Some(s) if is_integer(step) && s > 0 => s,
        _ => fail("numbers.range_step: step must be a positive integer"),
    };
    let span = (hi as i128 - lo as i128).unsigned_abs();
    let n = range_len(name, (span / step as u128) as u64 + 1);
    let step = if hi >= lo {
        step as i128
    } else {
        -(step as i128)
    };
    let mut out = Vec::with_capacity(n);
    let mut v = lo as i128;
    for _ in 0..n {
        out.push(V::int(v as i64));
        v += step;
    }
    V::array(out).addr()
}

/// Elements of an array or set argument.
fn elements<'a>(name: &str, v: &'a V) -> &'a [V] {
    match &**v {
        Value::Array(a) => a,
        Value::Set(s) => s,
        _ => type_error(name, 1, "array or set", *v),
    }
}

/// `count`: elements of a collection; a string's length in UTF-16 code
/// units (as regorus counts).
#[export_name = "builtin:count"]
pub extern "C" fn count(a: i32) -> i32 {
    let v = arg(a);
    let n = match &*v {
        Value::Array(a) => a.len(),
        Value::Set(s) => s.len(),
        Value::Object(o) => o.len(),
        Value::String(s) => s.encode_utf16().count(),
        _ => type_error("count", 1, "array, object, set or string", v),
    };
    V::int(n as i64).addr()
}

#[inline(always)]
fn fold(name: &str, a: i32, init: Number, op: impl Fn(Number, Number) -> Number) -> i32 {
    let v = arg(a);
    let mut acc = init;
    for e in elements(name, &v) {
        match &**e {
            Value::Number(n) => acc = op(acc, *n),
            _ => fail_with(&[name, ": expects numeric elements; found ", e.type_name()]),
        }
    }
    number(acc)
}

#[export_name = "builtin:sum"]
pub extern "C" fn sum(a: i32) -> i32 {
    fold("sum", a, Number::Int(0), add)
}

#[export_name = "builtin:product"]
pub extern "C" fn product(a: i32) -> i32 {
    fold("product", a, Number::Int(1), mul)
}

/// As Rust's `Iterator::max` (the last of equal greatest) and `min` (the
/// first of equal least) pick, which regorus uses.
fn extreme(name: &str, a: i32, max: bool) -> i32 {
    let v = arg(a);
    let mut best: Option<V> = None;
    for e in elements(name, &v) {
        best = match best {
            None => Some(*e),
            Some(b) => {
                let c = compare(*e, b);
                if (max && c != Ordering::Less) || (!max && c == Ordering::Less) {
                    Some(*e)
                } else {
                    Some(b)
                }
            }
        };
    }
    best.map_or(0, V::addr)
}

/// The greatest element (undefined when empty).
#[export_name = "builtin:max"]
pub extern "C" fn max(a: i32) -> i32 {
    extreme("max", a, true)
}

/// The least element (undefined when empty).
#[export_name = "builtin:min"]
pub extern "C" fn min(a: i32) -> i32 {
    extreme("min", a, false)
}

/// An array or set, sorted, as an array.
#[export_name = "builtin:sort"]
pub extern "C" fn sort(a: i32) -> i32 {
    let v = arg(a);
    let mut items: Vec<V> = elements("sort", &v).to_vec();
    if v.as_array().is_some() {
        items.sort_by(|x, y| compare(*x, *y));
    }
    V::array(items).addr()
}

#[export_name = "builtin:array.concat"]
pub extern "C" fn array_concat(a: i32, b: i32) -> i32 {
    let (av, bv) = (arg(a), arg(b));
    let x = array_arg("array.concat", 1, &av);
    let y = array_arg("array.concat", 2, &bv);
    let mut out = Vec::with_capacity(x.len() + y.len());
    out.extend_from_slice(x);
    out.extend_from_slice(y);
    V::array(out).addr()
}

#[export_name = "builtin:array.reverse"]
pub extern "C" fn array_reverse(a: i32) -> i32 {
    let av = arg(a);
    let mut out = array_arg("array.reverse", 1, &av).to_vec();
    out.reverse();
    V::array(out).addr()
}

/// `array.slice(a, start, stop)`: indexes clamped to the array, an empty
/// array when start >= stop, undefined for non-integer indexes.
#[export_name = "builtin:array.slice"]
pub extern "C" fn array_slice(a: i32, b: i32, c: i32) -> i32 {
    let av = arg(a);
    let arr = array_arg("array.slice", 1, &av);
    let start = num_arg("array.slice", 2, arg(b));
    let stop = num_arg("array.slice", 3, arg(c));
    if !is_integer(start) || !is_integer(stop) {
        return 0;
    }
    let (start, stop) = match (as_i64(start), as_i64(stop)) {
        (Some(s), Some(t)) => (s, t),
        _ => return 0,
    };
    let start = if start < 0 { 0 } else { start as u64 };
    let stop = if stop < 0 {
        0
    } else {
        (stop as u64).min(arr.len() as u64)
    };
    if start >= stop {
        return V::array(Vec::new()).addr();
    }
    V::array(arr[start as usize..stop as usize].to_vec()).addr()
}
