//! Values as text: JSON (`opa_json_parse` / `opa_json_dump`) and Rego's
//! value syntax (`opa_value_parse` / `opa_value_dump`), which adds sets and
//! non-string object keys to JSON.
//!
//! Both directions match regorus 0.14.1 with the serde_json the workspace
//! locks (1.0.154, without `float_roundtrip` / `arbitrary_precision`):
//!
//! - parsing is strict JSON as serde_json reads it, numbers included (its
//!   lossy float arithmetic, `-0` as a float), and its nesting limit (127
//!   levels), so hostile input fails cleanly instead of overflowing the stack;
//!   integer literals within i64 become integers, all others floats (regorus
//!   keeps u64 integers above i64::MAX exact; here they are floats);
//! - writing is compact; strings escaped as serde_json escapes them; integers
//!   as integers; a float as regorus writes one (see [`write_f64`]: `0.1`,
//!   `4.5`, `1e+21`, `-0.0`, and an integral float below 2^64 as an integer); sets
//!   as (sorted) arrays; a non-string object key as its JSON text.
//!
//! No `core::fmt` here (see the crate's documentation).

use crate::value::{Number, Value, V};
use alloc::string::String;
use alloc::vec::Vec;
use core::mem::MaybeUninit;

/// Deepest nesting of arrays and objects accepted by the parsers (serde_json's
/// recursion limit: 128 minus one).
const MAX_PARSE_DEPTH: u32 = 127;

/// Deepest nesting the writers follow before failing.
const MAX_DUMP_DEPTH: u32 = 1000;

// ---------------------------------------------------------------------------
// Parsing.

/// Parses JSON text; `None` when malformed (or nested too deeply).
pub fn parse(text: &[u8]) -> Option<V> {
    parse_with(text, false, MAX_PARSE_DEPTH)
}

/// Parses JSON text as [`parse`] does, for values that live no longer than
/// one evaluation (`opa_eval`'s input): everything a lazy value reads is
/// allocated when it is read, so a value kept across evaluations (data)
/// must not be lazy, or what it read would go with the heap reset.
///
/// The text is validated whole, but its arrays and objects are read only
/// when a value is first looked at ([`Value::Lazy`]): a policy reads a few
/// fields of a large input, and skipping the rest is much cheaper than
/// building it. Validation records where each array and object ends (a
/// tape, as simdjson keeps one), so reading one level skips every nested
/// one in a step. The values borrow the text, which must live as long as
/// they do (see [`V::string_borrowed`]).
pub fn parse_lazy(text: &[u8]) -> Option<V> {
    let first = ws(text, 0);
    let mut tape = Vec::new();
    let end = validate(text, first, &mut tape)?;
    if ws(text, end) != text.len() {
        return None;
    }
    if tape.is_empty() {
        // A scalar.
        let mut p = Parser::json(text, first);
        return p.value();
    }
    let doc: &'static Doc = alloc::boxed::Box::leak(alloc::boxed::Box::new(Doc {
        // SAFETY: the text lives as long as the values (see above).
        text: unsafe { &*(text as *const [u8]) },
        tape,
    }));
    Some(V::new(Value::Lazy(Lazy {
        doc,
        at: first as u32,
        index: 0,
    })))
}

/// The offset of the first byte at or after `i` that is not JSON
/// whitespace.
///
/// Compact text has none: one test, and a loop only when there is some
/// (Wasm engines check for interruption at every iteration of a loop, so
/// the common steps of the hot paths here enter none).
#[inline(always)]
fn ws(s: &[u8], i: usize) -> usize {
    match s.get(i) {
        Some(&c) if c <= b' ' => ws_run(s, i),
        _ => i,
    }
}

/// [`ws`] past a first byte that may be whitespace.
#[inline(never)]
fn ws_run(s: &[u8], mut i: usize) -> usize {
    while let Some(b' ' | b'\t' | b'\n' | b'\r') = s.get(i) {
        i += 1;
    }
    i
}

/// Validates the JSON value at `start` (not whitespace) as the parser would
/// read it, and records each array and object in `tape`; returns the offset
/// after the value.
///
/// Written for the code Wasm engines make of it: one loop, whose state is
/// the position, the nesting depth and two small arrays on the stack (the
/// open arrays and objects, and how many elements each has so far), so that
/// it all stays in registers; the tape is allocated once, as large as the
/// text could need. Strings are skipped eight bytes at a time; escapes and
/// numbers that are not plain integers are left to the parser.
#[inline(never)]
#[target_feature(enable = "simd128")]
fn validate(s: &[u8], start: usize, tape: &mut Vec<(u32, u32, u32)>) -> Option<usize> {
    const MAX: usize = MAX_PARSE_DEPTH as usize;
    // Per open array or object: its tape index, shifted left once, with
    // the low bit set for an object; and its elements so far.
    // Not zeroed (1 KB each evaluation): an entry is written when its
    // array or object opens, before it is read.
    let mut open = [MaybeUninit::<u32>::uninit(); MAX];
    let mut count = [MaybeUninit::<u32>::uninit(); MAX];
    let mut depth = 0usize;
    // Every array or object takes two bytes at least.
    tape.reserve(s.len() / 2 + 1);
    let base = tape.as_mut_ptr();
    let mut used = 0usize;
    let mut i = start;
    // Whether `i` is after a value (else at one). One loop, with one
    // iteration per value and per closing bracket: Wasm engines check for
    // interruption at every iteration of a loop.
    let mut after = false;
    loop {
        if !after {
            let c = *s.get(i)?;
            // Tested one by one, the most common first: a chain of branches
            // is predicted better than a jump table.
            if c == b'"' {
                i = skip_str(s, i + 1)?;
            } else if c == b'{' || c == b'[' {
                if depth == MAX {
                    return None;
                }
                let object = c == b'{';
                open[depth].write(((used as u32) << 1) | u32::from(object));
                count[depth].write(0);
                depth += 1;
                used += 1;
                i = ws(s, i + 1);
                let close = if object { b'}' } else { b']' };
                if *s.get(i)? != close {
                    if object {
                        i = key(s, i)?;
                    }
                    continue;
                }
                depth -= 1;
                // SAFETY: written when it opened.
                let index = (unsafe { open[depth].assume_init() } >> 1) as usize;
                // SAFETY: index < used <= the capacity reserved above.
                unsafe { base.add(index).write((i as u32, used as u32, 0)) };
                i += 1;
            } else {
                i = scalar(s, i, c)?;
            }
            after = true;
        }
        // After a value: a comma and the next value, or a closing bracket.
        if depth == 0 {
            // SAFETY: `used` entries were written, within capacity.
            unsafe { tape.set_len(used) };
            return Some(i);
        }
        i = ws(s, i);
        // SAFETY: written when it opened (depth > 0 here).
        let top = unsafe { open[depth - 1].assume_init() };
        let object = top & 1 == 1;
        let c = *s.get(i)?;
        if c == b',' {
            // SAFETY: as above.
            count[depth - 1].write(unsafe { count[depth - 1].assume_init() } + 1);
            i = ws(s, i + 1);
            if object {
                i = key(s, i)?;
            }
            after = false;
            continue;
        }
        if c != (if object { b'}' } else { b']' }) {
            return None;
        }
        depth -= 1;
        let index = (top >> 1) as usize;
        // SAFETY: as above.
        unsafe {
            base.add(index)
                .write((i as u32, used as u32, count[depth].assume_init() + 1))
        };
        i += 1;
    }
}

