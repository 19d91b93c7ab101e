//! String builtins (with `type_name` and `to_number`), as regorus 0.14.1
//! implements them (src/builtins/{strings,types,conversions}.rs there), and
//! the text helpers they share with [`super::numbers`]: argument checks,
//! number text (Rust's float `Display`, `{:e}` and `{:.N}`, by hand: no
//! `core::fmt`) and the Rego text `sprintf("%v")` prints.

use alloc::string::String;
use alloc::vec::Vec;

use crate::abi::fail;
use crate::value::{Number, Value, V};

// ---------------------------------------------------------------------------
// Arguments and errors

/// The value at an argument address (never 0 by the calling convention).
pub(crate) fn arg(a: i32) -> V {
    // SAFETY: the generated code passes addresses of live values.
    match unsafe { V::from_addr(a) } {
        Some(v) => v,
        None => fail("builtin: undefined argument"),
    }
}

/// Fails with the concatenation of `parts`.
pub(crate) fn fail_with(parts: &[&str]) -> ! {
    let mut s = String::new();
    for p in parts {
        s.push_str(p);
    }
    fail(&s)
}

/// `name: operand N must be WANT but got TYPE`.
pub(crate) fn type_error(name: &str, operand: u8, want: &str, got: V) -> ! {
    let digit = [b'0' + operand % 10];
    let d = core::str::from_utf8(&digit).unwrap_or("?");
    fail_with(&[
        name,
        ": operand ",
        d,
        " must be ",
        want,
        " but got ",
        got.type_name(),
    ])
}

pub(crate) fn str_arg<'a>(name: &str, operand: u8, v: &'a V) -> &'a str {
    match &**v {
        Value::String(s) => s,
        _ => type_error(name, operand, "string", *v),
    }
}

pub(crate) fn num_arg(name: &str, operand: u8, v: V) -> Number {
    match &*v {
        Value::Number(n) => *n,
        _ => type_error(name, operand, "number", v),
    }
}

pub(crate) fn array_arg<'a>(name: &str, operand: u8, v: &'a V) -> &'a [V] {
    match &**v {
        Value::Array(a) => a,
        _ => type_error(name, operand, "array", *v),
    }
}

/// The strings of an array or a set (regorus's `ensure_string_collection`).
fn string_collection<'a>(name: &str, operand: u8, v: &'a V) -> Vec<&'a str> {
    let items: &[V] = match &**v {
        Value::Array(a) => a,
        Value::Set(s) => s,
        _ => type_error(name, operand, "array or set of strings", *v),
    };
    let mut out = Vec::with_capacity(items.len());
    for item in items {
        match item.as_str() {
            Some(s) => out.push(s),
            None => fail_with(&[
                name,
                ": expects a string collection; found ",
                item.type_name(),
            ]),
        }
    }
    out
}

fn ret_str(s: String) -> i32 {
    V::string_owned(s).addr()
}

fn ret_bool(b: bool) -> i32 {
    V::bool(b).addr()
}

// ---------------------------------------------------------------------------
// Number text

pub(crate) fn push_u64(out: &mut String, n: u64) {
    push_radix(out, n, 10, false);
}

pub(crate) fn push_i64(out: &mut String, n: i64) {
    if n < 0 {
        out.push('-');
    }
    push_u64(out, n.unsigned_abs());
}

/// `n` in base `radix` (2..=16), digits lowercase unless `upper`.
pub(crate) fn push_radix(out: &mut String, mut n: u64, radix: u64, upper: bool) {
    let digits: &[u8; 16] = if upper {
        b"0123456789ABCDEF"
    } else {
        b"0123456789abcdef"
    };
    let mut buf = [0u8; 64];
    let mut i = buf.len();
    loop {
        i -= 1;
        buf[i] = digits[(n % radix) as usize];
        n /= radix;
        if n == 0 {
            break;
        }
    }
    for &b in &buf[i..] {
        out.push(b as char);
    }
}

/// The shortest round-trip digits of a finite, nonzero `|f|` (ryu's, as
/// Rust's float formatting picks them): value = 0.DIGITS x 10^point.
struct Shortest {
    digits: [u8; 24],
    len: usize,
    point: i32,
}

fn shortest(f: f64) -> Shortest {
    let mut buf = ryu::Buffer::new();
    let text = buf.format_finite(libm::fabs(f)).as_bytes();
    let mut r = Shortest {
        digits: [0; 24],
        len: 0,
        point: 0,
    };
    let mut seen_dot = false;
    let mut i = 0;
    while i < text.len() {
        let c = text[i];
        match c {
            b'0'..=b'9' => {
                if r.len == 0 && c == b'0' {
                    if seen_dot {
                        r.point -= 1;
                    }
                } else {
                    if r.len < r.digits.len() {
                        r.digits[r.len] = c;
                        r.len += 1;
                    }
                    if !seen_dot {
                        r.point += 1;
                    }
                }
            }
            b'.' => seen_dot = true,
            b'e' | b'E' => {
                let mut exp: i32 = 0;
                let mut neg = false;
                for &e in &text[i + 1..] {
                    match e {
                        b'-' => neg = true,
                        b'0'..=b'9' => exp = exp * 10 + (e - b'0') as i32,
                        _ => {}
                    }
                }
                r.point += if neg { -exp } else { exp };
                break;
            }
            _ => {}
        }
        i += 1;
    }
    while r.len > 0 && r.digits[r.len - 1] == b'0' {
        r.len -= 1;
    }
    r
}

fn push_zeros(out: &mut String, n: i64) {
    for _ in 0..n.max(0) {
        out.push('0');
    }
}

/// What Rust's formats of an f64 share: `NaN` and `inf` (with its sign)
/// written whole (true), or the sign of a finite number written (false).
fn push_sign_or_special(out: &mut String, f: f64) -> bool {
    if f.is_nan() {
        out.push_str("NaN");
        return true;
    }
    if f.is_sign_negative() {
        out.push('-');
    }
    if f.is_infinite() {
        out.push_str("inf");
        return true;
    }
    false
}

/// Rust's `Display` of an f64 (`f.to_string()`): shortest digits, never an
/// exponent (`1e21` is `1000000000000000000000`), `3.0` is `3`.
pub(crate) fn push_f64_display(out: &mut String, f: f64) {
    if push_sign_or_special(out, f) {
        return;
    }
    if f == 0.0 {
        out.push('0');
        return;
    }
    let s = shortest(f);
    let digits = &s.digits[..s.len];
    let point = s.point as i64;
    let len = digits.len() as i64;
    if point <= 0 {
        out.push_str("0.");
        push_zeros(out, -point);
        push_ascii(out, digits);
    } else if point >= len {
        push_ascii(out, digits);
        push_zeros(out, point - len);
    } else {
        let p = point as usize;
        push_ascii(out, &digits[..p]);
        out.push('.');
        push_ascii(out, &digits[p..]);
    }
}

/// Rust's `{:e}` (or `{:E}`) of an f64: `1.2345e3`, `1e21`, `1.5e-7`, `0e0`.
pub(crate) fn push_f64_exp(out: &mut String, f: f64, upper: bool) {
    if push_sign_or_special(out, f) {
        return;
    }
    let e = if upper { 'E' } else { 'e' };
    if f == 0.0 {
        out.push('0');
        out.push(e);
        out.push('0');
        return;
    }
    let s = shortest(f);
    let digits = &s.digits[..s.len];
    push_ascii(out, &digits[..1]);
    if digits.len() > 1 {
        out.push('.');
        push_ascii(out, &digits[1..]);
    }
    out.push(e);
    push_i64(out, s.point as i64 - 1);
}

fn push_ascii(out: &mut String, bytes: &[u8]) {
    for &b in bytes {
        out.push(b as char);
    }
}

