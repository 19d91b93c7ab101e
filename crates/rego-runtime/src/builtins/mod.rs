//! Rego's builtins, each its own export `builtin:<name>` (see the crate's
//! documentation), so that linking keeps only those a policy calls.

pub mod collections;
pub mod encoding;
pub mod numbers;
pub mod strings;