/// A literal or a number at `i` (whose first byte is `c`); the offset after
/// it.
#[inline(always)]
fn scalar(s: &[u8], i: usize, c: u8) -> Option<usize> {
    match c {
        // `true` and `null` as one four-byte word, `false` as `f` and one.
        b't' | b'n' => {
            let word = if c == b't' { *b"true" } else { *b"null" };
            (s.get(i..i + 4)? == word).then_some(i + 4)
        }
        b'f' => (s.get(i + 1..i + 5)? == *b"alse").then_some(i + 5),
        b'-' | b'0'..=b'9' => {
            let mut j = i + usize::from(c == b'-');
            let digits = j;
            while s.get(j).is_some_and(u8::is_ascii_digit) {
                j += 1;
            }
            let n = j - digits;
            let simple = (1..=18).contains(&n)
                && (n == 1 || s[digits] != b'0')
                && !matches!(s.get(j), Some(b'.' | b'e' | b'E'));
            if simple {
                Some(j)
            } else {
                parsed_number(s, i)
            }
        }
        _ => None,
    }
}

/// An object's key and its colon at `i`; the offset of the value after it
/// (whitespace skipped).
#[inline(always)]
fn key(s: &[u8], i: usize) -> Option<usize> {
    if s.get(i) != Some(&b'"') {
        return None;
    }
    let i = ws(s, skip_str(s, i + 1)?);
    if s.get(i) != Some(&b':') {
        return None;
    }
    Some(ws(s, i + 1))
}

/// A number at `i` that is not a plain integer, as the parser reads it
/// (numbers out of range fail); the offset after it.
#[cold]
#[inline(never)]
fn parsed_number(s: &[u8], i: usize) -> Option<usize> {
    let mut p = Parser::json(s, i);
    p.number()?;
    Some(p.i)
}

/// After an opening quote at `start - 1`: the offset after the string,
/// which is validated as the parser reads it, and as UTF-8 (the validator
/// is the only pass over the text, and only strings may hold bytes past
/// ASCII).
#[inline]
#[target_feature(enable = "simd128")]
fn skip_str(s: &[u8], start: usize) -> Option<usize> {
    let i = plain_run16::<true>(s, start);
    if s.get(i) == Some(&b'"') {
        return Some(i + 1);
    }
    skip_str_rest(s, start, i)
}

/// [`skip_str`] from `i`, the first byte of the string at `start` that is
/// not plain ASCII, or one of the last seven.
#[inline(never)]
fn skip_str_rest(s: &[u8], start: usize, mut i: usize) -> Option<usize> {
    loop {
        match *s.get(i)? {
            b'"' => return Some(i + 1),
            b'\\' => return escaped_str(s, start),
            c if c < 0x20 => return None,
            c if c >= 0x80 => i = plain_run::<true>(s, utf8_char(s, i)?),
            _ => i += 1,
        }
    }
}

/// The offset after the UTF-8 encoding of one character at `i` (whose
/// first byte is past ASCII); None when it is not valid UTF-8.
#[inline(never)]
fn utf8_char(s: &[u8], i: usize) -> Option<usize> {
    let width = match s[i] {
        0xC2..=0xDF => 2,
        0xE0..=0xEF => 3,
        0xF0..=0xF4 => 4,
        _ => return None,
    };
    core::str::from_utf8(s.get(i..i + width)?).ok()?;
    Some(i + width)
}

/// A string with escapes, after its opening quote at `start - 1`, as the
/// parser reads it; the offset after it.
#[cold]
#[inline(never)]
fn escaped_str(s: &[u8], start: usize) -> Option<usize> {
    let mut p = Parser::json(s, start);
    p.string()?;
    // The parser takes the text to be UTF-8: this part of it is now.
    core::str::from_utf8(s.get(start..p.i)?).ok()?;
    Some(p.i)
}

/// The end of the run of plain string bytes (no `"`, `\\` or control
/// character, and with `ASCII` none past ASCII either) from `i`, eight
/// bytes at a time: the first special byte, or where fewer than eight
/// bytes are left (the caller looks at the bytes from there on one by one).
///
/// The first sixteen bytes, where most strings end, are looked at without
/// a loop (see [`ws`]).
#[inline(always)]
fn plain_run<const ASCII: bool>(s: &[u8], i: usize) -> usize {
    let Some(w) = word(s, i) else {
        return i;
    };
    let special = specials::<ASCII>(w);
    if special != 0 {
        return i + (special.trailing_zeros() / 8) as usize;
    }
    let Some(w) = word(s, i + 8) else {
        return i + 8;
    };
    let special = specials::<ASCII>(w);
    if special != 0 {
        return i + 8 + (special.trailing_zeros() / 8) as usize;
    }
    plain_run_long::<ASCII>(s, i + 16)
}

/// [`plain_run::<true>`] sixteen bytes at a time (Wasm SIMD), for the
/// validator: the first special byte from `i`, or where fewer than sixteen
/// bytes are left and [`plain_run`] takes over.
#[inline]
#[target_feature(enable = "simd128")]
fn plain_run16<const ASCII: bool>(s: &[u8], i: usize) -> usize {
    // The first sixteen bytes, where most strings end, without a loop.
    match specials16::<ASCII>(s, i) {
        Some(0) => plain_run16_long::<ASCII>(s, i + 16),
        Some(bits) => i + bits.trailing_zeros() as usize,
        None => plain_run::<ASCII>(s, i),
    }
}