/// Rust's `{:.prec$}` of an f64: the exact binary value rounded to `prec`
/// decimals, ties to even.
pub(crate) fn push_f64_fixed(out: &mut String, f: f64, prec: usize) {
    if push_sign_or_special(out, f) {
        return;
    }
    let bits = f.to_bits();
    let exp_bits = ((bits >> 52) & 0x7ff) as i32;
    let frac = bits & ((1u64 << 52) - 1);
    let (m, e) = if exp_bits == 0 {
        (frac, -1074)
    } else {
        (frac | (1u64 << 52), exp_bits - 1075)
    };
    if e >= 0 {
        // An integer: m << e, up to 1024 bits, printed in base 10^9.
        let shift = e as usize;
        let mut limbs: Vec<u32> = alloc::vec![0; (64 + shift) / 32 + 2];
        let (w, b) = (shift / 32, shift % 32);
        let wide = (m as u128) << b;
        limbs[w] = wide as u32;
        limbs[w + 1] = (wide >> 32) as u32;
        limbs[w + 2] = (wide >> 64) as u32;
        push_big_decimal(out, &mut limbs);
        if prec > 0 {
            out.push('.');
            for _ in 0..prec {
                out.push('0');
            }
        }
        return;
    }
    let k = (-e) as usize; // value = m / 2^k
    let int_part: u64 = if k >= 64 { 0 } else { m >> k };
    // The fraction, m mod 2^k, as little-endian u32 limbs of k + 4 bits.
    let n = k / 32 + 2;
    let mut r: Vec<u32> = alloc::vec![0; n];
    r[0] = m as u32;
    r[1] = (m >> 32) as u32;
    clear_from_bit(&mut r, k);
    let mut digits: Vec<u8> = Vec::with_capacity(prec);
    for _ in 0..prec {
        // r *= 10; the digit is r >> k.
        let mut carry: u64 = 0;
        for limb in r.iter_mut() {
            let x = (*limb as u64) * 10 + carry;
            *limb = x as u32;
            carry = x >> 32;
        }
        digits.push(bits_from(&r, k, 4) as u8);
        clear_from_bit(&mut r, k);
    }
    // Round on the remainder r / 2^k against one half.
    let half = k >= 1 && bits_from(&r, k - 1, 1) == 1;
    let round_up = if !half {
        false
    } else {
        let mut below = false;
        let limb = (k - 1) / 32;
        let off = (k - 1) % 32;
        if r[limb] & ((1u32 << off) - 1) != 0 {
            below = true;
        }
        for l in &r[..limb] {
            if *l != 0 {
                below = true;
            }
        }
        if below {
            true
        } else {
            // A tie: to even.
            let last = match digits.last() {
                Some(d) => *d as u64,
                None => int_part,
            };
            last % 2 == 1
        }
    };
    let mut int_part = int_part;
    if round_up {
        let mut i = digits.len();
        let mut carry = true;
        while carry && i > 0 {
            i -= 1;
            if digits[i] == 9 {
                digits[i] = 0;
            } else {
                digits[i] += 1;
                carry = false;
            }
        }
        if carry {
            int_part += 1;
        }
    }
    push_u64(out, int_part);
    if prec > 0 {
        out.push('.');
        for d in digits {
            out.push((b'0' + d) as char);
        }
    }
}

/// `count` bits of `r` from bit `from` on.
fn bits_from(r: &[u32], from: usize, count: usize) -> u32 {
    let (w, b) = (from / 32, from % 32);
    let lo = r.get(w).copied().unwrap_or(0) as u64;
    let hi = r.get(w + 1).copied().unwrap_or(0) as u64;
    (((hi << 32) | lo) >> b) as u32 & ((1u32 << count) - 1)
}

/// Clears bit `from` and all above it.
fn clear_from_bit(r: &mut [u32], from: usize) {
    let (w, b) = (from / 32, from % 32);
    if let Some(limb) = r.get_mut(w) {
        *limb &= (1u32 << b) - 1;
    }
    for limb in r.iter_mut().skip(w + 1) {
        *limb = 0;
    }
}

/// Prints a little-endian big integer in decimal (consumes it).
fn push_big_decimal(out: &mut String, limbs: &mut [u32]) {
    let mut chunks: Vec<u32> = Vec::new();
    loop {
        let mut rem: u64 = 0;
        let mut nonzero = false;
        for limb in limbs.iter_mut().rev() {
            let x = (rem << 32) | *limb as u64;
            *limb = (x / 1_000_000_000) as u32;
            rem = x % 1_000_000_000;
            nonzero |= *limb != 0;
        }
        chunks.push(rem as u32);
        if !nonzero {
            break;
        }
    }
    let mut first = true;
    for &c in chunks.iter().rev() {
        if first {
            push_u64(out, c as u64);
            first = false;
        } else {
            let mut buf = [b'0'; 9];
            let mut x = c;
            for i in (0..9).rev() {
                buf[i] = b'0' + (x % 10) as u8;
                x /= 10;
            }
            push_ascii(out, &buf);
        }
    }
}

/// regorus's `Number::format_decimal`: integers as such, floats as Rust's
/// `Display` prints them.
pub(crate) fn push_number(out: &mut String, n: Number) {
    match n {
        Number::Int(i) => push_i64(out, i),
        Number::Float(f) => push_f64_display(out, f),
    }
}

/// regorus's `ensure_integer`: the integer a number is, if it is one that
/// converts exactly (floats up to 2^53).
pub(crate) fn exact_integer(n: Number) -> Option<i128> {
    match n {
        Number::Int(i) => Some(i as i128),
        Number::Float(f) => {
            if f.is_finite() && libm::trunc(f) == f && libm::fabs(f) <= 9_007_199_254_740_992.0 {
                Some(f as i128)
            } else {
                None
            }
        }
    }
}

/// regorus's `Number::is_integer`.
pub(crate) fn is_integer(n: Number) -> bool {
    match n {
        Number::Int(_) => true,
        Number::Float(f) => f.is_finite() && libm::trunc(f) == f,
    }
}

/// regorus's `Number::as_i64`.
pub(crate) fn as_i64(n: Number) -> Option<i64> {
    match n {
        Number::Int(i) => Some(i),
        Number::Float(f) => {
            if f.is_finite()
                && libm::trunc(f) == f
                && (-9_223_372_036_854_775_808.0..9_223_372_036_854_775_808.0).contains(&f)
            {
                Some(f as i64)
            } else {
                None
            }
        }
    }
}

/// regorus's `Number::as_u64`.
fn as_u64(n: Number) -> Option<u64> {
    match n {
        Number::Int(i) => u64::try_from(i).ok(),
        Number::Float(f) => {
            if f.is_finite() && f >= 0.0 && libm::trunc(f) == f && f < 18_446_744_073_709_551_616.0
            {
                Some(f as u64)
            } else {
                None
            }
        }
    }
}

/// `BigInt::to_str_radix` of an exact integer, or "" (regorus's
/// `format_bin`/`format_octal`/`format_hex` of a number that is none).
fn push_int_radix(out: &mut String, n: Number, radix: u64, upper: bool) {
    if let Some(i) = exact_integer(n) {
        if i < 0 {
            out.push('-');
        }
        push_radix(out, i.unsigned_abs() as u64, radix, upper);
    }
}

fn is_negative(n: Number) -> bool {
    match n {
        Number::Int(i) => i < 0,
        Number::Float(f) => f < 0.0,
    }
}

// ---------------------------------------------------------------------------
// Value text

/// A string as serde_json writes it.
pub(crate) fn push_json_string(out: &mut String, s: &str) {
    crate::json::write_str(s, out)
}

fn push_hex_digits(out: &mut String, value: u32, digits: u32) {
    for d in (0..digits).rev() {
        let nibble = (value >> (d * 4)) & 0xf;
        out.push(b"0123456789abcdef"[nibble as usize] as char);
    }
}

