//! Artifact detection from the bytes of a file: `artifact::detect` (binary
//! module or component, WebAssembly text, precompiled ELF) and
//! `artifact::known_prefix`, the check on a file's first 4 KiB that lets
//! a large file of anything else be refused before it is read whole.
//!
//! Invariants: nothing panics; whatever `detect` accepts, `known_prefix`
//! accepts from its head (so no valid artifact is refused early); the
//! kind agrees with the header.
#![no_main]

use libfuzzer_sys::fuzz_target;
use wasmlayer_core::artifact::{detect, known_prefix, wasi_capabilities};
use wasmlayer_core::{ArtifactKind, Format};

/// What `runtime::read_artifact` reads before deciding.
const HEAD: usize = 4096;

fuzz_target!(|data: &[u8]| {
    let head = &data[..data.len().min(HEAD)];
    let known = known_prefix(head);
    match detect(data) {
        Ok((format, kind)) => {
            assert!(known, "detect accepts {format:?} that known_prefix refuses");
            match format {
                Format::Wasm => {
                    assert!(data.starts_with(b"\0asm") && data.len() >= 8);
                    let expected = match data[4..8] {
                        [1, 0, 0, 0] => ArtifactKind::Module,
                        [_, _, 1, 0] => ArtifactKind::Component,
                        ref v => panic!("accepted binary of version/layer {v:02x?}"),
                    };
                    assert_eq!(kind, Some(expected));
                }
                Format::Precompiled => {
                    assert!(data.starts_with(b"\x7fELF") && kind.is_some());
                }
                Format::Wat => assert_eq!(kind, None),
            }
            // Detection depends on the head only for text: the same verdict
            // for the head alone.
            if format == Format::Wat {
                assert!(matches!(detect(head), Ok((Format::Wat, None))));
            }
        }
        Err(e) => {
            assert!(!e.to_string().is_empty());
            // A file refused whole is refused by its head too, unless it
            // starts like a binary format (whose header is checked later).
            if known && !data.starts_with(b"\0asm") && !data.starts_with(b"\x7fELF") {
                panic!("known_prefix accepts what detect refuses: {e}");
            }
        }
    }
    // Import names, one a line, into capability classes.
    if let Ok(text) = std::str::from_utf8(head) {
        let classes = wasi_capabilities(text.lines());
        let mut sorted = classes.clone();
        sorted.sort_unstable();
        sorted.dedup();
        assert_eq!(classes, sorted, "classes are sorted and unique");
    }
});