/// [`plain_run16`] past its first sixteen bytes.
#[inline(never)]
#[target_feature(enable = "simd128")]
fn plain_run16_long<const ASCII: bool>(s: &[u8], mut i: usize) -> usize {
    loop {
        match specials16::<ASCII>(s, i) {
            Some(0) => i += 16,
            Some(bits) => return i + bits.trailing_zeros() as usize,
            None => return plain_run::<ASCII>(s, i),
        }
    }
}

/// A bit for each of the sixteen bytes at `i` that ends a run of plain
/// string bytes (see [`plain_run`]): a quote, a backslash, a control
/// character, and with `ASCII` a byte past ASCII. None past the end.
#[inline]
#[target_feature(enable = "simd128")]
fn specials16<const ASCII: bool>(s: &[u8], i: usize) -> Option<u16> {
    use core::arch::wasm32::*;
    let chunk = s.get(i..i + 16)?;
    // SAFETY: sixteen bytes in bounds; v128 loads need no alignment.
    let v = unsafe { v128_load(chunk.as_ptr().cast::<v128>()) };
    // Below 0x20 signed is a control character or a byte past ASCII.
    let low = if ASCII {
        i8x16_lt(v, i8x16_splat(0x20))
    } else {
        u8x16_lt(v, u8x16_splat(0x20))
    };
    let special = v128_or(
        v128_or(
            i8x16_eq(v, i8x16_splat(b'"' as i8)),
            i8x16_eq(v, i8x16_splat(b'\\' as i8)),
        ),
        low,
    );
    Some(i8x16_bitmask(special))
}

/// [`plain_run`] past its first sixteen bytes.
#[inline(never)]
fn plain_run_long<const ASCII: bool>(s: &[u8], mut i: usize) -> usize {
    while let Some(w) = word(s, i) {
        let special = specials::<ASCII>(w);
        if special != 0 {
            return i + (special.trailing_zeros() / 8) as usize;
        }
        i += 8;
    }
    i
}

/// The eight bytes at `i`, little-endian; None past the end.
#[inline(always)]
fn word(s: &[u8], i: usize) -> Option<u64> {
    let chunk = s.get(i..i + 8)?;
    // SAFETY: eight bytes in bounds; an unaligned load.
    Some(u64::from_le(unsafe {
        core::ptr::read_unaligned(chunk.as_ptr().cast::<u64>())
    }))
}

/// The high bit of each byte of `w` that ends a run of plain string bytes
/// (see [`plain_run`]). The lowest flag is exact (a borrow only runs up
/// from a flagged byte): it marks the first special byte.
#[inline(always)]
fn specials<const ASCII: bool>(w: u64) -> u64 {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGH: u64 = 0x8080_8080_8080_8080;
    let zero = |x: u64| x.wrapping_sub(ONES) & !x & HIGH;
    // A quote, a backslash, or a byte below 0x20 (bytes of 0x80 and up,
    // UTF-8, are never flagged by the last test).
    let mut special = zero(w ^ (ONES * u64::from(b'"')))
        | zero(w ^ (ONES * u64::from(b'\\')))
        | (w.wrapping_sub(ONES * 0x20) & !w & HIGH);
    if ASCII {
        special |= w & HIGH;
    }
    special
}

/// Validated JSON text and where each of its arrays and objects ends.
pub struct Doc {
    text: &'static [u8],
    /// For each array and object, in the order they open: the offset of
    /// its closing bracket, the index of the next one after it (past those
    /// nested in it), and how many elements it has.
    tape: Vec<(u32, u32, u32)>,
}

/// An array or object of a [`Doc`] not read yet.
#[derive(Clone, Copy)]
pub struct Lazy {
    doc: &'static Doc,
    /// Offset of its opening bracket.
    at: u32,
    /// Its index in the tape.
    index: u32,
}

/// Reads one level of a lazy array or object: scalars are parsed, nested
/// arrays and objects stay lazy.
pub fn force(l: Lazy) -> Value {
    let doc = l.doc;
    let s = doc.text;
    let mut i = l.at as usize + 1;
    let mut next = l.index + 1;
    let object = s.get(l.at as usize) == Some(&b'{');
    let (end, len) = doc
        .tape
        .get(l.index as usize)
        .map_or((0, 0), |t| (t.0 as usize, t.2 as usize));
    // The text was validated: what follows cannot fail on good input. The
    // position stays in a local, and strings are read without a parser.
    // One loop for both kinds, so that reading an element is inline once.
    let (mut entries, mut items): (Vec<(V, V)>, Vec<V>) = if object {
        (with_capacity(len), Vec::new())
    } else {
        (Vec::new(), with_capacity(len))
    };
    // Whether the keys come in order, as they do from serde_json's maps:
    // then the object needs no sorting.
    let mut sorted = true;
    let mut last: &'static [u8] = &[];
    loop {
        i = ws(s, i);
        if i >= end {
            break;
        }
        let mut key = None;
        if object {
            let k = string_at(s, &mut i);
            let text: &'static [u8] = match &*k {
                Value::String(x) => x.as_bytes(),
                _ => &[],
            };
            sorted &= entries.is_empty() || crate::mem::cmp_bytes(last, text).is_lt();
            last = text;
            key = Some(k);
            i = ws(s, ws(s, i) + 1); // ':'
        }
        let at = i;
        let v = match s.get(at) {
            Some(b'{' | b'[') => {
                let (close, after, _) = doc.tape.get(next as usize).copied().unwrap_or((0, 0, 0));
                i = close as usize + 1;
                let index = next;
                next = after;
                V::new(Value::Lazy(Lazy {
                    doc,
                    at: at as u32,
                    index,
                }))
            }
            Some(b'"') => string_at(s, &mut i),
            _ => {
                let (v, after) = scalar_at(s, i);
                i = after;
                v
            }
        };
        match key {
            Some(k) => entries.push((k, v)),
            None => items.push(v),
        }
        i = ws(s, i);
        if s.get(i) == Some(&b',') {
            i += 1;
        }
    }
    if !object {
        Value::Array(items)
    } else if sorted {
        Value::Object(entries)
    } else {
        Value::object(entries)
    }
}