/// regorus's `to_string` behind `sprintf`'s `%v`/`%s`: strings raw at the
/// top (`quote` false) and JSON-quoted inside collections, numbers as
/// [`push_number`], `[a, b]`, sets `{a, b}`, objects `{k: v, ...}`.
pub(crate) fn push_rego_text(out: &mut String, v: V, quote: bool) {
    match &*v {
        Value::Lazy(_) => crate::value::never_lazy(),
        Value::Null => out.push_str("null"),
        Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Value::String(s) => {
            if quote {
                push_json_string(out, s)
            } else {
                out.push_str(s)
            }
        }
        Value::Number(n) => push_number(out, *n),
        Value::Array(a) => push_rego_seq(out, a, '[', ']'),
        Value::Set(s) => push_rego_seq(out, s, '{', '}'),
        Value::Object(o) => {
            out.push('{');
            for (i, (k, e)) in o.iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                push_rego_text(out, *k, true);
                out.push_str(": ");
                push_rego_text(out, *e, true);
            }
            out.push('}');
        }
    }
}

/// The elements of an array or set as [`push_rego_text`] writes them.
fn push_rego_seq(out: &mut String, items: &[V], open: char, close: char) {
    out.push(open);
    for (i, e) in items.iter().enumerate() {
        if i > 0 {
            out.push_str(", ");
        }
        push_rego_text(out, *e, true);
    }
    out.push(close);
}

// ---------------------------------------------------------------------------
// Builtins

#[export_name = "builtin:concat"]
pub extern "C" fn concat(delim: i32, coll: i32) -> i32 {
    let d = arg(delim);
    let d = str_arg("concat", 1, &d);
    let c = arg(coll);
    let parts = string_collection("concat", 2, &c);
    let mut out = String::new();
    for (i, p) in parts.iter().enumerate() {
        if i > 0 {
            out.push_str(d);
        }
        out.push_str(p);
    }
    ret_str(out)
}

/// Two string arguments.
fn two_strs<'a>(name: &str, a: &'a V, b: &'a V) -> (&'a str, &'a str) {
    (str_arg(name, 1, a), str_arg(name, 2, b))
}

#[export_name = "builtin:contains"]
pub extern "C" fn contains(a: i32, b: i32) -> i32 {
    let (a, b) = (arg(a), arg(b));
    let (s, t) = two_strs("contains", &a, &b);
    ret_bool(s.contains(t))
}

#[export_name = "builtin:startswith"]
pub extern "C" fn startswith(a: i32, b: i32) -> i32 {
    let (a, b) = (arg(a), arg(b));
    let (s, t) = two_strs("startswith", &a, &b);
    ret_bool(s.starts_with(t))
}

#[export_name = "builtin:endswith"]
pub extern "C" fn endswith(a: i32, b: i32) -> i32 {
    let (a, b) = (arg(a), arg(b));
    let (s, t) = two_strs("endswith", &a, &b);
    ret_bool(s.ends_with(t))
}

#[export_name = "builtin:format_int"]
pub extern "C" fn format_int(a: i32, b: i32) -> i32 {
    let n = num_arg("format_int", 1, arg(a));
    let base = num_arg("format_int", 2, arg(b));
    // regorus: the sign, then |n| floored; a float above 2^53 stays a float
    // (printed as Rust's Display in base 10, as "" in the other bases).
    let (neg, mag) = match n {
        Number::Int(i) => (i < 0, Ok(i.unsigned_abs())),
        Number::Float(f) => {
            let g = libm::floor(libm::fabs(f));
            let mag = if g <= 9_007_199_254_740_992.0 {
                Ok(g as u64)
            } else {
                Err(g)
            };
            (f < 0.0, mag)
        }
    };
    let radix = match as_u64(base) {
        Some(r @ (2 | 8 | 10 | 16)) => r,
        _ => fail("format_int: `format_int` expects base to be one of 2, 8, 10, 16"),
    };
    let mut out = String::new();
    if neg {
        out.push('-');
    }
    match mag {
        Ok(m) => push_radix(&mut out, m, radix, false),
        Err(g) if radix == 10 => push_f64_display(&mut out, g),
        Err(_) => {}
    }
    ret_str(out)
}

#[export_name = "builtin:indexof"]
pub extern "C" fn indexof(a: i32, b: i32) -> i32 {
    let (a, b) = (arg(a), arg(b));
    let (s, t) = two_strs("indexof", &a, &b);
    for (pos, (idx, _)) in s.char_indices().enumerate() {
        if s[idx..].starts_with(t) {
            return V::int(pos as i64).addr();
        }
    }
    V::int(-1).addr()
}

#[export_name = "builtin:indexof_n"]
pub extern "C" fn indexof_n(a: i32, b: i32) -> i32 {
    let (a, b) = (arg(a), arg(b));
    let (s, t) = two_strs("indexof_n", &a, &b);
    let mut positions = Vec::new();
    for (pos, (idx, _)) in s.char_indices().enumerate() {
        if s[idx..].starts_with(t) {
            positions.push(V::int(pos as i64));
        }
    }
    V::array(positions).addr()
}

#[export_name = "builtin:lower"]
pub extern "C" fn lower(a: i32) -> i32 {
    let a = arg(a);
    ret_str(str_arg("lower", 1, &a).to_lowercase())
}

#[export_name = "builtin:upper"]
pub extern "C" fn upper(a: i32) -> i32 {
    let a = arg(a);
    ret_str(str_arg("upper", 1, &a).to_uppercase())
}

#[export_name = "builtin:replace"]
pub extern "C" fn replace(a: i32, b: i32, c: i32) -> i32 {
    let (a, b, c) = (arg(a), arg(b), arg(c));
    let s = str_arg("replace", 1, &a);
    let old = str_arg("replace", 2, &b);
    let new = str_arg("replace", 3, &c);
    ret_str(s.replace(old, new))
}

#[export_name = "builtin:split"]
pub extern "C" fn split(a: i32, b: i32) -> i32 {
    let (a, b) = (arg(a), arg(b));
    let (s, d) = two_strs("split", &a, &b);
    let parts: Vec<V> = if d.is_empty() {
        // Go's strings.Split: one string per character, no empty ends.
        let mut buf = [0u8; 4];
        s.chars()
            .map(|c| V::string(c.encode_utf8(&mut buf)))
            .collect()
    } else {
        s.split(d).map(V::string).collect()
    };
    V::array(parts).addr()
}

#[export_name = "builtin:strings.any_prefix_match"]
pub extern "C" fn any_prefix_match(a: i32, b: i32) -> i32 {
    any_match("strings.any_prefix_match", a, b, |s, t| s.starts_with(t))
}

#[export_name = "builtin:strings.any_suffix_match"]
pub extern "C" fn any_suffix_match(a: i32, b: i32) -> i32 {
    any_match("strings.any_suffix_match", a, b, |s, t| s.ends_with(t))
}

#[inline(always)]
fn any_match(name: &str, a: i32, b: i32, test: impl Fn(&str, &str) -> bool) -> i32 {
    let (a, b) = (arg(a), arg(b));
    let search = string_or_collection(name, 1, &a);
    let base = string_or_collection(name, 2, &b);
    ret_bool(search.iter().any(|s| base.iter().any(|t| test(s, t))))
}

fn string_or_collection<'a>(name: &str, operand: u8, v: &'a V) -> Vec<&'a str> {
    match &**v {
        Value::String(s) => alloc::vec![&**s],
        Value::Array(_) | Value::Set(_) => string_collection(name, operand, v),
        _ => type_error(name, operand, "string, array or set of strings", *v),
    }
}

#[export_name = "builtin:strings.count"]
pub extern "C" fn strings_count(a: i32, b: i32) -> i32 {
    let (a, b) = (arg(a), arg(b));
    let (s, t) = two_strs("strings.count", &a, &b);
    if t.is_empty() {
        // regorus panics here (`windows(0)`).
        fail("strings.count: empty substring");
    }
    let n = s
        .as_bytes()
        .windows(t.len())
        .filter(|w| *w == t.as_bytes())
        .count();
    V::int(n as i64).addr()
}

