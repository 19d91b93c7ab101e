//! The value runtime of compiled Rego policy modules, for
//! wasm32-unknown-unknown without std.
//!
//! `wasmlayer policy build` compiles a policy to Wasm functions that call
//! this runtime and links them into it (crates/policy/src/compile/). The
//! pieces:
//!
//! - [`value`]: values on the heap, Rego's order and equality;
//! - [`heap`]: the bump allocator behind OPA's heap pointer;
//! - [`json`]: JSON and Rego value text, parsed and written;
//! - [`rt`] and [`member`]: the operations the generated code calls (`rt_*`
//!   exports);
//! - [`builtins`]: Rego's builtins (`builtin:<name>` exports);
//! - [`abi`]: OPA's Wasm ABI (1.3) exports and imports.
//!
//! Linking keeps only what the policy's code reaches from the ABI exports,
//! so a builtin the policy does not call costs nothing.
#![no_std]

extern crate alloc;

pub mod abi;
pub mod builtins;
pub mod heap;
pub mod json;
pub mod mem;
pub mod member;
pub mod rt;
pub mod value;

#[global_allocator]
static ALLOC: heap::Bump = heap::Bump;

#[panic_handler]
fn panic(_: &core::panic::PanicInfo) -> ! {
    abi::fail("policy runtime: internal error")
}
