//! The module's heap: a bump allocator over the imported linear memory.
//!
//! Its top is the ABI's heap pointer (`opa_heap_ptr_get` / `opa_heap_ptr_set`).
//! Hosts save the pointer and reset the heap to it between evaluations;
//! whatever lies above a saved pointer is then reused. Freeing only gives back
//! the block on top of the heap, which is what growing and dropping vectors and
//! strings mostly needs.

use core::alloc::{GlobalAlloc, Layout};
use core::arch::wasm32;
use core::cell::Cell;

const PAGE: usize = 65536;

extern "C" {
    /// End of static data and stack, set by the linker.
    static __heap_base: u8;
}

struct Top(Cell<usize>);
// SAFETY: wasm32-unknown-unknown without threads: one thread only.
unsafe impl Sync for Top {}

static TOP: Top = Top(Cell::new(0));

/// The current heap pointer.
#[inline(always)]
pub fn top() -> usize {
    let t = TOP.0.get();
    if t != 0 {
        return t;
    }
    // SAFETY: only the symbol's address is taken.
    let base = core::ptr::addr_of!(__heap_base) as usize;
    TOP.0.set(base);
    base
}

/// Moves the heap pointer (the ABI's `opa_heap_ptr_set`).
pub fn set_top(addr: usize) {
    TOP.0.set(addr);
}

/// Grows linear memory so that `end` is addressable.
#[inline(always)]
fn reserve(end: usize) -> bool {
    let have = wasm32::memory_size(0) * PAGE;
    if end <= have {
        return true;
    }
    let pages = (end - have).div_ceil(PAGE);
    wasm32::memory_grow(0, pages) != usize::MAX
}

/// Allocates `size` bytes aligned to `align` (a power of two); null when
/// memory cannot grow.
#[inline(always)]
pub fn alloc(size: usize, align: usize) -> *mut u8 {
    let start = match top().checked_add(align - 1) {
        Some(v) => v & !(align - 1),
        None => return core::ptr::null_mut(),
    };
    let end = match start.checked_add(size) {
        Some(e) if reserve(e) => e,
        _ => return core::ptr::null_mut(),
    };
    TOP.0.set(end);
    start as *mut u8
}

pub struct Bump;

unsafe impl GlobalAlloc for Bump {
    #[inline(always)]
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let p = alloc(layout.size(), layout.align());
        if p.is_null() {
            crate::abi::fail("policy runtime: out of memory");
        }
        p
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        if ptr as usize + layout.size() == top() {
            TOP.0.set(ptr as usize);
        }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let start = ptr as usize;
        if start + layout.size() == top() {
            // The block on top of the heap grows or shrinks in place.
            let end = match start.checked_add(new_size) {
                Some(e) if reserve(e) => e,
                _ => crate::abi::fail("policy runtime: out of memory"),
            };
            TOP.0.set(end);
            return ptr;
        }
        if new_size <= layout.size() {
            return ptr;
        }
        let new =
            unsafe { self.alloc(Layout::from_size_align_unchecked(new_size, layout.align())) };
        // SAFETY: both blocks are live and do not overlap (the new one is
        // above the heap top the old one lay under).
        unsafe { core::ptr::copy_nonoverlapping(ptr, new, layout.size()) };
        new
    }
}