#[export_name = "builtin:strings.replace_n"]
pub extern "C" fn replace_n(patterns: i32, s: i32) -> i32 {
    let (p, sv) = (arg(patterns), arg(s));
    let entries = match &*p {
        Value::Object(o) => o,
        _ => type_error("strings.replace_n", 1, "object", p),
    };
    let mut out = String::from(str_arg("strings.replace_n", 2, &sv));
    for (k, v) in entries.iter() {
        match (&**k, &**v) {
            (Value::String(k), Value::String(v)) => out = out.replace(&**k, v),
            _ => fail(
                "strings.replace_n: `strings.replace_n` expects string keys and values in pattern object.",
            ),
        }
    }
    ret_str(out)
}

#[export_name = "builtin:strings.reverse"]
pub extern "C" fn strings_reverse(a: i32) -> i32 {
    let a = arg(a);
    ret_str(str_arg("strings.reverse", 1, &a).chars().rev().collect())
}

#[export_name = "builtin:substring"]
pub extern "C" fn substring(a: i32, b: i32, c: i32) -> i32 {
    let a = arg(a);
    let s = str_arg("substring", 1, &a);
    let offset = num_arg("substring", 2, arg(b));
    let length = num_arg("substring", 3, arg(c));
    match (as_i64(offset), as_i64(length)) {
        (Some(o), _) if o < 0 => fail("substring: negative offset"),
        (Some(o), Some(l)) => {
            let start = s.chars().skip(usize::try_from(o).unwrap_or(usize::MAX));
            let l = if l < 0 {
                s.len()
            } else {
                usize::try_from(l).unwrap_or(usize::MAX)
            };
            ret_str(start.take(l).collect())
        }
        _ => ret_str(String::new()),
    }
}

#[export_name = "builtin:trim"]
pub extern "C" fn trim(a: i32, b: i32) -> i32 {
    let (a, b) = (arg(a), arg(b));
    let (s, cut) = two_strs("trim", &a, &b);
    V::string(s.trim_matches(|c| cut.contains(c))).addr()
}

#[export_name = "builtin:trim_left"]
pub extern "C" fn trim_left(a: i32, b: i32) -> i32 {
    let (a, b) = (arg(a), arg(b));
    let (s, cut) = two_strs("trim_left", &a, &b);
    V::string(s.trim_start_matches(|c| cut.contains(c))).addr()
}

#[export_name = "builtin:trim_right"]
pub extern "C" fn trim_right(a: i32, b: i32) -> i32 {
    let (a, b) = (arg(a), arg(b));
    let (s, cut) = two_strs("trim_right", &a, &b);
    V::string(s.trim_end_matches(|c| cut.contains(c))).addr()
}

#[export_name = "builtin:trim_prefix"]
pub extern "C" fn trim_prefix(a: i32, b: i32) -> i32 {
    let (av, bv) = (arg(a), arg(b));
    let (s, p) = two_strs("trim_prefix", &av, &bv);
    match s.strip_prefix(p) {
        Some(rest) => V::string(rest).addr(),
        None => av.addr(),
    }
}

#[export_name = "builtin:trim_suffix"]
pub extern "C" fn trim_suffix(a: i32, b: i32) -> i32 {
    let (av, bv) = (arg(a), arg(b));
    let (s, p) = two_strs("trim_suffix", &av, &bv);
    match s.strip_suffix(p) {
        Some(rest) => V::string(rest).addr(),
        None => av.addr(),
    }
}

#[export_name = "builtin:trim_space"]
pub extern "C" fn trim_space(a: i32) -> i32 {
    let a = arg(a);
    V::string(str_arg("trim_space", 1, &a).trim()).addr()
}

#[export_name = "builtin:type_name"]
pub extern "C" fn type_name(a: i32) -> i32 {
    V::string(arg(a).type_name()).addr()
}

/// regorus's `to_number`: null 0, booleans 0/1, numbers as they are, strings
/// read as JSON text (as serde_json reads it: surrounding whitespace allowed,
/// `"1e3"` and `"-0"` floats) that must be a number, anything else an error.
#[export_name = "builtin:to_number"]
pub extern "C" fn to_number(a: i32) -> i32 {
    let v = arg(a);
    match &*v {
        Value::Null => V::int(0).addr(),
        Value::Bool(b) => V::int(*b as i64).addr(),
        Value::Number(_) => v.addr(),
        Value::String(s) => match crate::json::parse(s.as_bytes()) {
            Some(n) if n.as_number().is_some() => n.addr(),
            _ => fail("to_number: could not parse string as number"),
        },
        _ => fail("to_number: `to_number` expects bool/number/string/null argument."),
    }
}

// ---------------------------------------------------------------------------
// sprintf, as regorus implements it (a subset of Go's verbs, with its
// quirks: a negative integer under %d/%b/%o/%x prints its sign twice, %t
// and other unknown verbs print nothing, %s/%v ignore width).

#[derive(Clone, Copy)]
enum Width {
    None,
    LeadingZeros(usize),
    Cell(usize),
    Decimals(usize),
}

fn push_width(out: &mut String, w: Width, s: &str) {
    let (n, pad) = match w {
        Width::LeadingZeros(n) => (n, '0'),
        Width::Cell(n) => (n, ' '),
        _ => (0, ' '),
    };
    for _ in s.len()..n {
        out.push(pad);
    }
    out.push_str(s);
}

fn with_text(f: impl FnOnce(&mut String)) -> String {
    let mut s = String::new();
    f(&mut s);
    s
}

/// `10f64.powi(e)` as compiler-rt's `__powidf2` computes it.
fn powi10(e: i32) -> f64 {
    let recip = e < 0;
    let mut b = e;
    let mut a = 10.0f64;
    let mut r = 1.0f64;
    loop {
        if b & 1 != 0 {
            r *= a;
        }
        b /= 2;
        if b == 0 {
            break;
        }
        a *= a;
    }
    if recip {
        1.0 / r
    } else {
        r
    }
}

/// regorus's `format_decimal_with_width` (`%.Nf`): floats rounded half away
/// from zero at N decimals, then printed as Rust's `{:.N}`; integers as
/// they are (no decimals).
fn push_fixed(out: &mut String, n: Number, d: usize) {
    match n {
        Number::Float(f) => {
            let factor = powi10(d as u32 as i32);
            let rounded = libm::round(f * factor) / factor;
            push_f64_fixed(out, rounded, d);
        }
        Number::Int(_) => push_number(out, n),
    }
}

/// regorus's `format_scientific` (`%e`).
fn push_scientific(out: &mut String, n: Number, upper: bool) {
    match n {
        Number::Float(f) => push_f64_exp(out, f, upper),
        Number::Int(i) => {
            let mut digits = String::new();
            push_u64(&mut digits, i.unsigned_abs());
            if i < 0 {
                out.push('-');
            }
            out.push_str(&digits[..1]);
            if digits.len() > 1 {
                out.push('.');
                out.push_str(&digits[1..]);
            }
            out.push(if upper { 'E' } else { 'e' });
            push_u64(out, digits.len() as u64 - 1);
        }
    }
}

/// regorus's `Number::as_f64`: finite floats, integers up to 2^53.
fn as_f64_exact(n: Number) -> Option<f64> {
    match n {
        Number::Float(f) if f.is_finite() => Some(f),
        Number::Float(_) => None,
        Number::Int(i) => {
            if i.unsigned_abs() <= 1u64 << 53 {
                Some(i as f64)
            } else {
                None
            }
        }
    }
}

