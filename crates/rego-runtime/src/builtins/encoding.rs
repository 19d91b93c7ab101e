//! Encoding builtins: `base64.*`, `base64url.*`, `hex.*`, `json.marshal`,
//! `json.marshal_with_options`, `json.unmarshal`, `json.is_valid`,
//! `urlquery.*`, `semver.*` and `units.*`, as regorus 0.14.1 evaluates them
//! (its builtins/encoding.rs, semver.rs and units.rs, with the data-encoding,
//! url and semver crates' rules written out here), errors included.

use alloc::string::String;
use alloc::vec::Vec;
use core::cmp::Ordering;

use crate::abi::fail;
use crate::builtins::collections::expects;
use crate::json;
use crate::value::{Number, Value, V};

/// The value of an argument (the generated code never passes undefined).
fn arg(a: i32) -> V {
    match unsafe { V::from_addr(a) } {
        Some(v) => v,
        None => fail("policy runtime: undefined builtin argument"),
    }
}

/// The text of a string argument; fails as regorus's `ensure_string`.
fn str_arg<'a>(name: &str, a: i32) -> &'a str {
    let v = arg(a);
    match &*v {
        // SAFETY of the lifetime: values live until the host resets the heap.
        Value::String(s) => unsafe { &*(&**s as *const str) },
        _ => expects(name, "string", v),
    }
}

/// Fails with "`name`: <text>".
fn fail_named(name: &str, text: &str) -> ! {
    let mut m = String::new();
    m.push('`');
    m.push_str(name);
    m.push_str("`: ");
    m.push_str(text);
    fail(&m)
}

/// A string value of decoded bytes, invalid UTF-8 replaced (regorus's
/// `String::from_utf8_lossy`).
fn lossy(bytes: Vec<u8>) -> V {
    match String::from_utf8(bytes) {
        Ok(s) => V::string_owned(s),
        Err(e) => V::string_owned(String::from_utf8_lossy(e.as_bytes()).into_owned()),
    }
}

// ---------------------------------------------------------------- base64

const STD: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
const URL: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