/// An empty vector with room for `n` elements, taken from the heap directly
/// (`Vec::with_capacity` goes through out-of-line generic code).
#[inline(always)]
fn with_capacity<T>(n: usize) -> Vec<T> {
    let size = core::mem::size_of::<T>();
    if n == 0 || size == 0 || n > (isize::MAX as usize) / size {
        return Vec::with_capacity(n);
    }
    let p = crate::heap::alloc(n * size, core::mem::align_of::<T>());
    if p.is_null() {
        crate::abi::fail("policy runtime: out of memory");
    }
    // SAFETY: `p` is a fresh block of the global allocator's heap (which
    // `Vec` frees through), aligned and large enough for `n` elements.
    unsafe { Vec::from_raw_parts(p.cast::<T>(), 0, n) }
}

/// The (validated) literal or number at `i`, and the offset after it. Out
/// of line: its parser lives in memory, and the caller's position stays in
/// a local.
#[inline(never)]
fn scalar_at(s: &'static [u8], i: usize) -> (V, usize) {
    let mut p = Parser::json(s, i);
    let v = p.value().unwrap_or_else(|| lazy_broken());
    (v, p.i)
}

/// The (validated) string whose opening quote is at `*i`; moves `*i` past
/// it. A string without escapes borrows the text.
#[inline(always)]
fn string_at(s: &'static [u8], i: &mut usize) -> V {
    let start = *i + 1;
    let j = plain_run::<false>(s, start);
    if s.get(j) == Some(&b'"') {
        *i = j + 1;
        // SAFETY: validated UTF-8, cut at ASCII quotes; the text lives as
        // long as the values (see `parse_lazy`).
        return unsafe {
            V::string_borrowed(core::str::from_utf8_unchecked(s.get_unchecked(start..j)))
        };
    }
    let (v, after) = string_at_rest(s, start, j);
    *i = after;
    v
}

/// [`string_at`] from `j`, a byte of the string at `start` that may be
/// special; the string and the offset after it. The caller's position
/// stays in a local.
#[inline(never)]
fn string_at_rest(s: &'static [u8], start: usize, mut j: usize) -> (V, usize) {
    loop {
        match s.get(j) {
            Some(b'"') => {
                // SAFETY: as in `string_at`.
                let v = unsafe {
                    V::string_borrowed(core::str::from_utf8_unchecked(s.get_unchecked(start..j)))
                };
                return (v, j + 1);
            }
            Some(b'\\') => {
                let mut p = Parser::json(s, start);
                let v = p.string().unwrap_or_else(|| lazy_broken());
                return (v, p.i);
            }
            Some(_) => j = plain_run::<false>(s, j + 1),
            None => lazy_broken(),
        }
    }
}

#[cold]
fn lazy_broken() -> ! {
    crate::abi::fail("policy runtime: lazy JSON")
}

/// Parses the policy bundle: JSON whose data and constants, two levels down,
/// may nest as deeply as [`parse`] allows.
pub fn parse_bundle(text: &[u8]) -> Option<V> {
    parse_with(text, false, MAX_PARSE_DEPTH + 2)
}

/// Parses Rego value text: JSON plus sets (`{1, 2}`, `set()`) and object keys
/// of any kind; `None` when malformed.
pub fn parse_rego(text: &[u8]) -> Option<V> {
    parse_with(text, true, MAX_PARSE_DEPTH)
}

fn parse_with(text: &[u8], rego: bool, max_depth: u32) -> Option<V> {
    // Validated once: every slice the parser takes ends at ASCII bytes, so
    // all are valid UTF-8 too.
    core::str::from_utf8(text).ok()?;
    let mut p = Parser {
        s: text,
        i: 0,
        depth: 0,
        max_depth,
        rego,
        items: Vec::new(),
        entries: Vec::new(),
    };
    let v = p.value()?;
    p.ws();
    if p.i == p.s.len() {
        Some(v)
    } else {
        None
    }
}

struct Parser<'a> {
    s: &'a [u8],
    i: usize,
    depth: u32,
    max_depth: u32,
    rego: bool,
    /// Elements of the arrays being parsed, innermost last: each array
    /// takes its own off the top, in one allocation of the exact size.
    items: Vec<V>,
    /// Entries of the objects being parsed, likewise.
    entries: Vec<(V, V)>,
}