#[export_name = "builtin:sprintf"]
pub extern "C" fn sprintf(f: i32, a: i32) -> i32 {
    let fv = arg(f);
    let fmt = str_arg("sprintf", 1, &fv);
    let av = arg(a);
    let args = array_arg("sprintf", 2, &av);

    let mut s = String::with_capacity(fmt.len() + 16);
    let mut idx = 0usize;
    let mut chars = fmt.chars();
    let digit = |c: char| -> u32 {
        match c.to_digit(10) {
            Some(d) => d,
            // regorus panics on a non-ASCII numeric character here.
            None => fail("sprintf: invalid digit in width"),
        }
    };
    loop {
        // Literal text up to the next `%`, copied whole.
        let rest = chars.as_str();
        let lit = rest.find('%').unwrap_or(rest.len());
        s.push_str(&rest[..lit]);
        chars = rest[lit..].chars();
        let (verb, width) = match chars.next() {
            Some('%') => match chars.next() {
                Some('%') => {
                    s.push('%');
                    continue;
                }
                Some(c) if c == '.' || c.is_numeric() => {
                    let mut w: u32 = 0;
                    if c != '.' {
                        w = digit(c);
                    }
                    while chars.clone().next().map(|c| c.is_numeric()) == Some(true) {
                        let d = match chars.next() {
                            Some(n) => digit(n),
                            None => 0,
                        };
                        w = w.wrapping_mul(10).wrapping_add(d);
                    }
                    let width = match c {
                        '0' => Width::LeadingZeros(w as usize),
                        '.' => Width::Decimals(w as usize),
                        _ => Width::Cell(w as usize),
                    };
                    match chars.next() {
                        Some(v) => (v, width),
                        None => fail(
                            "sprintf: missing format verb after `%width` at end of format string",
                        ),
                    }
                }
                Some(c) => (c, Width::None),
                None => fail("sprintf: missing format verb after `%` at end of format string"),
            },
            Some(c) => {
                s.push(c);
                continue;
            }
            None => break,
        };

        let arg = match args.get(idx) {
            Some(v) => *v,
            None => {
                let mut m = String::from("sprintf: no argument specified for format verb ");
                push_u64(&mut m, idx as u64);
                fail(&m)
            }
        };
        idx += 1;

        let num = arg.as_number();
        let int = num.filter(|n| is_integer(*n));
        let sign = |n: Number| if is_negative(n) { "-" } else { "" };
        match (verb, &*arg) {
            ('s', Value::String(sv)) => s.push_str(sv),
            ('s', _) | ('v', _) => push_rego_text(&mut s, arg, false),
            ('b', _) if int.is_some() => {
                let n = int.unwrap_or(Number::Int(0));
                s.push_str(sign(n));
                push_int_radix(&mut s, n, 2, false);
            }
            ('c', _) if int.is_some() => {
                let n = int.unwrap_or(Number::Int(0));
                match as_u64(n).and_then(|i| char::from_u32(i as u32)) {
                    Some(c) => s.push(c),
                    None => {
                        let mut m = String::from("sprintf: invalid value ");
                        push_number(&mut m, n);
                        m.push_str(" for format verb c.");
                        fail(&m)
                    }
                }
            }
            ('d', _) if int.is_some() => {
                let n = int.unwrap_or(Number::Int(0));
                s.push_str(sign(n));
                let t = with_text(|t| push_number(t, n));
                push_width(&mut s, width, &t);
            }
            ('o' | 'O', _) if int.is_some() => {
                let n = int.unwrap_or(Number::Int(0));
                s.push_str(sign(n));
                let t = with_text(|t| {
                    t.push_str(if verb == 'o' { "0O" } else { "0o" });
                    push_int_radix(t, n, 8, false);
                });
                push_width(&mut s, width, &t);
            }
            ('x' | 'X', _) if int.is_some() => {
                let n = int.unwrap_or(Number::Int(0));
                s.push_str(sign(n));
                let t = with_text(|t| push_int_radix(t, n, 16, verb == 'X'));
                push_width(&mut s, width, &t);
            }
            ('e' | 'E', Value::Number(n)) => push_scientific(&mut s, *n, verb == 'E'),
            ('f' | 'F', Value::Number(n)) => match width {
                Width::Decimals(d) => push_fixed(&mut s, *n, d),
                _ => {
                    let t = with_text(|t| push_number(t, *n));
                    push_width(&mut s, width, &t);
                }
            },
            ('g' | 'G', Value::Number(n)) => {
                let f = match as_f64_exact(*n) {
                    Some(f) => f,
                    None => fail("sprintf: cannot print large float using g format specified"),
                };
                s.push_str(sign(*n));
                let exponent = (f.to_bits() >> 52) & 0x7ff;
                if exponent > 32 {
                    push_f64_exp(&mut s, f, verb == 'G');
                } else {
                    push_f64_display(&mut s, f);
                }
            }
            (_, Value::Number(_)) => {
                let mut m = String::from("sprintf: number specified for format verb ");
                m.push(verb);
                m.push('.');
                fail(&m)
            }
            ('q', Value::String(sv)) => push_go_quoted(&mut s, sv, width),
            ('+', _) if chars.next() == Some('v') => {
                fail("sprintf: Go-syntax fields names format verm %#v is not supported.")
            }
            ('T' | '#' | 'q' | 'p', _) => {
                fail("sprintf: Go-syntax format verbs %#v. %q, %p and %T are not supported.")
            }
            _ => {}
        }
    }

    if idx < args.len() {
        let mut m = String::from("sprintf: extra arguments (");
        push_u64(&mut m, args.len() as u64);
        m.push_str(") specified for ");
        push_u64(&mut m, idx as u64);
        m.push_str(" format verbs.");
        fail(&m)
    }
    ret_str(s)
}

/// `%q`: Go's `strconv.Quote`; precision truncates the input (in
/// characters), width pads the quoted text (counted in characters).
fn push_go_quoted(out: &mut String, input: &str, width: Width) {
    let input = match width {
        Width::Decimals(p) => match input.char_indices().nth(p) {
            Some((i, _)) => &input[..i],
            None => input,
        },
        _ => input,
    };
    let (pad, pad_char) = match width {
        Width::Cell(w) => (w.saturating_sub(go_quoted_len(input)), ' '),
        Width::LeadingZeros(w) => (w.saturating_sub(go_quoted_len(input)), '0'),
        _ => (0, ' '),
    };
    for _ in 0..pad {
        out.push(pad_char);
    }
    out.push('"');
    for c in input.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\u{7}' => out.push_str("\\a"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{b}' => out.push_str("\\v"),
            c if go_is_print(c) => out.push(c),
            c if (c as u32) <= 0x7f => {
                out.push_str("\\x");
                push_hex_digits(out, c as u32, 2);
            }
            c if (c as u32) <= 0xffff => {
                out.push_str("\\u");
                push_hex_digits(out, c as u32, 4);
            }
            c => {
                out.push_str("\\U");
                push_hex_digits(out, c as u32, 8);
            }
        }
    }
    out.push('"');
}

fn go_quoted_len(s: &str) -> usize {
    s.chars().fold(2usize, |len, c| {
        let n = match c {
            '"' | '\\' | '\u{7}' | '\u{8}' | '\u{c}' | '\n' | '\r' | '\t' | '\u{b}' => 2,
            c if go_is_print(c) => 1,
            c if (c as u32) <= 0x7f => 4,
            c if (c as u32) <= 0xffff => 6,
            _ => 10,
        };
        len.saturating_add(n)
    })
}

/// Go's `strconv.IsPrint`.
fn go_is_print(c: char) -> bool {
    let r = c as u32;
    if r <= 0xff {
        if (0x20..=0x7e).contains(&r) {
            return true;
        }
        if (0xa1..=0xff).contains(&r) {
            return r != 0xad;
        }
        return false;
    }
    if r < 1 << 16 {
        let r = r as u16;
        return in_ranges(IS_PRINT_16, r) && IS_NOT_PRINT_16.binary_search(&r).is_err();
    }
    if !in_ranges(IS_PRINT_32, r) {
        return false;
    }
    if r >= 0x20000 {
        return true;
    }
    IS_NOT_PRINT_32
        .binary_search(&((r - 0x10000) as u16))
        .is_err()
}