fn b64_encode(input: &[u8], alphabet: &[u8; 64], pad: bool) -> String {
    let mut out = Vec::with_capacity(input.len().div_ceil(3) * 4);
    for chunk in input.chunks(3) {
        let b = [
            chunk[0],
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        let chars = chunk.len() + 1;
        for i in 0..4 {
            if i < chars {
                out.push(alphabet[((n >> (18 - 6 * i)) & 63) as usize]);
            } else if pad {
                out.push(b'=');
            }
        }
    }
    // SAFETY: the alphabet and padding are ASCII.
    unsafe { String::from_utf8_unchecked(out) }
}

fn b64_value(c: u8, url: bool) -> Option<u32> {
    Some(u32::from(match c {
        b'A'..=b'Z' => c - b'A',
        b'a'..=b'z' => c - b'a' + 26,
        b'0'..=b'9' => c - b'0' + 52,
        b'+' if !url => 62,
        b'/' if !url => 63,
        b'-' if url => 62,
        b'_' if url => 63,
        _ => return None,
    }))
}

/// Decodes 2 to 4 symbols (no padding) to 1 to 3 bytes; the bits past the
/// last byte must be zero (data-encoding's trailing bits check).
fn b64_block(block: &[u8], url: bool, out: &mut Vec<u8>) -> Option<()> {
    let mut n = 0u32;
    for (i, &c) in block.iter().enumerate() {
        n |= b64_value(c, url)? << (18 - 6 * i);
    }
    let bytes = match block.len() {
        4 => 3,
        3 => 2,
        2 => 1,
        _ => return None,
    };
    if n & ((1 << (24 - 8 * bytes)) - 1) != 0 {
        return None;
    }
    for i in 0..bytes {
        out.push((n >> (16 - 8 * i)) as u8);
    }
    Some(())
}

/// data-encoding's padded decoding (BASE64, BASE64URL): blocks of four,
/// each block may end in one or two `=` (so padded inputs may be
/// concatenated).
fn b64_decode_pad(input: &[u8], url: bool) -> Option<Vec<u8>> {
    if !input.len().is_multiple_of(4) {
        return None;
    }
    let mut out = Vec::with_capacity(input.len() / 4 * 3);
    for block in input.chunks(4) {
        let pads = block.iter().rev().take_while(|&&c| c == b'=').count();
        b64_block(&block[..4 - pads], url, &mut out)?;
    }
    Some(out)
}

/// data-encoding's unpadded decoding (BASE64URL_NOPAD).
fn b64_decode_nopad(input: &[u8], url: bool) -> Option<Vec<u8>> {
    if input.len() % 4 == 1 {
        return None;
    }
    let mut out = Vec::with_capacity(input.len() / 4 * 3 + 2);
    for block in input.chunks(4) {
        b64_block(block, url, &mut out)?;
    }
    Some(out)
}

#[export_name = "builtin:base64.encode"]
pub extern "C" fn base64_encode(s: i32) -> i32 {
    let s = str_arg("base64.encode", s);
    V::string_owned(b64_encode(s.as_bytes(), STD, true)).addr()
}

#[export_name = "builtin:base64.decode"]
pub extern "C" fn base64_decode(s: i32) -> i32 {
    let s = str_arg("base64.decode", s);
    match b64_decode_pad(s.as_bytes(), false) {
        Some(b) => lossy(b).addr(),
        None => fail_named("base64.decode", "decode failed"),
    }
}

#[export_name = "builtin:base64.is_valid"]
pub extern "C" fn base64_is_valid(s: i32) -> i32 {
    let s = str_arg("base64.is_valid", s);
    V::bool(b64_decode_pad(s.as_bytes(), false).is_some()).addr()
}

#[export_name = "builtin:base64url.encode"]
pub extern "C" fn base64url_encode(s: i32) -> i32 {
    let s = str_arg("base64url.encode", s);
    V::string_owned(b64_encode(s.as_bytes(), URL, true)).addr()
}

#[export_name = "builtin:base64url.encode_no_pad"]
pub extern "C" fn base64url_encode_no_pad(s: i32) -> i32 {
    let s = str_arg("base64url.encode_no_pad", s);
    V::string_owned(b64_encode(s.as_bytes(), URL, false)).addr()
}

#[export_name = "builtin:base64url.decode"]
pub extern "C" fn base64url_decode(s: i32) -> i32 {
    let s = str_arg("base64url.decode", s);
    let b = s.as_bytes();
    match b64_decode_pad(b, true).or_else(|| b64_decode_nopad(b, true)) {
        Some(b) => lossy(b).addr(),
        None => fail_named("base64url.decode", "not a valid url"),
    }
}

// ---------------------------------------------------------------- hex

#[export_name = "builtin:hex.encode"]
pub extern "C" fn hex_encode(s: i32) -> i32 {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let s = str_arg("hex.encode", s);
    let mut out = Vec::with_capacity(s.len() * 2);
    for &b in s.as_bytes() {
        out.push(HEX[(b >> 4) as usize]);
        out.push(HEX[(b & 15) as usize]);
    }
    // SAFETY: hex digits are ASCII.
    V::string_owned(unsafe { String::from_utf8_unchecked(out) }).addr()
}

fn hex_digit(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    }
}

#[export_name = "builtin:hex.decode"]
pub extern "C" fn hex_decode(s: i32) -> i32 {
    let s = str_arg("hex.decode", s).as_bytes();
    let mut out = Vec::with_capacity(s.len() / 2);
    let ok = s.len() % 2 == 0
        && s.chunks(2)
            .all(|p| match (hex_digit(p[0]), hex_digit(p[1])) {
                (Some(h), Some(l)) => {
                    out.push(h << 4 | l);
                    true
                }
                _ => false,
            });
    if !ok {
        fail_named("hex.decode", "decode failure");
    }
    lossy(out).addr()
}

// ---------------------------------------------------------------- json

#[export_name = "builtin:json.marshal"]
pub extern "C" fn json_marshal(v: i32) -> i32 {
    let mut out = String::new();
    json::dump(arg(v), &mut out);
    V::string_owned(out).addr()
}