impl<'a> Parser<'a> {
    /// A JSON parser at offset `i` of `s`.
    fn json(s: &'a [u8], i: usize) -> Parser<'a> {
        Parser {
            s,
            i,
            depth: 0,
            max_depth: MAX_PARSE_DEPTH,
            rego: false,
            items: Vec::new(),
            entries: Vec::new(),
        }
    }

    #[inline(always)]
    fn ws(&mut self) {
        // In locals: the text and the position in memory could alias.
        let (s, mut i, rego) = (self.s, self.i, self.rego);
        while let Some(&c) = s.get(i) {
            let space = if rego {
                c.is_ascii_whitespace()
            } else {
                matches!(c, b' ' | b'\t' | b'\n' | b'\r')
            };
            if !space {
                break;
            }
            i += 1;
        }
        self.i = i;
    }

    /// The next byte after whitespace.
    #[inline(always)]
    fn peek(&mut self) -> Option<u8> {
        self.ws();
        self.s.get(self.i).copied()
    }

    #[inline(always)]
    fn eat(&mut self, c: u8) -> bool {
        if self.peek() == Some(c) {
            self.i += 1;
            true
        } else {
            false
        }
    }

    #[inline(always)]
    fn keyword(&mut self, word: &[u8]) -> bool {
        match self.s.get(self.i..self.i + word.len()) {
            Some(w) if w == word => {
                self.i += word.len();
                true
            }
            _ => false,
        }
    }

    #[inline(always)]
    fn enter(&mut self) -> Option<()> {
        self.depth += 1;
        if self.depth > self.max_depth {
            None
        } else {
            Some(())
        }
    }

    fn value(&mut self) -> Option<V> {
        match self.peek()? {
            b'{' => {
                self.i += 1;
                self.enter()?;
                let v = if self.rego {
                    self.rego_braces()
                } else {
                    self.object()
                };
                self.depth -= 1;
                v
            }
            b'[' => {
                self.i += 1;
                self.enter()?;
                let v = self.array();
                self.depth -= 1;
                v
            }
            b'"' => {
                self.i += 1;
                self.string()
            }
            b't' => self.keyword(b"true").then(|| V::bool(true)),
            b'f' => self.keyword(b"false").then(|| V::bool(false)),
            b'n' => self.keyword(b"null").then(V::null),
            b's' if self.rego => self.keyword(b"set()").then(|| V::set(Vec::new())),
            b'-' | b'0'..=b'9' => self.number(),
            _ => None,
        }
    }

    /// After `[`.
    fn array(&mut self) -> Option<V> {
        if self.eat(b']') {
            return Some(V::array(Vec::new()));
        }
        let mark = self.items.len();
        loop {
            let v = self.value()?;
            self.items.push(v);
            if self.eat(b']') {
                let items: Vec<V> = self.items.drain(mark..).collect();
                return Some(V::array(items));
            }
            if !self.eat(b',') {
                return None;
            }
        }
    }

    /// After `{`, in JSON: an object with string keys.
    fn object(&mut self) -> Option<V> {
        if self.eat(b'}') {
            return Some(V::object(Vec::new()));
        }
        let mark = self.entries.len();
        loop {
            if !self.eat(b'"') {
                return None;
            }
            let k = self.string()?;
            if !self.eat(b':') {
                return None;
            }
            let v = self.value()?;
            self.entries.push((k, v));
            if self.eat(b'}') {
                let entries: Vec<(V, V)> = self.entries.drain(mark..).collect();
                return Some(V::object(entries));
            }
            if !self.eat(b',') {
                return None;
            }
        }
    }

    /// After `{`, in Rego text: an object with keys of any kind, or a set.
    fn rego_braces(&mut self) -> Option<V> {
        if self.eat(b'}') {
            return Some(V::object(Vec::new()));
        }
        let first = self.value()?;
        if self.eat(b':') {
            let mut entries = Vec::new();
            let mut key = first;
            loop {
                let v = self.value()?;
                entries.push((key, v));
                if self.eat(b'}') {
                    return Some(V::object(entries));
                }
                if !self.eat(b',') {
                    return None;
                }
                key = self.value()?;
                if !self.eat(b':') {
                    return None;
                }
            }
        }
        let mut items = Vec::new();
        items.push(first);
        loop {
            if self.eat(b'}') {
                return Some(V::set(items));
            }
            if !self.eat(b',') {
                return None;
            }
            items.push(self.value()?);
        }
    }

    /// After the opening quote.
    fn string(&mut self) -> Option<V> {
        let start = self.i;
        self.i = plain_run::<false>(self.s, start);
        // Fast path: no escapes.
        loop {
            match *self.s.get(self.i)? {
                b'"' => {
                    let text = self.s.get(start..self.i)?;
                    self.i += 1;
                    // SAFETY: the whole text is valid UTF-8 and the slice
                    // ends at ASCII bytes.
                    // The value borrows the text: JSON text given to the
                    // parser lives on the heap (the host's input, data, a
                    // string value) at least as long as values made now.
                    return Some(unsafe {
                        V::string_borrowed(core::str::from_utf8_unchecked(text))
                    });
                }
                b'\\' => break,
                c if c < 0x20 => return None,
                _ => self.i += 1,
            }
        }
        let mut buf: Vec<u8> = Vec::new();
        buf.extend_from_slice(self.s.get(start..self.i)?);
        loop {
            let run = self.i;
            loop {
                match *self.s.get(self.i)? {
                    b'"' | b'\\' => break,
                    c if c < 0x20 => return None,
                    _ => self.i += 1,
                }
            }
            buf.extend_from_slice(self.s.get(run..self.i)?);
            let c = *self.s.get(self.i)?;
            self.i += 1;
            if c == b'"' {
                // SAFETY: runs of the (valid) text cut at ASCII bytes, and
                // UTF-8 encodings of escaped characters.
                let s = unsafe { String::from_utf8_unchecked(buf) };
                return Some(V::string_owned(s));
            }
            let e = *self.s.get(self.i)?;
            self.i += 1;
            let b = match e {
                b'"' => b'"',
                b'\\' => b'\\',
                b'/' => b'/',
                b'b' => 0x08,
                b'f' => 0x0c,
                b'n' => b'\n',
                b'r' => b'\r',
                b't' => b'\t',
                b'u' => {
                    let ch = self.unicode_escape()?;
                    let mut tmp = [0u8; 4];
                    buf.extend_from_slice(ch.encode_utf8(&mut tmp).as_bytes());
                    continue;
                }
                _ => return None,
            };
            buf.push(b);
        }
    }

    fn hex4(&mut self) -> Option<u32> {
        let digits = self.s.get(self.i..self.i + 4)?;
        let mut n = 0u32;
        for &d in digits {
            let v = match d {
                b'0'..=b'9' => d - b'0',
                b'a'..=b'f' => d - b'a' + 10,
                b'A'..=b'F' => d - b'A' + 10,
                _ => return None,
            };
            n = n * 16 + v as u32;
        }
        self.i += 4;
        Some(n)
    }

    /// After `\u`: one character, a surrogate pair taking two escapes.
    fn unicode_escape(&mut self) -> Option<char> {
        let hi = self.hex4()?;
        match hi {
            0xD800..=0xDBFF => {
                if !self.keyword(b"\\u") {
                    return None;
                }
                let lo = self.hex4()?;
                if !(0xDC00..=0xDFFF).contains(&lo) {
                    return None;
                }
                char::from_u32(0x10000 + ((hi - 0xD800) << 10) + (lo - 0xDC00))
            }
            0xDC00..=0xDFFF => None,
            _ => char::from_u32(hi),
        }
    }

    #[inline(always)]
    fn digit(&self) -> Option<u64> {
        match self.s.get(self.i) {
            Some(&c @ b'0'..=b'9') => Some((c - b'0') as u64),
            _ => None,
        }
    }

    /// A number, read exactly as serde_json reads one (without its
    /// `float_roundtrip` feature, as regorus is built): an integer literal
    /// that fits i64 is an integer; `-0` and other literals are floats, made
    /// by serde_json's (not always correctly rounded) arithmetic.
    fn number(&mut self) -> Option<V> {
        let positive = self.s.get(self.i) != Some(&b'-');
        if !positive {
            self.i += 1;
        }
        let mut significand: u64 = match self.digit()? {
            0 => {
                self.i += 1;
                if self.digit().is_some() {
                    return None;
                }
                0
            }
            d => {
                self.i += 1;
                d
            }
        };
        let mut exponent: i32 = 0;
        // Digits past u64's range only count towards the exponent.
        let mut overflowed = false;
        while let Some(d) = self.digit() {
            self.i += 1;
            if overflowed {
                exponent = exponent.saturating_add(1);
                continue;
            }
            match significand.checked_mul(10).and_then(|s| s.checked_add(d)) {
                Some(s) => significand = s,
                None => {
                    overflowed = true;
                    exponent = 1;
                }
            }
        }
        let f = match self.s.get(self.i) {
            Some(b'.') => self.decimal(significand, exponent)?,
            Some(b'e' | b'E') => self.exponent(significand, exponent)?,
            _ if overflowed => f64_from_parts(significand, exponent)?,
            _ => {
                if positive {
                    return Some(match i64::try_from(significand) {
                        Ok(n) => V::int(n),
                        Err(_) => V::float(significand as f64),
                    });
                }
                let neg = (significand as i64).wrapping_neg();
                // A float on underflow, or for `-0`.
                return Some(if neg >= 0 {
                    V::float(-(significand as f64))
                } else {
                    V::int(neg)
                });
            }
        };
        Some(V::float(if positive { f } else { -f }))
    }

    /// At `.`: the fraction (and exponent); the magnitude.
    fn decimal(&mut self, mut significand: u64, exponent: i32) -> Option<f64> {
        self.i += 1;
        let mut after: i32 = 0;
        let mut overflowed = false;
        while let Some(d) = self.digit() {
            self.i += 1;
            if overflowed {
                continue;
            }
            match significand.checked_mul(10).and_then(|s| s.checked_add(d)) {
                Some(s) => {
                    significand = s;
                    after -= 1;
                }
                None => overflowed = true,
            }
        }
        if after == 0 && !overflowed {
            return None;
        }
        let exponent = exponent.saturating_add(after);
        match self.s.get(self.i) {
            Some(b'e' | b'E') => self.exponent(significand, exponent),
            _ => f64_from_parts(significand, exponent),
        }
    }

    /// At `e`/`E`: the exponent; the magnitude.
    fn exponent(&mut self, significand: u64, starting: i32) -> Option<f64> {
        self.i += 1;
        let positive_exp = match self.s.get(self.i) {
            Some(b'+') => {
                self.i += 1;
                true
            }
            Some(b'-') => {
                self.i += 1;
                false
            }
            _ => true,
        };
        let mut exp = self.digit()? as i32;
        self.i += 1;
        while let Some(d) = self.digit() {
            self.i += 1;
            match exp.checked_mul(10).and_then(|e| e.checked_add(d as i32)) {
                Some(e) => exp = e,
                None => {
                    // Out of range instead of infinity; zero otherwise.
                    if significand != 0 && positive_exp {
                        return None;
                    }
                    while self.digit().is_some() {
                        self.i += 1;
                    }
                    return Some(0.0);
                }
            }
        }
        let exp = if positive_exp {
            starting.saturating_add(exp)
        } else {
            starting.saturating_sub(exp)
        };
        f64_from_parts(significand, exp)
    }
}

/// serde_json's `f64_from_parts` (without `float_roundtrip`): the magnitude
/// `significand * 10^exponent`; None when out of range.
fn f64_from_parts(significand: u64, mut exponent: i32) -> Option<f64> {
    let mut f = significand as f64;
    loop {
        match POW10.get(exponent.unsigned_abs() as usize) {
            Some(&pow) => {
                if exponent >= 0 {
                    f *= pow;
                    if f.is_infinite() {
                        return None;
                    }
                } else {
                    f /= pow;
                }
                return Some(f);
            }
            None => {
                if f == 0.0 {
                    return Some(f);
                }
                if exponent >= 0 {
                    return None;
                }
                f /= 1e308;
                exponent += 308;
            }
        }
    }
}

#[rustfmt::skip]
static POW10: [f64; 309] = [
    1e000, 1e001, 1e002, 1e003, 1e004, 1e005, 1e006, 1e007, 1e008, 1e009,
    1e010, 1e011, 1e012, 1e013, 1e014, 1e015, 1e016, 1e017, 1e018, 1e019,
    1e020, 1e021, 1e022, 1e023, 1e024, 1e025, 1e026, 1e027, 1e028, 1e029,
    1e030, 1e031, 1e032, 1e033, 1e034, 1e035, 1e036, 1e037, 1e038, 1e039,
    1e040, 1e041, 1e042, 1e043, 1e044, 1e045, 1e046, 1e047, 1e048, 1e049,
    1e050, 1e051, 1e052, 1e053, 1e054, 1e055, 1e056, 1e057, 1e058, 1e059,
    1e060, 1e061, 1e062, 1e063, 1e064, 1e065, 1e066, 1e067, 1e068, 1e069,
    1e070, 1e071, 1e072, 1e073, 1e074, 1e075, 1e076, 1e077, 1e078, 1e079,
    1e080, 1e081, 1e082, 1e083, 1e084, 1e085, 1e086, 1e087, 1e088, 1e089,
    1e090, 1e091, 1e092, 1e093, 1e094, 1e095, 1e096, 1e097, 1e098, 1e099,
    1e100, 1e101, 1e102, 1e103, 1e104, 1e105, 1e106, 1e107, 1e108, 1e109,
    1e110, 1e111, 1e112, 1e113, 1e114, 1e115, 1e116, 1e117, 1e118, 1e119,
    1e120, 1e121, 1e122, 1e123, 1e124, 1e125, 1e126, 1e127, 1e128, 1e129,
    1e130, 1e131, 1e132, 1e133, 1e134, 1e135, 1e136, 1e137, 1e138, 1e139,
    1e140, 1e141, 1e142, 1e143, 1e144, 1e145, 1e146, 1e147, 1e148, 1e149,
    1e150, 1e151, 1e152, 1e153, 1e154, 1e155, 1e156, 1e157, 1e158, 1e159,
    1e160, 1e161, 1e162, 1e163, 1e164, 1e165, 1e166, 1e167, 1e168, 1e169,
    1e170, 1e171, 1e172, 1e173, 1e174, 1e175, 1e176, 1e177, 1e178, 1e179,
    1e180, 1e181, 1e182, 1e183, 1e184, 1e185, 1e186, 1e187, 1e188, 1e189,
    1e190, 1e191, 1e192, 1e193, 1e194, 1e195, 1e196, 1e197, 1e198, 1e199,
    1e200, 1e201, 1e202, 1e203, 1e204, 1e205, 1e206, 1e207, 1e208, 1e209,
    1e210, 1e211, 1e212, 1e213, 1e214, 1e215, 1e216, 1e217, 1e218, 1e219,
    1e220, 1e221, 1e222, 1e223, 1e224, 1e225, 1e226, 1e227, 1e228, 1e229,
    1e230, 1e231, 1e232, 1e233, 1e234, 1e235, 1e236, 1e237, 1e238, 1e239,
    1e240, 1e241, 1e242, 1e243, 1e244, 1e245, 1e246, 1e247, 1e248, 1e249,
    1e250, 1e251, 1e252, 1e253, 1e254, 1e255, 1e256, 1e257, 1e258, 1e259,
    1e260, 1e261, 1e262, 1e263, 1e264, 1e265, 1e266, 1e267, 1e268, 1e269,
    1e270, 1e271, 1e272, 1e273, 1e274, 1e275, 1e276, 1e277, 1e278, 1e279,
    1e280, 1e281, 1e282, 1e283, 1e284, 1e285, 1e286, 1e287, 1e288, 1e289,
    1e290, 1e291, 1e292, 1e293, 1e294, 1e295, 1e296, 1e297, 1e298, 1e299,
    1e300, 1e301, 1e302, 1e303, 1e304, 1e305, 1e306, 1e307, 1e308,
];

// ---------------------------------------------------------------------------
// Writing.

/// Appends the JSON text of `v` to `out`.
pub fn dump(v: V, out: &mut String) {
    write(v, out, false, 0);
}

/// Appends the Rego text of `v` to `out`: JSON, but sets as `{1,2}` (empty:
/// `set()`) and object keys as Rego text.
pub fn dump_rego(v: V, out: &mut String) {
    write(v, out, true, 0);
}

fn bytes(out: &mut String) -> &mut Vec<u8> {
    // SAFETY: only valid UTF-8 is appended (ASCII, or whole strings).
    unsafe { out.as_mut_vec() }
}

fn write(v: V, out: &mut String, rego: bool, depth: u32) {
    if depth > MAX_DUMP_DEPTH {
        crate::abi::fail("value nested too deeply to write");
    }
    match &*v {
        Value::Lazy(_) => crate::value::never_lazy(),
        Value::Null => out.push_str("null"),
        Value::Bool(true) => out.push_str("true"),
        Value::Bool(false) => out.push_str("false"),
        Value::Number(Number::Int(i)) => write_i64(*i, out),
        Value::Number(Number::Float(f)) => write_f64(*f, out),
        Value::String(s) => write_str(s, out),
        Value::Array(items) => write_seq(items, out, rego, depth, b'[', b']'),
        Value::Set(items) if rego && items.is_empty() => out.push_str("set()"),
        Value::Set(items) if rego => write_seq(items, out, rego, depth, b'{', b'}'),
        Value::Set(items) => write_seq(items, out, rego, depth, b'[', b']'),
        Value::Object(entries) => {
            out.push('{');
            for (n, (k, e)) in entries.iter().enumerate() {
                if n > 0 {
                    out.push(',');
                }
                if rego || k.as_str().is_some() {
                    write(*k, out, rego, depth + 1);
                } else {
                    let mut key = String::new();
                    write(*k, &mut key, false, depth + 1);
                    write_str(&key, out);
                }
                out.push(':');
                write(*e, out, rego, depth + 1);
            }
            out.push('}');
        }
    }
}

fn write_seq(items: &[V], out: &mut String, rego: bool, depth: u32, open: u8, close: u8) {
    bytes(out).push(open);
    for (n, e) in items.iter().enumerate() {
        if n > 0 {
            out.push(',');
        }
        write(*e, out, rego, depth + 1);
    }
    bytes(out).push(close);
}

/// A string as serde_json writes it: runs of bytes that need no escape
/// are found eight bytes at a time and copied whole.
///
/// Most strings written (keys, messages) need no escape at all: they are
/// checked and copied without a loop where they are short (see [`ws`]).
#[inline(never)]
pub fn write_str(s: &str, out: &mut String) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let out = bytes(out);
    let s = s.as_bytes();
    out.reserve(s.len() + 2);
    out.push(b'"');
    let mut i = 0;
    loop {
        // A run that needs no escape.
        let run = i;
        i = plain_end(s, i);
        append(out, &s[run..i]);
        let Some(&b) = s.get(i) else {
            break;
        };
        i += 1;
        match b {
            b'"' => out.extend_from_slice(b"\\\""),
            b'\\' => out.extend_from_slice(b"\\\\"),
            b'\n' => out.extend_from_slice(b"\\n"),
            b'\r' => out.extend_from_slice(b"\\r"),
            b'\t' => out.extend_from_slice(b"\\t"),
            0x08 => out.extend_from_slice(b"\\b"),
            0x0c => out.extend_from_slice(b"\\f"),
            _ => out.extend_from_slice(&[
                b'\\',
                b'u',
                b'0',
                b'0',
                HEX[(b >> 4) as usize],
                HEX[(b & 0xf) as usize],
            ]),
        }
    }
    out.push(b'"');
}