/// Whether `value` is in one of the inclusive `[lo, hi]` pairs of `ranges`.
fn in_ranges<T: Copy + Ord>(ranges: &[T], value: T) -> bool {
    let index = match ranges.binary_search(&value) {
        Ok(i) | Err(i) => i,
    };
    match (ranges.get(index & !1), ranges.get(index | 1)) {
        (Some(lo), Some(hi)) => value >= *lo && value <= *hi,
        _ => false,
    }
}

// Go's strconv.IsPrint tables, copied from regorus 0.14.1 (src/builtins/strings/go_is_print.rs),
// adapted from Go's generated strconv/isprint.go (Copyright 2013 The Go Authors, BSD licence).
const IS_PRINT_16: &[u16] = &[
    0x0020, 0x007e, 0x00a1, 0x0377, 0x037a, 0x037f, 0x0384, 0x0556, 0x0559, 0x058a, 0x058d, 0x05c7,
    0x05d0, 0x05ea, 0x05ef, 0x05f4, 0x0606, 0x070d, 0x0710, 0x074a, 0x074d, 0x07b1, 0x07c0, 0x07fa,
    0x07fd, 0x082d, 0x0830, 0x085b, 0x085e, 0x086a, 0x0870, 0x088f, 0x0897, 0x098c, 0x098f, 0x0990,
    0x0993, 0x09b2, 0x09b6, 0x09b9, 0x09bc, 0x09c4, 0x09c7, 0x09c8, 0x09cb, 0x09ce, 0x09d7, 0x09d7,
    0x09dc, 0x09e3, 0x09e6, 0x09fe, 0x0a01, 0x0a0a, 0x0a0f, 0x0a10, 0x0a13, 0x0a39, 0x0a3c, 0x0a42,
    0x0a47, 0x0a48, 0x0a4b, 0x0a4d, 0x0a51, 0x0a51, 0x0a59, 0x0a5e, 0x0a66, 0x0a76, 0x0a81, 0x0ab9,
    0x0abc, 0x0acd, 0x0ad0, 0x0ad0, 0x0ae0, 0x0ae3, 0x0ae6, 0x0af1, 0x0af9, 0x0b0c, 0x0b0f, 0x0b10,
    0x0b13, 0x0b39, 0x0b3c, 0x0b44, 0x0b47, 0x0b48, 0x0b4b, 0x0b4d, 0x0b55, 0x0b57, 0x0b5c, 0x0b63,
    0x0b66, 0x0b77, 0x0b82, 0x0b8a, 0x0b8e, 0x0b95, 0x0b99, 0x0b9f, 0x0ba3, 0x0ba4, 0x0ba8, 0x0baa,
    0x0bae, 0x0bb9, 0x0bbe, 0x0bc2, 0x0bc6, 0x0bcd, 0x0bd0, 0x0bd0, 0x0bd7, 0x0bd7, 0x0be6, 0x0bfa,
    0x0c00, 0x0c39, 0x0c3c, 0x0c4d, 0x0c55, 0x0c5d, 0x0c60, 0x0c63, 0x0c66, 0x0c6f, 0x0c77, 0x0cb9,
    0x0cbc, 0x0ccd, 0x0cd5, 0x0cd6, 0x0cdc, 0x0ce3, 0x0ce6, 0x0cf3, 0x0d00, 0x0d4f, 0x0d54, 0x0d63,
    0x0d66, 0x0d96, 0x0d9a, 0x0dbd, 0x0dc0, 0x0dc6, 0x0dca, 0x0dca, 0x0dcf, 0x0ddf, 0x0de6, 0x0def,
    0x0df2, 0x0df4, 0x0e01, 0x0e3a, 0x0e3f, 0x0e5b, 0x0e81, 0x0ebd, 0x0ec0, 0x0ed9, 0x0edc, 0x0edf,
    0x0f00, 0x0f6c, 0x0f71, 0x0fda, 0x1000, 0x10c7, 0x10cd, 0x10cd, 0x10d0, 0x124d, 0x1250, 0x125d,
    0x1260, 0x128d, 0x1290, 0x12b5, 0x12b8, 0x12c5, 0x12c8, 0x1315, 0x1318, 0x135a, 0x135d, 0x137c,
    0x1380, 0x1399, 0x13a0, 0x13f5, 0x13f8, 0x13fd, 0x1400, 0x169c, 0x16a0, 0x16f8, 0x1700, 0x1715,
    0x171f, 0x1736, 0x1740, 0x1753, 0x1760, 0x1773, 0x1780, 0x17dd, 0x17e0, 0x17e9, 0x17f0, 0x17f9,
    0x1800, 0x1819, 0x1820, 0x1878, 0x1880, 0x18aa, 0x18b0, 0x18f5, 0x1900, 0x192b, 0x1930, 0x193b,
    0x1940, 0x1940, 0x1944, 0x196d, 0x1970, 0x1974, 0x1980, 0x19ab, 0x19b0, 0x19c9, 0x19d0, 0x19da,
    0x19de, 0x1a1b, 0x1a1e, 0x1a7c, 0x1a7f, 0x1a89, 0x1a90, 0x1a99, 0x1aa0, 0x1aad, 0x1ab0, 0x1add,
    0x1ae0, 0x1aeb, 0x1b00, 0x1bf3, 0x1bfc, 0x1c37, 0x1c3b, 0x1c49, 0x1c4d, 0x1c8a, 0x1c90, 0x1cba,
    0x1cbd, 0x1cc7, 0x1cd0, 0x1cfa, 0x1d00, 0x1f15, 0x1f18, 0x1f1d, 0x1f20, 0x1f45, 0x1f48, 0x1f4d,
    0x1f50, 0x1f7d, 0x1f80, 0x1fd3, 0x1fd6, 0x1fef, 0x1ff2, 0x1ffe, 0x2010, 0x2027, 0x2030, 0x205e,
    0x2070, 0x2071, 0x2074, 0x209c, 0x20a0, 0x20c1, 0x20d0, 0x20f0, 0x2100, 0x218b, 0x2190, 0x2429,
    0x2440, 0x244a, 0x2460, 0x2b73, 0x2b76, 0x2cf3, 0x2cf9, 0x2d27, 0x2d2d, 0x2d2d, 0x2d30, 0x2d67,
    0x2d6f, 0x2d70, 0x2d7f, 0x2d96, 0x2da0, 0x2e5d, 0x2e80, 0x2ef3, 0x2f00, 0x2fd5, 0x2ff0, 0x3096,
    0x3099, 0x30ff, 0x3105, 0x31e5, 0x31ef, 0xa48c, 0xa490, 0xa4c6, 0xa4d0, 0xa62b, 0xa640, 0xa6f7,
    0xa700, 0xa7dc, 0xa7f1, 0xa82c, 0xa830, 0xa839, 0xa840, 0xa877, 0xa880, 0xa8c5, 0xa8ce, 0xa8d9,
    0xa8e0, 0xa953, 0xa95f, 0xa97c, 0xa980, 0xa9d9, 0xa9de, 0xaa36, 0xaa40, 0xaa4d, 0xaa50, 0xaa59,
    0xaa5c, 0xaac2, 0xaadb, 0xaaf6, 0xab01, 0xab06, 0xab09, 0xab0e, 0xab11, 0xab16, 0xab20, 0xab6b,
    0xab70, 0xabed, 0xabf0, 0xabf9, 0xac00, 0xd7a3, 0xd7b0, 0xd7c6, 0xd7cb, 0xd7fb, 0xf900, 0xfa6d,
    0xfa70, 0xfad9, 0xfb00, 0xfb06, 0xfb13, 0xfb17, 0xfb1d, 0xfdcf, 0xfdf0, 0xfe19, 0xfe20, 0xfe6b,
    0xfe70, 0xfefc, 0xff01, 0xffbe, 0xffc2, 0xffc7, 0xffca, 0xffcf, 0xffd2, 0xffd7, 0xffda, 0xffdc,
    0xffe0, 0xffee, 0xfffc, 0xfffd,
];