/// serde_json's `to_string_pretty` (two spaces a level) of `v`.
fn dump_pretty(v: V, level: usize, out: &mut String) {
    fn newline(level: usize, out: &mut String) {
        out.push('\n');
        for _ in 0..level {
            out.push_str("  ");
        }
    }
    match &*v {
        Value::Array(items) | Value::Set(items) => {
            if items.is_empty() {
                out.push_str("[]");
                return;
            }
            out.push('[');
            for (i, e) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                newline(level + 1, out);
                dump_pretty(*e, level + 1, out);
            }
            newline(level, out);
            out.push(']');
        }
        Value::Object(entries) => {
            if entries.is_empty() {
                out.push_str("{}");
                return;
            }
            out.push('{');
            for (i, (k, e)) in entries.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                newline(level + 1, out);
                if k.as_str().is_some() {
                    json::dump(*k, out);
                } else {
                    // regorus writes a non-string key as its JSON text.
                    let mut t = String::new();
                    json::dump(*k, &mut t);
                    json::write_str(&t, out);
                }
                out.push_str(": ");
                dump_pretty(*e, level + 1, out);
            }
            newline(level, out);
            out.push('}');
        }
        _ => json::dump(v, out),
    }
}

#[export_name = "builtin:json.marshal_with_options"]
pub extern "C" fn json_marshal_with_options(v: i32, opts: i32) -> i32 {
    let name = "json.marshal_with_options";
    let (v, opts) = (arg(v), arg(opts));
    let options = match &*opts {
        Value::Object(o) => o,
        _ => expects(name, "object", opts),
    };
    let (mut pretty, mut indent, mut prefix): (bool, &str, Option<&str>) = (true, "\t", None);
    for (k, o) in options.iter() {
        match (k.as_str(), &**o) {
            (Some("pretty"), Value::Bool(b)) => pretty = *b,
            (Some("pretty"), _) => {
                fail_named(name, "marshaling option `pretty` must be true or false")
            }
            (Some("prefix"), Value::String(s)) => prefix = Some(s),
            (Some("prefix"), _) => fail_named(name, "marshaling option `prefix` must be string"),
            (Some("indent"), Value::String(s)) => indent = s,
            (Some("indent"), _) => fail_named(name, "marshaling option `indent` must be string"),
            _ => fail_named(
                name,
                "marshaling option must be one of `indent`, `prefix` or `pretty`",
            ),
        }
    }
    let mut out = String::new();
    if !pretty || options.is_empty() {
        json::dump(v, &mut out);
        return V::string_owned(out).addr();
    }
    let mut text = String::new();
    dump_pretty(v, 0, &mut text);
    // regorus re-indents each line: two leading spaces are one `indent`,
    // and puts `prefix` first.
    for (i, line) in text.split('\n').enumerate() {
        if i > 0 {
            out.push('\n');
        }
        if let Some(p) = prefix {
            out.push_str(p);
        }
        let trimmed = line.trim_start();
        for _ in 0..(line.len() - trimmed.len()) / 2 {
            out.push_str(indent);
        }
        out.push_str(trimmed);
    }
    V::string_owned(out).addr()
}

#[export_name = "builtin:json.unmarshal"]
pub extern "C" fn json_unmarshal(s: i32) -> i32 {
    let s = str_arg("json.unmarshal", s);
    match json::parse(s.as_bytes()) {
        Some(v) => v.addr(),
        None => fail_named("json.unmarshal", "could not deserialize json."),
    }
}

#[export_name = "builtin:json.is_valid"]
pub extern "C" fn json_is_valid(s: i32) -> i32 {
    let s = str_arg("json.is_valid", s);
    V::bool(json::parse(s.as_bytes()).is_some()).addr()
}

// ---------------------------------------------------------------- urlquery

