//! Byte comparison for the runtime: [`cmp_bytes`], which orders the keys of
//! objects, the elements of sets and strings, and `memcmp` and `bcmp` in
//! place of the byte-at-a-time ones of Rust's `compiler_builtins` (whose
//! weak symbols these replace) for the comparisons that still reach them.
//!
//! Eight bytes at a time, and the last few without a loop: Wasm engines
//! check for interruption at every iteration of a loop, and most keys are
//! shorter than eight bytes. Wasm has no byte swap, so the first differing
//! byte is found from the lowest set bit of the two words' difference
//! (little-endian) and compared alone.

use core::cmp::Ordering;

/// Unaligned little-endian loads.
///
/// # Safety
/// `p` is readable for the width read.
#[inline(always)]
unsafe fn load64(p: *const u8) -> u64 {
    u64::from_le(unsafe { core::ptr::read_unaligned(p.cast::<u64>()) })
}

#[inline(always)]
unsafe fn load32(p: *const u8) -> u64 {
    u64::from(u32::from_le(unsafe {
        core::ptr::read_unaligned(p.cast::<u32>())
    }))
}

#[inline(always)]
unsafe fn load16(p: *const u8) -> u64 {
    u64::from(u16::from_le(unsafe {
        core::ptr::read_unaligned(p.cast::<u16>())
    }))
}

/// The offset of the first byte where the `n` bytes at `a` and `b` differ,
/// or `n` when they are equal.
///
/// # Safety
/// `a` and `b` are readable for `n` bytes.
#[inline(always)]
unsafe fn mismatch(a: *const u8, b: *const u8, n: usize) -> usize {
    // SAFETY (all reads): within the first n bytes.
    unsafe {
        if n >= 8 {
            // Eight bytes at a time while more than sixteen are left, then
            // the last eight to sixteen as two words, which may overlap
            // (where the first is equal, the overlap is too).
            let mut i = 0;
            if n > 16 {
                i = mismatch_long(a, b, n - 16);
                if i < n - 16 {
                    return i;
                }
            }
            let d = load64(a.add(i)) ^ load64(b.add(i));
            if d != 0 {
                return i + (d.trailing_zeros() / 8) as usize;
            }
            let d = load64(a.add(n - 8)) ^ load64(b.add(n - 8));
            if d != 0 {
                return n - 8 + (d.trailing_zeros() / 8) as usize;
            }
            return n;
        }
        // Fewer than eight bytes as two words, the first and the last four
        // (or two) bytes, the first in the low half; likewise.
        let (d, half, tail) = if n >= 4 {
            (
                (load32(a) | load32(a.add(n - 4)) << 32) ^ (load32(b) | load32(b.add(n - 4)) << 32),
                4,
                n - 4,
            )
        } else if n >= 2 {
            (
                (load16(a) | load16(a.add(n - 2)) << 16) ^ (load16(b) | load16(b.add(n - 2)) << 16),
                2,
                n - 2,
            )
        } else if n == 1 {
            (u64::from(*a ^ *b), 1, 0)
        } else {
            return 0;
        };
        if d == 0 {
            return n;
        }
        let k = (d.trailing_zeros() / 8) as usize;
        if k < half {
            k
        } else {
            tail + k - half
        }
    }
}

/// The offset of the first differing byte of the first `n` bytes, eight at
/// a time, or the first multiple of eight at or past `n` when they are
/// equal.
///
/// # Safety
/// `a` and `b` are readable for `n` bytes rounded up to eight.
#[inline(never)]
unsafe fn mismatch_long(a: *const u8, b: *const u8, n: usize) -> usize {
    let mut i = 0;
    while i < n {
        // SAFETY: by the caller.
        let d = unsafe { load64(a.add(i)) ^ load64(b.add(i)) };
        if d != 0 {
            return i + (d.trailing_zeros() / 8) as usize;
        }
        i += 8;
    }
    i
}

/// The order of two byte strings, as `Ord` for slices orders them.
#[inline(always)]
pub fn cmp_bytes(a: &[u8], b: &[u8]) -> Ordering {
    let n = a.len().min(b.len());
    // SAFETY: both are readable for n bytes.
    let k = unsafe { mismatch(a.as_ptr(), b.as_ptr(), n) };
    if k < n {
        // SAFETY: k < n.
        unsafe { a.get_unchecked(k).cmp(b.get_unchecked(k)) }
    } else {
        a.len().cmp(&b.len())
    }
}

/// The order of the first `n` bytes at `a` and `b`, as C's `memcmp`.
///
/// # Safety
/// `a` and `b` are readable for `n` bytes.
#[no_mangle]
pub unsafe extern "C" fn memcmp(a: *const u8, b: *const u8, n: usize) -> i32 {
    // SAFETY: by the caller.
    unsafe {
        let k = mismatch(a, b, n);
        if k < n {
            i32::from(*a.add(k)) - i32::from(*b.add(k))
        } else {
            0
        }
    }
}

/// Zero when the first `n` bytes at `a` and `b` are equal, as C's `bcmp`.
///
/// # Safety
/// As [`memcmp`].
#[no_mangle]
pub unsafe extern "C" fn bcmp(a: *const u8, b: *const u8, n: usize) -> i32 {
    // SAFETY: by the caller.
    unsafe { memcmp(a, b, n) }
}