const IS_NOT_PRINT_16: &[u16] = &[
    0x00ad, 0x038b, 0x038d, 0x03a2, 0x0530, 0x0590, 0x061c, 0x06dd, 0x083f, 0x085f, 0x08e2, 0x0984,
    0x09a9, 0x09b1, 0x09de, 0x0a04, 0x0a29, 0x0a31, 0x0a34, 0x0a37, 0x0a3d, 0x0a5d, 0x0a84, 0x0a8e,
    0x0a92, 0x0aa9, 0x0ab1, 0x0ab4, 0x0ac6, 0x0aca, 0x0b00, 0x0b04, 0x0b29, 0x0b31, 0x0b34, 0x0b5e,
    0x0b84, 0x0b91, 0x0b9b, 0x0b9d, 0x0bc9, 0x0c0d, 0x0c11, 0x0c29, 0x0c45, 0x0c49, 0x0c57, 0x0c5b,
    0x0c8d, 0x0c91, 0x0ca9, 0x0cb4, 0x0cc5, 0x0cc9, 0x0cdf, 0x0cf0, 0x0d0d, 0x0d11, 0x0d45, 0x0d49,
    0x0d80, 0x0d84, 0x0db2, 0x0dbc, 0x0dd5, 0x0dd7, 0x0e83, 0x0e85, 0x0e8b, 0x0ea4, 0x0ea6, 0x0ec5,
    0x0ec7, 0x0ecf, 0x0f48, 0x0f98, 0x0fbd, 0x0fcd, 0x10c6, 0x1249, 0x1257, 0x1259, 0x1289, 0x12b1,
    0x12bf, 0x12c1, 0x12d7, 0x1311, 0x1680, 0x176d, 0x1771, 0x180e, 0x191f, 0x1a5f, 0x1b4d, 0x1f58,
    0x1f5a, 0x1f5c, 0x1f5e, 0x1fb5, 0x1fc5, 0x1fdc, 0x1ff5, 0x208f, 0x2d26, 0x2da7, 0x2daf, 0x2db7,
    0x2dbf, 0x2dc7, 0x2dcf, 0x2dd7, 0x2ddf, 0x2e9a, 0x3000, 0x3040, 0x3130, 0x318f, 0x321f, 0xa9ce,
    0xa9ff, 0xab27, 0xab2f, 0xfb37, 0xfb3d, 0xfb3f, 0xfb42, 0xfb45, 0xfe53, 0xfe67, 0xfe75, 0xffe7,
];