/// form_urlencoded's byte serializer.
fn form_encode(s: &str, out: &mut Vec<u8>) {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    for &b in s.as_bytes() {
        match b {
            b'*' | b'-' | b'.' | b'_' | b'0'..=b'9' | b'A'..=b'Z' | b'a'..=b'z' => out.push(b),
            b' ' => out.push(b'+'),
            _ => {
                out.push(b'%');
                out.push(HEX[(b >> 4) as usize]);
                out.push(HEX[(b & 15) as usize]);
            }
        }
    }
}

/// form_urlencoded's decoding of a name or value: `+` is a space, `%XY` a
/// byte (other `%`s stay), invalid UTF-8 replaced.
fn form_decode(s: &[u8]) -> String {
    let mut out = Vec::with_capacity(s.len());
    let mut i = 0;
    while i < s.len() {
        let b = s[i];
        if b == b'+' {
            out.push(b' ');
        } else if b == b'%' {
            match (
                s.get(i + 1).and_then(|c| hex_digit(*c)),
                s.get(i + 2).and_then(|c| hex_digit(*c)),
            ) {
                (Some(h), Some(l)) => {
                    out.push(h << 4 | l);
                    i += 3;
                    continue;
                }
                _ => out.push(b),
            }
        } else {
            out.push(b);
        }
        i += 1;
    }
    match String::from_utf8(out) {
        Ok(s) => s,
        Err(e) => String::from_utf8_lossy(e.as_bytes()).into_owned(),
    }
}

/// The query pairs the url crate finds in "https://non-existent?" + `s`:
/// trailing controls and spaces trimmed, tabs and newlines removed, the
/// query ends at `#`, pairs split at `&` (empty ones skipped) and `=`.
fn query_pairs(s: &str) -> Vec<(String, String)> {
    let trimmed = s.trim_end_matches(|c: char| c <= ' ');
    let mut q: Vec<u8> = trimmed
        .bytes()
        .filter(|&b| b != b'\t' && b != b'\n' && b != b'\r')
        .collect();
    if let Some(h) = q.iter().position(|&b| b == b'#') {
        q.truncate(h);
    }
    let mut pairs = Vec::new();
    for seq in q.split(|&b| b == b'&') {
        if seq.is_empty() {
            continue;
        }
        let (k, v) = match seq.iter().position(|&b| b == b'=') {
            Some(i) => (&seq[..i], &seq[i + 1..]),
            None => (seq, &[][..]),
        };
        pairs.push((form_decode(k), form_decode(v)));
    }
    pairs
}

#[export_name = "builtin:urlquery.encode"]
pub extern "C" fn urlquery_encode(s: i32) -> i32 {
    let s = str_arg("urlquery.encode", s);
    let mut out = Vec::new();
    form_encode(s, &mut out);
    // SAFETY: the encoding is ASCII.
    V::string_owned(unsafe { String::from_utf8_unchecked(out) }).addr()
}

#[export_name = "builtin:urlquery.decode"]
pub extern "C" fn urlquery_decode(s: i32) -> i32 {
    let s = str_arg("urlquery.decode", s);
    // regorus concatenates the pairs without separators.
    let mut out = String::new();
    for (k, v) in query_pairs(s) {
        out.push_str(&k);
        if !v.is_empty() {
            out.push('=');
            out.push_str(&v);
        }
    }
    V::string_owned(out).addr()
}

#[export_name = "builtin:urlquery.decode_object"]
pub extern "C" fn urlquery_decode_object(s: i32) -> i32 {
    let s = str_arg("urlquery.decode_object", s);
    let mut map: Vec<(String, Vec<V>)> = Vec::new();
    for (k, v) in query_pairs(s) {
        let v = V::string_owned(v);
        match map.binary_search_by(|(x, _)| x.as_bytes().cmp(k.as_bytes())) {
            Ok(i) => map[i].1.push(v),
            Err(i) => map.insert(i, (k, alloc::vec![v])),
        }
    }
    let entries = map
        .into_iter()
        .map(|(k, vs)| (V::string_owned(k), V::array(vs)))
        .collect();
    V::new(Value::Object(entries)).addr()
}

