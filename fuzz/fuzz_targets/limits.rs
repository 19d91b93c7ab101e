//! Sizes and durations (`--max-memory`, `--timeout`, manifest and grant
//! values): `limits::parse_size`, `limits::parse_duration`, and the
//! formatting that goes the other way.
//!
//! Invariants: nothing panics; `format_size` output always parses, exactly
//! for a whole number of units and to within the printed precision
//! otherwise; any duration printed by `format_duration` parses back to the
//! same duration, so `Limits` survives its own serialisation (checked for
//! sizes, and for timeouts in the enforceable range, `check_timeout`).
#![no_main]

use libfuzzer_sys::fuzz_target;
use std::time::Duration;
use wasmlayer_core::limits::{
    check_timeout, format_duration, format_size, parse_duration, parse_size, MAX_TIMEOUT,
};
use wasmlayer_core::Limits;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        if let Ok(n) = parse_size(text) {
            assert_eq!(parse_size(&n.to_string()), Ok(n), "{text:?}");
            assert_eq!(parse_size(&format!("{n} B")), Ok(n), "{text:?}");
            size(n);
        }
        if let Ok(d) = parse_duration(text) {
            duration(d);
        }
    }
    // The same bytes as numbers: any size, and any duration, also with its
    // seconds folded into the timeout range.
    if data.len() >= 12 {
        let n = u64::from_le_bytes(data[..8].try_into().unwrap());
        let nanos = u32::from_le_bytes(data[8..12].try_into().unwrap()) % 1_000_000_000;
        size(n);
        duration(Duration::new(n, nanos));
        duration(Duration::new(n % (MAX_TIMEOUT.as_secs() + 1), nanos));
    }
});

fn size(n: u64) {
    let shown = format_size(n);
    let back = parse_size(&shown)
        .unwrap_or_else(|e| panic!("format_size({n}) = {shown:?}, which does not parse: {e}"));
    let unit: u64 = if shown.ends_with(" GiB") {
        1 << 30
    } else if shown.ends_with(" MiB") {
        1 << 20
    } else if shown.ends_with(" KiB") {
        1 << 10
    } else {
        assert!(shown.ends_with(" bytes"), "{shown:?}");
        1
    };
    if shown.contains('.') {
        // One decimal: off by at most half a tenth of the unit (a tenth
        // within half a tenth of the largest size, where rounding up would
        // pass it), and the rounding of the float in between.
        let off = back.abs_diff(n);
        let tenth = if u64::MAX - n < unit / 20 { unit / 10 } else { unit / 20 };
        assert!(
            off <= tenth + unit / 1000,
            "format_size({n}) = {shown:?} reads back as {back} ({off} off)"
        );
    } else {
        assert_eq!(back, n, "format_size({n}) = {shown:?}");
    }
    let limits = Limits {
        max_memory: Some(n),
        ..Limits::default()
    };
    let json = serde_json::to_string(&limits).expect("serialise");
    let again: Limits = serde_json::from_str(&json)
        .unwrap_or_else(|e| panic!("{limits:?} as {json} does not parse back: {e}"));
    assert_eq!(again, limits, "through {json}");
}

fn duration(d: Duration) {
    let shown = format_duration(d);
    let back = parse_duration(&shown)
        .unwrap_or_else(|e| panic!("format_duration({d:?}) = {shown:?}, which does not parse: {e}"));
    assert_eq!(back, d, "format_duration({d:?}) = {shown:?}");
    if check_timeout(d).is_err() {
        return;
    }
    let limits = Limits {
        timeout: Some(d),
        fuel: Some(d.subsec_nanos().into()),
        ..Limits::default()
    };
    let json = serde_json::to_string(&limits).expect("serialise");
    let again: Limits = serde_json::from_str(&json)
        .unwrap_or_else(|e| panic!("{limits:?} as {json} does not parse back: {e}"));
    assert_eq!(again, limits, "through {json}");
    assert!(again.validate().is_ok(), "{json}");
}