const IS_PRINT_32: &[u32] = &[
    0x010000, 0x01004d, 0x010050, 0x01005d, 0x010080, 0x0100fa, 0x010100, 0x010102, 0x010107,
    0x010133, 0x010137, 0x01019c, 0x0101a0, 0x0101a0, 0x0101d0, 0x0101fd, 0x010280, 0x01029c,
    0x0102a0, 0x0102d0, 0x0102e0, 0x0102fb, 0x010300, 0x010323, 0x01032d, 0x01034a, 0x010350,
    0x01037a, 0x010380, 0x0103c3, 0x0103c8, 0x0103d5, 0x010400, 0x01049d, 0x0104a0, 0x0104a9,
    0x0104b0, 0x0104d3, 0x0104d8, 0x0104fb, 0x010500, 0x010527, 0x010530, 0x010563, 0x01056f,
    0x0105bc, 0x0105c0, 0x0105f3, 0x010600, 0x010736, 0x010740, 0x010755, 0x010760, 0x010767,
    0x010780, 0x0107ba, 0x010800, 0x010805, 0x010808, 0x010838, 0x01083c, 0x01083c, 0x01083f,
    0x01089e, 0x0108a7, 0x0108af, 0x0108e0, 0x0108f5, 0x0108fb, 0x01091b, 0x01091f, 0x010939,
    0x01093f, 0x010959, 0x010980, 0x0109b7, 0x0109bc, 0x0109cf, 0x0109d2, 0x010a06, 0x010a0c,
    0x010a35, 0x010a38, 0x010a3a, 0x010a3f, 0x010a48, 0x010a50, 0x010a58, 0x010a60, 0x010a9f,
    0x010ac0, 0x010ae6, 0x010aeb, 0x010af6, 0x010b00, 0x010b35, 0x010b39, 0x010b55, 0x010b58,
    0x010b72, 0x010b78, 0x010b91, 0x010b99, 0x010b9c, 0x010ba9, 0x010baf, 0x010c00, 0x010c48,
    0x010c80, 0x010cb2, 0x010cc0, 0x010cf2, 0x010cfa, 0x010d27, 0x010d30, 0x010d39, 0x010d40,
    0x010d65, 0x010d69, 0x010d85, 0x010d8e, 0x010d8f, 0x010e60, 0x010ead, 0x010eb0, 0x010eb1,
    0x010ec2, 0x010ec7, 0x010ed0, 0x010ed8, 0x010efa, 0x010f27, 0x010f30, 0x010f59, 0x010f70,
    0x010f89, 0x010fb0, 0x010fcb, 0x010fe0, 0x010ff6, 0x011000, 0x01104d, 0x011052, 0x011075,
    0x01107f, 0x0110c2, 0x0110d0, 0x0110e8, 0x0110f0, 0x0110f9, 0x011100, 0x011147, 0x011150,
    0x011176, 0x011180, 0x0111f4, 0x011200, 0x011241, 0x011280, 0x0112a9, 0x0112b0, 0x0112ea,
    0x0112f0, 0x0112f9, 0x011300, 0x01130c, 0x01130f, 0x011310, 0x011313, 0x011344, 0x011347,
    0x011348, 0x01134b, 0x01134d, 0x011350, 0x011350, 0x011357, 0x011357, 0x01135d, 0x011363,
    0x011366, 0x01136c, 0x011370, 0x011374, 0x011380, 0x01138b, 0x01138e, 0x0113c2, 0x0113c5,
    0x0113d8, 0x0113e1, 0x0113e2, 0x011400, 0x011461, 0x011480, 0x0114c7, 0x0114d0, 0x0114d9,
    0x011580, 0x0115b5, 0x0115b8, 0x0115dd, 0x011600, 0x011644, 0x011650, 0x011659, 0x011660,
    0x01166c, 0x011680, 0x0116b9, 0x0116c0, 0x0116c9, 0x0116d0, 0x0116e3, 0x011700, 0x01171a,
    0x01171d, 0x01172b, 0x011730, 0x011746, 0x011800, 0x01183b, 0x0118a0, 0x0118f2, 0x0118ff,
    0x011906, 0x011909, 0x011909, 0x01190c, 0x011938, 0x01193b, 0x011946, 0x011950, 0x011959,
    0x0119a0, 0x0119a7, 0x0119aa, 0x0119d7, 0x0119da, 0x0119e4, 0x011a00, 0x011a47, 0x011a50,
    0x011aa2, 0x011ab0, 0x011af8, 0x011b00, 0x011b09, 0x011b60, 0x011b67, 0x011bc0, 0x011be1,
    0x011bf0, 0x011bf9, 0x011c00, 0x011c45, 0x011c50, 0x011c6c, 0x011c70, 0x011c8f, 0x011c92,
    0x011cb6, 0x011d00, 0x011d36, 0x011d3a, 0x011d47, 0x011d50, 0x011d59, 0x011d60, 0x011d98,
    0x011da0, 0x011da9, 0x011db0, 0x011ddb, 0x011de0, 0x011de9, 0x011ee0, 0x011ef8, 0x011f00,
    0x011f3a, 0x011f3e, 0x011f5a, 0x011fb0, 0x011fb0, 0x011fc0, 0x011ff1, 0x011fff, 0x012399,
    0x012400, 0x012474, 0x012480, 0x012543, 0x012f90, 0x012ff2, 0x013000, 0x01342f, 0x013440,
    0x013455, 0x013460, 0x0143fa, 0x014400, 0x014646, 0x016100, 0x016139, 0x016800, 0x016a38,
    0x016a40, 0x016a69, 0x016a6e, 0x016ac9, 0x016ad0, 0x016aed, 0x016af0, 0x016af5, 0x016b00,
    0x016b45, 0x016b50, 0x016b77, 0x016b7d, 0x016b8f, 0x016d40, 0x016d79, 0x016e40, 0x016e9a,
    0x016ea0, 0x016eb8, 0x016ebb, 0x016ed3, 0x016f00, 0x016f4a, 0x016f4f, 0x016f87, 0x016f8f,
    0x016f9f, 0x016fe0, 0x016fe4, 0x016ff0, 0x016ff6, 0x017000, 0x018cd5, 0x018cff, 0x018d1e,
    0x018d80, 0x018df2, 0x01aff0, 0x01b122, 0x01b132, 0x01b132, 0x01b150, 0x01b152, 0x01b155,
    0x01b155, 0x01b164, 0x01b167, 0x01b170, 0x01b2fb, 0x01bc00, 0x01bc6a, 0x01bc70, 0x01bc7c,
    0x01bc80, 0x01bc88, 0x01bc90, 0x01bc99, 0x01bc9c, 0x01bc9f, 0x01cc00, 0x01ccfc, 0x01cd00,
    0x01ceb3, 0x01ceba, 0x01ced0, 0x01cee0, 0x01cef0, 0x01cf00, 0x01cf2d, 0x01cf30, 0x01cf46,
    0x01cf50, 0x01cfc3, 0x01d000, 0x01d0f5, 0x01d100, 0x01d126, 0x01d129, 0x01d172, 0x01d17b,
    0x01d1ea, 0x01d200, 0x01d245, 0x01d2c0, 0x01d2d3, 0x01d2e0, 0x01d2f3, 0x01d300, 0x01d356,
    0x01d360, 0x01d378, 0x01d400, 0x01d49f, 0x01d4a2, 0x01d4a2, 0x01d4a5, 0x01d4a6, 0x01d4a9,
    0x01d50a, 0x01d50d, 0x01d546, 0x01d54a, 0x01d6a5, 0x01d6a8, 0x01d7cb, 0x01d7ce, 0x01da8b,
    0x01da9b, 0x01daaf, 0x01df00, 0x01df1e, 0x01df25, 0x01df2a, 0x01e000, 0x01e018, 0x01e01b,
    0x01e02a, 0x01e030, 0x01e06d, 0x01e08f, 0x01e08f, 0x01e100, 0x01e12c, 0x01e130, 0x01e13d,
    0x01e140, 0x01e149, 0x01e14e, 0x01e14f, 0x01e290, 0x01e2ae, 0x01e2c0, 0x01e2f9, 0x01e2ff,
    0x01e2ff, 0x01e4d0, 0x01e4f9, 0x01e5d0, 0x01e5fa, 0x01e5ff, 0x01e5ff, 0x01e6c0, 0x01e6f5,
    0x01e6fe, 0x01e6ff, 0x01e7e0, 0x01e8c4, 0x01e8c7, 0x01e8d6, 0x01e900, 0x01e94b, 0x01e950,
    0x01e959, 0x01e95e, 0x01e95f, 0x01ec71, 0x01ecb4, 0x01ed01, 0x01ed3d, 0x01ee00, 0x01ee24,
    0x01ee27, 0x01ee3b, 0x01ee42, 0x01ee42, 0x01ee47, 0x01ee54, 0x01ee57, 0x01ee64, 0x01ee67,
    0x01ee9b, 0x01eea1, 0x01eebb, 0x01eef0, 0x01eef1, 0x01f000, 0x01f02b, 0x01f030, 0x01f093,
    0x01f0a0, 0x01f0ae, 0x01f0b1, 0x01f0f5, 0x01f100, 0x01f1ad, 0x01f1e6, 0x01f202, 0x01f210,
    0x01f23b, 0x01f240, 0x01f248, 0x01f250, 0x01f251, 0x01f260, 0x01f265, 0x01f300, 0x01f6d8,
    0x01f6dc, 0x01f6ec, 0x01f6f0, 0x01f6fc, 0x01f700, 0x01f7d9, 0x01f7e0, 0x01f7eb, 0x01f7f0,
    0x01f7f0, 0x01f800, 0x01f80b, 0x01f810, 0x01f847, 0x01f850, 0x01f859, 0x01f860, 0x01f887,
    0x01f890, 0x01f8ad, 0x01f8b0, 0x01f8bb, 0x01f8c0, 0x01f8c1, 0x01f8d0, 0x01f8d8, 0x01f900,
    0x01fa57, 0x01fa60, 0x01fa6d, 0x01fa70, 0x01fa7c, 0x01fa80, 0x01fa8a, 0x01fa8e, 0x01fac8,
    0x01facd, 0x01fadc, 0x01fadf, 0x01faea, 0x01faef, 0x01faf8, 0x01fb00, 0x01fbfa, 0x020000,
    0x02a6df, 0x02a700, 0x02b81d, 0x02b820, 0x02cead, 0x02ceb0, 0x02ebe0, 0x02ebf0, 0x02ee5d,
    0x02f800, 0x02fa1d, 0x030000, 0x03134a, 0x031350, 0x033479, 0x0e0100, 0x0e01ef,
];

const IS_NOT_PRINT_32: &[u16] = &[
    // Add 0x10000 to each entry.
    0x000c, 0x0027, 0x003b, 0x003e, 0x018f, 0x039e, 0x057b, 0x058b, 0x0593, 0x0596, 0x05a2, 0x05b2,
    0x05ba, 0x0786, 0x07b1, 0x0809, 0x0836, 0x0856, 0x08f3, 0x0a04, 0x0a14, 0x0a18, 0x0e7f, 0x0eaa,
    0x10bd, 0x1135, 0x11e0, 0x1212, 0x1287, 0x1289, 0x128e, 0x129e, 0x1304, 0x1329, 0x1331, 0x1334,
    0x133a, 0x138a, 0x138f, 0x13b6, 0x13c1, 0x13c6, 0x13cb, 0x13d6, 0x145c, 0x1914, 0x1917, 0x1936,
    0x1c09, 0x1c37, 0x1ca8, 0x1d07, 0x1d0a, 0x1d3b, 0x1d3e, 0x1d66, 0x1d69, 0x1d8f, 0x1d92, 0x1f11,
    0x246f, 0x6a5f, 0x6abf, 0x6b5a, 0x6b62, 0xaff4, 0xaffc, 0xafff, 0xd455, 0xd49d, 0xd4ad, 0xd4ba,
    0xd4bc, 0xd4c4, 0xd506, 0xd515, 0xd51d, 0xd53a, 0xd53f, 0xd545, 0xd551, 0xdaa0, 0xe007, 0xe022,
    0xe025, 0xe6df, 0xe7e7, 0xe7ec, 0xe7ef, 0xe7ff, 0xee04, 0xee20, 0xee23, 0xee28, 0xee33, 0xee38,
    0xee3a, 0xee48, 0xee4a, 0xee4c, 0xee50, 0xee53, 0xee58, 0xee5a, 0xee5c, 0xee5e, 0xee60, 0xee63,
    0xee6b, 0xee73, 0xee78, 0xee7d, 0xee7f, 0xee8a, 0xeea4, 0xeeaa, 0xf0c0, 0xf0d0, 0xfac7, 0xfb93,
];