#[export_name = "builtin:urlquery.encode_object"]
pub extern "C" fn urlquery_encode_object(obj: i32) -> i32 {
    let name = "urlquery.encode_object";
    let obj = arg(obj);
    let entries = match &*obj {
        Value::Object(o) => o,
        _ => expects(name, "object", obj),
    };
    let mut out = Vec::new();
    let pair = |k: &str, v: &str, out: &mut Vec<u8>| {
        if !out.is_empty() {
            out.push(b'&');
        }
        form_encode(k, out);
        out.push(b'=');
        form_encode(v, out);
    };
    for (k, v) in entries.iter() {
        let key = match &**k {
            Value::String(s) => s,
            _ => expects(name, "string", *k),
        };
        match &**v {
            Value::String(s) => pair(key, s, &mut out),
            Value::Array(items) | Value::Set(items) => {
                // regorus checks the whole collection first.
                for (i, e) in items.iter().enumerate() {
                    if e.as_str().is_none() {
                        let mut m = String::from("expects string collection. Element ");
                        json::write_u64(i as u64, &mut m);
                        m.push_str(" is not a string.");
                        fail_named(name, &m);
                    }
                }
                for e in items.iter() {
                    pair(key, e.as_str().unwrap_or(""), &mut out);
                }
            }
            _ => fail_named(name, "expects array/set of strings."),
        }
    }
    // SAFETY: the encoding is ASCII.
    V::string_owned(unsafe { String::from_utf8_unchecked(out) }).addr()
}

// ---------------------------------------------------------------- semver

/// A version as the semver crate parses it (build metadata is checked and
/// dropped: precedence ignores it).
struct Version<'a> {
    core: [u64; 3],
    pre: &'a str,
}

/// A numeric identifier: digits without a leading zero, fitting u64.
fn semver_number(s: &str) -> Option<(u64, &str)> {
    let b = s.as_bytes();
    let mut len = 0;
    let mut value = 0u64;
    while let Some(&d) = b.get(len) {
        if !d.is_ascii_digit() {
            break;
        }
        if value == 0 && len > 0 {
            return None;
        }
        value = value.checked_mul(10)?.checked_add(u64::from(d - b'0'))?;
        len += 1;
    }
    if len == 0 {
        return None;
    }
    Some((value, &s[len..]))
}

/// Dot-separated non-empty identifiers of `[0-9A-Za-z-]`; in a prerelease,
/// numeric identifiers have no leading zero. Returns the identifiers and the
/// rest; None when invalid or empty.
fn semver_idents(s: &str, pre: bool) -> Option<(&str, &str)> {
    let b = s.as_bytes();
    let mut end = 0;
    loop {
        let start = end;
        let mut nondigit = false;
        while let Some(&c) = b.get(end) {
            match c {
                b'A'..=b'Z' | b'a'..=b'z' | b'-' => nondigit = true,
                b'0'..=b'9' => {}
                _ => break,
            }
            end += 1;
        }
        if end == start {
            return None;
        }
        if pre && !nondigit && end - start > 1 && b[start] == b'0' {
            return None;
        }
        if b.get(end) == Some(&b'.') {
            end += 1;
        } else {
            return Some((&s[..end], &s[end..]));
        }
    }
}

fn semver_parse(s: &str) -> Option<Version<'_>> {
    let (major, s) = semver_number(s)?;
    let s = s.strip_prefix('.')?;
    let (minor, s) = semver_number(s)?;
    let s = s.strip_prefix('.')?;
    let (patch, s) = semver_number(s)?;
    let (pre, s) = match s.strip_prefix('-') {
        Some(s) => semver_idents(s, true)?,
        None => ("", s),
    };
    let s = match s.strip_prefix('+') {
        Some(s) => semver_idents(s, false)?.1,
        None => s,
    };
    if !s.is_empty() {
        return None;
    }
    Some(Version {
        core: [major, minor, patch],
        pre,
    })
}