/// The offset of the first byte from `i` that a JSON string must escape
/// (see [`plain_run`]), or the end of `s`. The last bytes, fewer than
/// eight, are looked at as one word that ends where `s` does (bytes it
/// overlaps that were seen already are left out); a string shorter than
/// eight bytes byte by byte.
#[inline(always)]
fn plain_end(s: &[u8], i: usize) -> usize {
    let j = plain_run::<false>(s, i);
    if j + 8 <= s.len() || j >= s.len() {
        // A special byte (or the end).
        return j;
    }
    if s.len() >= 8 {
        let at = s.len() - 8;
        // Bytes before `j` are plain, or were escaped before `i`: not
        // looked at again (j - at < 8 here).
        let special = word(s, at).map_or(0, specials::<false>) & (u64::MAX << ((j - at) * 8));
        return if special == 0 {
            s.len()
        } else {
            at + (special.trailing_zeros() / 8) as usize
        };
    }
    let mut j = j;
    while s
        .get(j)
        .is_some_and(|&b| b >= 0x20 && b != b'"' && b != b'\\')
    {
        j += 1;
    }
    j
}

/// Appends `b` to `out`; sixteen bytes or fewer as two (overlapping) words
/// each way, without a loop or a call to `memory.copy` (a call into the
/// engine).
#[inline(always)]
fn append(out: &mut Vec<u8>, b: &[u8]) {
    let n = b.len();
    if n > 16 || n < 4 {
        out.extend_from_slice(b);
        return;
    }
    out.reserve(n);
    // SAFETY: n bytes are readable at `b` and writable at the end of `out`
    // (reserved); the copies are of plain bytes and may overlap each other
    // only where they write the same bytes.
    unsafe {
        let src = b.as_ptr();
        let dst = out.as_mut_ptr().add(out.len());
        if n >= 8 {
            let (x, y) = (
                core::ptr::read_unaligned(src.cast::<u64>()),
                core::ptr::read_unaligned(src.add(n - 8).cast::<u64>()),
            );
            core::ptr::write_unaligned(dst.cast::<u64>(), x);
            core::ptr::write_unaligned(dst.add(n - 8).cast::<u64>(), y);
        } else {
            let (x, y) = (
                core::ptr::read_unaligned(src.cast::<u32>()),
                core::ptr::read_unaligned(src.add(n - 4).cast::<u32>()),
            );
            core::ptr::write_unaligned(dst.cast::<u32>(), x);
            core::ptr::write_unaligned(dst.add(n - 4).cast::<u32>(), y);
        }
        out.set_len(out.len() + n);
    }
}

