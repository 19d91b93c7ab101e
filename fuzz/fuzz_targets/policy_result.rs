//! What an OPA-Wasm policy module hands back to the host: the result set
//! of an evaluation (NUL-terminated JSON at an address in its memory,
//! `wasm_host::result_set`) and the name-to-id maps of `entrypoints()`
//! and `builtins()` (`wasm_host::id_map`). The module is untrusted: its
//! memory may hold anything.
//!
//! Input: four bytes of address, then the memory.
//!
//! Invariants: nothing panics; an accepted result is a JSON array and is
//! the text at the address up to its first NUL; an accepted id map names
//! exactly the keys of the JSON object, each with an id of 32 bits.
#![no_main]

use libfuzzer_sys::fuzz_target;
use serde_json::Value as Json;
use wasmlayer_policy::wasm_host::{id_map, result_set};

fuzz_target!(|data: &[u8]| {
    if data.len() < 4 {
        return;
    }
    let raw = i32::from_le_bytes(data[..4].try_into().unwrap());
    let memory = &data[4..];
    // Mostly addresses inside the memory, sometimes the raw value (past
    // the end, negative).
    let addr = if raw & 1 == 0 && !memory.is_empty() {
        ((raw as u32 >> 1) as usize % memory.len()) as i32
    } else {
        raw
    };
    match result_set(memory, addr) {
        Ok(value) => {
            assert!(value.is_array(), "a result set that is not an array: {value}");
            let start = addr as u32 as usize;
            let tail = &memory[start..];
            let end = tail.iter().position(|b| *b == 0).expect("NUL-terminated");
            let reparsed: Json = serde_json::from_slice(&tail[..end]).expect("the same text");
            assert_eq!(reparsed, value);
        }
        Err(e) => assert!(!e.is_empty()),
    }
    if let Ok(text) = std::str::from_utf8(memory) {
        match id_map(text, "entrypoints") {
            Ok(map) => {
                let Ok(Json::Object(obj)) = serde_json::from_str::<Json>(text) else {
                    panic!("an id map from text that is not a JSON object: {text:?}");
                };
                assert_eq!(map.len(), obj.len());
                for (k, id) in &map {
                    assert_eq!(obj[k].as_i64(), Some(i64::from(*id)), "{k}");
                }
            }
            Err(e) => assert!(e.contains("entrypoints()"), "{e}"),
        }
    }
});