/// The semver crate's prerelease order: none is greatest, then identifier
/// by identifier (numbers by value and below words, words by bytes), a
/// longer list greater.
fn prerelease_cmp(a: &str, b: &str) -> Ordering {
    match (a.is_empty(), b.is_empty()) {
        (true, true) => return Ordering::Equal,
        (true, false) => return Ordering::Greater,
        (false, true) => return Ordering::Less,
        _ => {}
    }
    let mut rhs = b.split('.');
    for l in a.split('.') {
        let Some(r) = rhs.next() else {
            return Ordering::Greater;
        };
        let ord = match (
            l.bytes().all(|c| c.is_ascii_digit()),
            r.bytes().all(|c| c.is_ascii_digit()),
        ) {
            (true, true) => l.len().cmp(&r.len()).then_with(|| l.cmp(r)),
            (true, false) => return Ordering::Less,
            (false, true) => return Ordering::Greater,
            (false, false) => l.cmp(r),
        };
        if ord != Ordering::Equal {
            return ord;
        }
    }
    if rhs.next().is_none() {
        Ordering::Equal
    } else {
        Ordering::Less
    }
}

#[export_name = "builtin:semver.compare"]
pub extern "C" fn semver_compare(a: i32, b: i32) -> i32 {
    let name = "semver.compare";
    let (a, b) = (str_arg(name, a), str_arg(name, b));
    let (Some(a), Some(b)) = (semver_parse(a), semver_parse(b)) else {
        fail_named(name, "invalid semver")
    };
    let ord = a
        .core
        .cmp(&b.core)
        .then_with(|| prerelease_cmp(a.pre, b.pre));
    V::int(match ord {
        Ordering::Less => -1,
        Ordering::Equal => 0,
        Ordering::Greater => 1,
    })
    .addr()
}

#[export_name = "builtin:semver.is_valid"]
pub extern "C" fn semver_is_valid(s: i32) -> i32 {
    let s = str_arg("semver.is_valid", s);
    V::bool(semver_parse(s).is_some()).addr()
}

// ---------------------------------------------------------------- units

/// A number as regorus's `Number::from_str` makes it: integers exactly
/// (here while they fit i128), other numbers as floats.
#[derive(Clone, Copy)]
enum Num {
    Int(i128),
    /// An integer beyond i128 (regorus: a BigInt), approximated.
    Big(f64),
    Float(f64),
}

fn parse_f64(s: &str) -> Option<f64> {
    s.parse::<f64>().ok().filter(|f| f.is_finite())
}

fn parse_i32(s: &str) -> Option<i32> {
    s.parse::<i32>().ok()
}

/// Decimal digits (non-empty) times `10^exp`, signed; a float when too big.
fn scaled(digits: &str, exp: u32, neg: bool, text: &str) -> Option<Num> {
    let mut v: Option<i128> = Some(0);
    for d in digits.bytes() {
        v = v.and_then(|v| v.checked_mul(10)?.checked_add(i128::from(d - b'0')));
    }
    let mut exp = exp;
    while exp > 0 && v.is_some() {
        v = v.and_then(|v| v.checked_mul(10));
        exp -= 1;
    }
    match v {
        Some(v) => Some(Num::Int(if neg { -v } else { v })),
        // Beyond i128 (regorus: a BigInt): the nearest float.
        None => Some(Num::Big(text.parse::<f64>().ok()?)),
    }
}

/// regorus's `parse_scientific_bigint`: `m e x` when it is an integer.
fn parse_scientific(s: &str) -> Option<Num> {
    let idx = s.find(['e', 'E'])?;
    let (mantissa, exp) = (&s[..idx], &s[idx + 1..]);
    if exp.is_empty() {
        return None;
    }
    let exp = parse_i32(exp)?;
    let (neg, unsigned) = match mantissa.strip_prefix('-') {
        Some(r) => (true, r),
        None => (false, mantissa.strip_prefix('+').unwrap_or(mantissa)),
    };
    if unsigned.is_empty() {
        return None;
    }
    let mut digits = String::new();
    let mut frac: i32 = 0;
    let mut dot = false;
    for c in unsigned.chars() {
        match c {
            '.' if !dot => dot = true,
            '0'..='9' => {
                digits.push(c);
                if dot {
                    frac += 1;
                }
            }
            _ => return None,
        }
    }
    if digits.is_empty() {
        return Some(Num::Int(0));
    }
    while frac > 0 && digits.ends_with('0') {
        digits.pop();
        frac -= 1;
    }
    let adjusted = exp.checked_sub(frac)?;
    if adjusted < 0 {
        return None;
    }
    scaled(&digits, adjusted as u32, neg, s)
}