/// Decimal text of an unsigned integer.
pub fn write_u64(mut n: u64, out: &mut String) {
    let mut buf = [0u8; 20];
    let mut i = buf.len();
    loop {
        i -= 1;
        buf[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    bytes(out).extend_from_slice(&buf[i..]);
}

/// Decimal text of an integer.
pub fn write_i64(n: i64, out: &mut String) {
    if n < 0 {
        out.push('-');
    }
    write_u64(n.unsigned_abs(), out);
}

/// A float as regorus writes it. regorus serialises a float by reading its
/// Rust `Display` text (shortest round-trip digits, padded with zeros, no
/// exponent) back with serde_json, which makes an integer of an integral
/// text within u64/i64 and otherwise a float (by its lossy arithmetic, see
/// [`f64_from_parts`]) that it writes with `zmij` (serde_json 1.0.154):
/// `0.1`, `4.5`, `1e+21`, `1.5e-7`, `-0.0`. Non-finite floats
/// (which regorus cannot serialise) are written as `null`.
pub fn write_f64(f: f64, out: &mut String) {
    if !f.is_finite() {
        out.push_str("null");
        return;
    }
    let neg = f.is_sign_negative();
    let Some((digits, q)) = shortest(f) else {
        // Zero: `Display` writes "0" (an integer) or "-0" (a float).
        out.push_str(if neg { "-0.0" } else { "0" });
        return;
    };
    let magnitude = if q >= 0 {
        // An integral text: digits, then q zeros, read as an integer while it
        // fits u64; the zeros past that only count towards the exponent.
        let mut sig = digits;
        let mut rest = q;
        while rest > 0 {
            match sig.checked_mul(10) {
                Some(s) => {
                    sig = s;
                    rest -= 1;
                }
                None => break,
            }
        }
        if rest == 0 {
            if !neg {
                write_u64(sig, out);
                return;
            }
            if sig <= 1u64 << 63 {
                out.push('-');
                write_u64(sig, out);
                return;
            }
            Some(sig as f64)
        } else {
            f64_from_parts(sig, rest)
        }
    } else {
        // A decimal text: the digits, and as many after the point as -q.
        f64_from_parts(digits, q)
    };
    // When the text does not read back (overflow), the float itself.
    let g = magnitude.unwrap_or(libm::fabs(f));
    if neg {
        out.push('-');
    }
    write_zmij(g, out);
}

/// The shortest round-trip decimal of a finite float's magnitude as
/// (digits without trailing zeros, exponent of the last digit); None for 0.
fn shortest(f: f64) -> Option<(u64, i32)> {
    let mut buf = ryu::Buffer::new();
    let text = buf.format_finite(libm::fabs(f)).as_bytes();
    let (mantissa, exp) = match text.iter().position(|&c| c == b'e') {
        Some(p) => {
            let e = text.get(p + 1..)?;
            let (eneg, e) = match e.split_first() {
                Some((b'-', rest)) => (true, rest),
                _ => (false, e),
            };
            let mut x: i32 = 0;
            for &d in e {
                x = x
                    .checked_mul(10)?
                    .checked_add((d.wrapping_sub(b'0')) as i32)?;
            }
            (text.get(..p)?, if eneg { -x } else { x })
        }
        None => (text, 0),
    };
    let mut digits: u64 = 0;
    let mut q = exp;
    let mut frac = false;
    for &d in mantissa {
        if d == b'.' {
            frac = true;
            continue;
        }
        digits = digits
            .checked_mul(10)?
            .checked_add((d.wrapping_sub(b'0')) as u64)?;
        if frac {
            q -= 1;
        }
    }
    if digits == 0 {
        return None;
    }
    while digits.is_multiple_of(10) {
        digits /= 10;
        q += 1;
    }
    Some((digits, q))
}

/// A positive finite float as `zmij::Buffer::format_finite` writes it
/// (serde_json's float text): plain decimals for decimal exponents -5..=15
/// (`0.00001`, `123.5`, `1000.0`), otherwise `d.ddde±x` (`1e+21`, `1.5e-7`).
fn write_zmij(g: f64, out: &mut String) {
    let Some((digits, q)) = shortest(g) else {
        out.push_str("0.0");
        return;
    };
    let mut buf = [0u8; 20];
    let mut i = buf.len();
    let mut n = digits;
    while n > 0 {
        i -= 1;
        buf[i] = b'0' + (n % 10) as u8;
        n /= 10;
    }
    let d = &buf[i..];
    let k = d.len() as i32;
    let e = q + k - 1;
    let o = bytes(out);
    if (-5..=15).contains(&e) {
        if q >= 0 {
            o.extend_from_slice(d);
            o.extend(core::iter::repeat_n(b'0', q as usize));
            o.extend_from_slice(b".0");
        } else if e >= 0 {
            let (int, frac) = d.split_at((e + 1) as usize);
            o.extend_from_slice(int);
            o.push(b'.');
            o.extend_from_slice(frac);
        } else {
            o.extend_from_slice(b"0.");
            o.extend(core::iter::repeat_n(b'0', (-e - 1) as usize));
            o.extend_from_slice(d);
        }
        return;
    }
    if let Some((first, rest)) = d.split_first() {
        o.push(*first);
        if !rest.is_empty() {
            o.push(b'.');
            o.extend_from_slice(rest);
        }
    }
    o.push(b'e');
    o.push(if e < 0 { b'-' } else { b'+' });
    write_u64(e.unsigned_abs() as u64, out);
}