/// regorus's `Number::from_str`.
fn parse_number(s: &str) -> Option<Num> {
    let t = s.trim();
    let c: String = t.chars().filter(|&c| c != '_').collect();
    if c.is_empty() {
        return None;
    }
    let mut n = String::new();
    if let Some(r) = c.strip_prefix("-.") {
        n.push_str("-0.");
        n.push_str(r);
    } else if let Some(r) = c.strip_prefix("+.") {
        n.push_str("+0.");
        n.push_str(r);
    } else if let Some(r) = c.strip_prefix('.') {
        n.push_str("0.");
        n.push_str(r);
    } else {
        n = c;
    }
    if !n.contains(['.', 'e', 'E']) {
        let (neg, digits) = match n.strip_prefix('-') {
            Some(r) => (true, r),
            None => (false, n.strip_prefix('+').unwrap_or(&n)),
        };
        if !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()) {
            return scaled(digits, 0, neg, &n);
        }
    }
    if let Some(v) = parse_scientific(&n) {
        return Some(v);
    }
    parse_f64(&n).map(Num::Float)
}

/// `number * 2^e` (0 <= e <= 80) as regorus multiplies.
fn times_two_pow(n: Num, e: u32) -> Option<Num> {
    let p = 1i128 << e;
    match n {
        Num::Int(i) => Some(match i.checked_mul(p) {
            Some(v) => Num::Int(v),
            None => Num::Big(i as f64 * p as f64),
        }),
        Num::Big(f) => Some(Num::Big(f * p as f64)),
        Num::Float(f) => {
            let v = f * p as f64;
            if v.is_finite() {
                Some(Num::Float(v))
            } else {
                None
            }
        }
    }
}

fn num_value(n: Num) -> V {
    match n {
        Num::Int(i) => match i64::try_from(i) {
            Ok(i) => V::int(i),
            // regorus keeps such integers exactly (u64/BigInt).
            Err(_) => V::float(i as f64),
        },
        Num::Big(f) if f.is_finite() => V::float(f),
        Num::Big(_) => fail("units: number too large"),
        Num::Float(f) => V::number(Number::Float(f)),
    }
}

fn round(n: Num) -> Num {
    match n {
        Num::Float(f) => Num::Float(libm::round(f)),
        i => i,
    }
}

/// Strips surrounding quotes, refuses whitespace and splits the number from
/// the unit after its last digit; the number's leading `.` gets a `0`.
fn units_split(s: &str) -> (String, &str) {
    let s = if s.len() >= 2 && s.starts_with('"') && s.ends_with('"') {
        &s[1..s.len() - 1]
    } else {
        s
    };
    if s.chars().any(char::is_whitespace) {
        fail("spaces not allowed in resource strings");
    }
    let (num, suffix) = match s.rfind(|c: char| c.is_ascii_digit()) {
        Some(p) => (&s[..p + 1], &s[p + 1..]),
        None => (s, ""),
    };
    let mut n = String::new();
    if let Some(r) = num.strip_prefix("-.") {
        n.push_str("-0.");
        n.push_str(r);
    } else if let Some(r) = num.strip_prefix("+.") {
        n.push_str("+0.");
        n.push_str(r);
    } else if let Some(r) = num.strip_prefix('.') {
        n.push_str("0.");
        n.push_str(r);
    } else {
        n.push_str(num);
    }
    (n, suffix)
}

/// regorus's `combine_decimal_exponent`: "m e (x + exp)".
fn combine_exponent(number: &str, exp: i32) -> Option<String> {
    if exp == 0 {
        return Some(String::from(number));
    }
    let (mantissa, base) = match number.find(['e', 'E']) {
        Some(i) if i + 1 < number.len() => match parse_i32(&number[i + 1..]) {
            Some(x) => (&number[..i], x),
            None => (number, 0),
        },
        _ => (number, 0),
    };
    if mantissa.is_empty() {
        return None;
    }
    let combined = base.checked_add(exp)?;
    let mut out = String::from(mantissa);
    if combined != 0 {
        out.push('e');
        json::write_i64(i64::from(combined), &mut out);
    }
    Some(out)
}

fn lower(s: &str) -> String {
    s.to_ascii_lowercase()
}

#[export_name = "builtin:units.parse_bytes"]
pub extern "C" fn units_parse_bytes(s: i32) -> i32 {
    let name = "units.parse_bytes";
    let (num, suffix) = units_split(str_arg(name, s));
    let suffix = lower(suffix);
    let two = match suffix.as_str() {
        "yi" | "yib" => Some(80),
        "zi" | "zib" => Some(70),
        "ei" | "eib" => Some(60),
        "pi" | "pib" => Some(50),
        "ti" | "tib" => Some(40),
        "gi" | "gib" => Some(30),
        "mi" | "mib" => Some(20),
        "ki" | "kib" => Some(10),
        "" => Some(0),
        _ => None,
    };
    let ten = match suffix.as_str() {
        "q" | "qb" => Some(30),
        "r" | "rb" => Some(27),
        "y" | "yb" => Some(24),
        "z" | "zb" => Some(21),
        "e" | "eb" => Some(18),
        "p" | "pb" => Some(15),
        "t" | "tb" => Some(12),
        "g" | "gb" => Some(9),
        "m" | "mb" => Some(6),
        "k" | "kb" => Some(3),
        _ => None,
    };
    let n = if let Some(e) = two {
        let Some(n) = parse_number(&num) else {
            fail_named(name, "could not parse number")
        };
        match times_two_pow(n, e) {
            Some(n) => n,
            None => fail_named(name, "numeric overflow in multiplication"),
        }
    } else if let Some(e) = ten {
        match combine_exponent(&num, e).and_then(|c| parse_number(&c)) {
            Some(n) => n,
            None => fail_named(name, "could not parse number"),
        }
    } else {
        return 0;
    };
    num_value(round(n)).addr()
}

#[export_name = "builtin:units.parse"]
pub extern "C" fn units_parse(s: i32) -> i32 {
    let name = "units.parse";
    let (num, suffix) = units_split(str_arg(name, s));
    let ten = match suffix {
        "E" | "e" => Some(18),
        "P" | "p" => Some(15),
        "T" | "t" => Some(12),
        "G" | "g" => Some(9),
        "M" => Some(6),
        "K" | "k" => Some(3),
        "m" => Some(-3),
        "Q" => Some(30),
        "R" => Some(27),
        "Y" => Some(24),
        "Z" => Some(21),
        "h" => Some(2),
        "da" => Some(1),
        "d" => Some(-1),
        "c" => Some(-2),
        "\u{3bc}" => Some(-6),
        "n" => Some(-9),
        "f" => Some(-15),
        "a" => Some(-18),
        "z" => Some(-21),
        "y" => Some(-24),
        "r" => Some(-27),
        "q" => Some(-30),
        "" => Some(0),
        _ => None,
    };
    let n = if let Some(e) = ten {
        match combine_exponent(&num, e).and_then(|c| parse_number(&c)) {
            Some(n) => n,
            None => fail_named(name, "could not parse number"),
        }
    } else {
        let two = match lower(suffix).as_str() {
            "ki" => 10,
            "mi" => 20,
            "gi" => 30,
            "ti" => 40,
            "pi" => 50,
            "ei" => 60,
            "zi" => 70,
            "yi" => 80,
            _ => return 0,
        };
        let Some(n) = parse_number(&num) else {
            fail_named(name, "could not parse number")
        };
        match times_two_pow(n, two) {
            Some(n) => n,
            None => fail_named(name, "numeric overflow in multiplication"),
        }
    };
    num_value(n).addr()
}
