//! Resource limits for a guest, and the limiter that enforces memory.

use serde::{Deserialize, Serialize};
use std::time::Duration;

/// What a guest may consume. `None` means "no limit beyond WebAssembly's own".
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Limits {
    /// Total bytes of all linear memories and tables of the guest.
    #[serde(default, with = "size_opt", skip_serializing_if = "Option::is_none")]
    pub max_memory: Option<u64>,
    /// Fuel (WebAssembly work units) the guest may burn.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fuel: Option<u64>,
    /// Wall-clock time the guest may run.
    #[serde(
        default,
        with = "duration_opt",
        skip_serializing_if = "Option::is_none"
    )]
    pub timeout: Option<Duration>,
}

/// Instances, memories and tables one store may create: components create
/// several of each; memory is bounded by [`Limits::max_memory`].
pub const MAX_INSTANCES_PER_STORE: usize = 10_000;

/// Size of one table element, as counted against the memory limit.
pub const TABLE_ELEMENT_BYTES: u64 = std::mem::size_of::<usize>() as u64;

/// Parses `64MiB`, `1GiB`, `512KiB`, `100MB`, `65536` (bytes), `2g`,
/// `100 bytes`... (whatever [`format_size`] prints).
pub fn parse_size(s: &str) -> Result<u64, String> {
    let t = s.trim();
    let split = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.' || c == '_'))
        .unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let num = num.replace('_', "");
    let bad_number =
        || format!("invalid size `{s}`: expected a number with an optional unit such as 64MiB");
    let mult: u64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" | "byte" | "bytes" => 1,
        "k" | "kib" => 1 << 10,
        "m" | "mib" => 1 << 20,
        "g" | "gib" => 1 << 30,
        "kb" => 1_000,
        "mb" => 1_000_000,
        "gb" => 1_000_000_000,
        other => {
            return Err(format!(
                "invalid size `{s}`: unknown unit `{other}` (use B, KiB, MiB, GiB, KB, MB, GB)"
            ))
        }
    };
    let out_of_range = || {
        format!(
            "invalid size `{s}`: out of range (the largest size is {} bytes, 16 EiB - 1)",
            u64::MAX
        )
    };
    // Whole numbers are computed exactly; only fractions go through floats.
    if !num.contains('.') {
        let n: u128 = num.parse().map_err(|_| {
            if !num.is_empty() && num.bytes().all(|b| b.is_ascii_digit()) {
                out_of_range()
            } else {
                bad_number()
            }
        })?;
        return n
            .checked_mul(u128::from(mult))
            .and_then(|v| u64::try_from(v).ok())
            .ok_or_else(out_of_range);
    }
    let num: f64 = num.parse().map_err(|_| bad_number())?;
    let v = num * mult as f64;
    // `u64::MAX as f64` rounds up to 2^64, which is already out of range.
    if !v.is_finite() || v < 0.0 || v >= u64::MAX as f64 {
        return Err(out_of_range());
    }
    Ok(v as u64)
}

/// The shortest timeout that can be enforced: the guest runs on a thread of
/// its own and is stopped at epoch checks, which takes about a millisecond
/// to set up; a shorter deadline would pass before the guest starts.
pub const MIN_TIMEOUT: Duration = Duration::from_millis(1);

/// The longest timeout accepted (365 days). For no limit, give no timeout.
pub const MAX_TIMEOUT: Duration = Duration::from_secs(365 * 24 * 3600);

/// Checks that a timeout is one the runner can enforce:
/// [`MIN_TIMEOUT`]..=[`MAX_TIMEOUT`].
pub fn check_timeout(d: Duration) -> Result<(), String> {
    if (MIN_TIMEOUT..=MAX_TIMEOUT).contains(&d) {
        Ok(())
    } else {
        Err(format!(
            "a timeout must be from 1ms to 8760h (365 days), not {} (leave it out for no timeout)",
            format_duration(d)
        ))
    }
}

impl Limits {
    /// Checks that every limit is one the runner can enforce (see
    /// [`check_timeout`]; sizes and fuel are enforced over the whole `u64`
    /// range).
    pub fn validate(&self) -> Result<(), crate::Error> {
        if let Some(t) = self.timeout {
            check_timeout(t).map_err(crate::Error::usage)?;
        }
        Ok(())
    }
}

/// Formats a byte count the way users write it: `64 MiB`, `1.5 GiB`,
/// `100 bytes`. The text is a size [`parse_size`] reads: exactly `n` for a
/// whole number of units, otherwise `n` to one decimal.
pub fn format_size(n: u64) -> String {
    const UNITS: [(&str, u64); 3] = [("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)];
    for (name, size) in UNITS {
        if n >= size {
            if n.is_multiple_of(size) {
                return format!("{} {name}", n / size);
            }
            // Tenths of the unit, rounded half to even, in integers.
            let (n, size) = (u128::from(n), u128::from(size));
            let (mut tenths, rest) = (n * 10 / size, n * 10 % size);
            if 2 * rest > size || (2 * rest == size && tenths % 2 == 1) {
                tenths += 1;
            }
            // Rounded up past the largest size (`17179869184.0 GiB` for
            // u64::MAX), the text would not parse: round down there.
            if tenths * size > u128::from(u64::MAX) * 10 {
                tenths -= 1;
            }
            return format!("{}.{} {name}", tenths / 10, tenths % 10);
        }
    }
    format!("{n} bytes")
}

/// Parses `500ms`, `2s`, `1.5s`, `1m`, `250us`; a bare number is seconds.
/// The number is read exactly, to the nearest nanosecond, so whatever
/// [`format_duration`] prints reads back as the same duration.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let t = s.trim();
    let split = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let bad_number = || format!("invalid duration `{s}`: expected e.g. 500ms, 2s, 1m");
    let out_of_range = || format!("invalid duration `{s}`: out of range");
    // Nanoseconds in one unit.
    let unit_ns: u128 = match unit.trim() {
        "" | "s" => 1_000_000_000,
        "ms" => 1_000_000,
        "us" | "µs" => 1_000,
        "ns" => 1,
        "m" | "min" => 60_000_000_000,
        "h" => 3_600_000_000_000,
        other => {
            return Err(format!(
                "invalid duration `{s}`: unknown unit `{other}` (use ns, us, ms, s, m, h)"
            ))
        }
    };
    // Digits, with at most one decimal point and at least one digit.
    let (whole, frac) = num.split_once('.').unwrap_or((num, ""));
    if frac.contains('.') || (whole.is_empty() && frac.is_empty()) {
        return Err(bad_number());
    }
    let whole: u128 = match whole {
        "" => 0,
        w => w.parse().map_err(|_| out_of_range())?,
    };
    // The fraction times the unit, digit by digit from the last: what is
    // carried is the whole nanoseconds, the last remainder the first digit
    // past them, which rounds.
    let mut carry: u128 = 0;
    let mut first_dropped = 0;
    for d in frac.bytes().rev() {
        let v = u128::from(d - b'0') * unit_ns + carry;
        carry = v / 10;
        first_dropped = v % 10;
    }
    let nanos = whole
        .checked_mul(unit_ns)
        .and_then(|n| n.checked_add(carry + u128::from(first_dropped >= 5)))
        .ok_or_else(out_of_range)?;
    let secs = u64::try_from(nanos / 1_000_000_000).map_err(|_| out_of_range())?;
    Ok(Duration::new(secs, (nanos % 1_000_000_000) as u32))
}

/// Formats a duration compactly: `500ms`, `2s`, `1.5s`.
pub fn format_duration(d: Duration) -> String {
    if d.as_millis() < 1000 && d.subsec_nanos().is_multiple_of(1_000_000) {
        format!("{}ms", d.as_millis())
    } else if d.subsec_nanos() == 0 {
        format!("{}s", d.as_secs())
    } else {
        format!("{:?}", d)
    }
}

mod size_opt {
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(v: &Option<u64>, s: S) -> Result<S::Ok, S::Error> {
        match v {
            Some(n) => s.serialize_u64(*n),
            None => s.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u64>, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            N(u64),
            S(String),
        }
        match Option::<Raw>::deserialize(d)? {
            None => Ok(None),
            Some(Raw::N(n)) => Ok(Some(n)),
            Some(Raw::S(s)) => super::parse_size(&s)
                .map(Some)
                .map_err(serde::de::Error::custom),
        }
    }
}

mod duration_opt {
    use serde::{Deserialize, Deserializer, Serializer};
    use std::time::Duration;

    pub fn serialize<S: Serializer>(v: &Option<Duration>, s: S) -> Result<S::Ok, S::Error> {
        match v {
            Some(d) => s.serialize_str(&super::format_duration(*d)),
            None => s.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
        Option::<String>::deserialize(d)?
            .map(|s| super::parse_duration(&s).map_err(serde::de::Error::custom))
            .transpose()
    }
}

/// Enforces [`Limits::max_memory`] across every linear memory and table of a
/// store, and remembers whether the limit was hit so the runner can report it.
#[derive(Debug, Default)]
pub struct MemoryLimiter {
    limit: Option<u64>,
    max_instances: usize,
    used: u64,
    peak: u64,
    hit: bool,
}

impl MemoryLimiter {
    pub fn new(limits: &Limits) -> Self {
        MemoryLimiter {
            limit: limits.max_memory,
            max_instances: MAX_INSTANCES_PER_STORE,
            ..Default::default()
        }
    }

    /// Whether a growth was refused because of the limit.
    pub fn hit(&self) -> bool {
        self.hit
    }

    /// Peak bytes of memories and tables seen.
    pub fn peak(&self) -> u64 {
        self.peak
    }

    fn grow(&mut self, current: u64, desired: u64) -> wasmtime::Result<bool> {
        let next = self.used.saturating_sub(current).saturating_add(desired);
        if let Some(limit) = self.limit {
            if next > limit {
                self.hit = true;
                return Err(wasmtime::Error::new(MemoryLimitHit {
                    limit,
                    wanted: next,
                }));
            }
        }
        self.used = next;
        self.peak = self.peak.max(next);
        Ok(true)
    }
}

/// The error a refused growth traps with.
#[derive(Debug)]
pub struct MemoryLimitHit {
    /// The limit.
    pub limit: u64,
    /// The bytes of memories and tables the growth would have made.
    pub wanted: u64,
}

impl std::fmt::Display for MemoryLimitHit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "guest exceeded its memory limit ({})",
            format_size(self.limit)
        )
    }
}

impl std::error::Error for MemoryLimitHit {}

impl wasmtime::ResourceLimiter for MemoryLimiter {
    fn memory_growing(
        &mut self,
        current: usize,
        desired: usize,
        _max: Option<usize>,
    ) -> wasmtime::Result<bool> {
        self.grow(current as u64, desired as u64)
    }

    fn table_growing(
        &mut self,
        current: usize,
        desired: usize,
        _max: Option<usize>,
    ) -> wasmtime::Result<bool> {
        self.grow(
            (current as u64).saturating_mul(TABLE_ELEMENT_BYTES),
            (desired as u64).saturating_mul(TABLE_ELEMENT_BYTES),
        )
    }

    fn instances(&self) -> usize {
        self.max_instances
    }

    fn tables(&self) -> usize {
        self.max_instances
    }

    fn memories(&self) -> usize {
        self.max_instances
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes() {
        assert_eq!(parse_size("64MiB").unwrap(), 64 << 20);
        assert_eq!(parse_size("64 MiB").unwrap(), 64 << 20);
        assert_eq!(parse_size("1g").unwrap(), 1 << 30);
        assert_eq!(parse_size("100MB").unwrap(), 100_000_000);
        assert_eq!(parse_size("4096").unwrap(), 4096);
        assert!(parse_size("lots").is_err());
        assert!(parse_size("5 parsecs").is_err());
        assert!(parse_size("-1MiB").is_err());
        assert_eq!(parse_size("18446744073709551615").unwrap(), u64::MAX);
        for over in [
            "18446744073709551616",
            "99999999999999999999999999999999999999999",
            "17179869184GiB",
            "17179869184.0GiB",
            "1e3",
        ] {
            assert!(parse_size(over).is_err(), "{over}");
        }
        assert!(parse_size("18446744073709551616")
            .unwrap_err()
            .contains("out of range"));
        assert_eq!(parse_size("1.5KiB").unwrap(), 1536);
        assert_eq!(format_size(64 << 20), "64 MiB");
        assert_eq!(format_size(3 << 29), "1.5 GiB");
        assert_eq!(format_size(100), "100 bytes");
    }

    /// Found by the `limits` fuzz target: the largest size printed as
    /// `17179869184.0 GiB`, rounded up past the largest size there is, so
    /// the text did not parse back.
    #[test]
    fn fuzz_regression_format_size_of_the_largest_size() {
        assert_eq!(format_size(u64::MAX), "17179869183.9 GiB");
        // Within half a tenth of the unit; a tenth at the very top, where
        // rounding up would pass the largest size (and the float a
        // fraction goes through in parse_size).
        for (n, unit, off) in [
            (u64::MAX, 1 << 30, 10),
            (u64::MAX - (50 << 20), 1 << 30, 10),
            (u64::MAX - (60 << 20), 1 << 30, 20),
            ((1 << 63) + 1, 1 << 30, 20),
            (3 << 29, 1 << 30, 20),
            (1536, 1 << 10, 20),
            (1025, 1 << 10, 20),
        ] {
            let back = parse_size(&format_size(n)).unwrap();
            assert!(back.abs_diff(n) <= unit / off + unit / 1000, "{n}: {back}");
        }
        // Rounded as before: half to even, one decimal.
        assert_eq!(format_size(1280), "1.2 KiB");
        assert_eq!(format_size(1331), "1.3 KiB");
        assert_eq!(format_size((1 << 30) + 1), "1.0 GiB");
        assert_eq!(format_size((2 << 30) - 1), "2.0 GiB");
    }

    /// Found by the `limits` fuzz target: sizes under 1 KiB print as
    /// `N bytes`, a unit `parse_size` refused.
    #[test]
    fn fuzz_regression_format_size_in_bytes() {
        assert_eq!(format_size(0), "0 bytes");
        assert_eq!(parse_size("0 bytes"), Ok(0));
        for n in [0, 1, 100, 1023] {
            assert_eq!(parse_size(&format_size(n)), Ok(n), "{n}");
        }
        assert_eq!(parse_size("1 byte"), Ok(1));
        assert_eq!(parse_size("2 BYTES"), Ok(2));
        assert!(parse_size("2 bites").is_err());
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("500ms").unwrap(), Duration::from_millis(500));
        assert_eq!(parse_duration("2").unwrap(), Duration::from_secs(2));
        assert_eq!(parse_duration("1.5s").unwrap(), Duration::from_millis(1500));
        assert_eq!(parse_duration("1m").unwrap(), Duration::from_secs(60));
        assert!(parse_duration("soon").is_err());
        assert!(parse_duration("1 fortnight").is_err());
        assert_eq!(format_duration(Duration::from_millis(500)), "500ms");
        assert_eq!(format_duration(Duration::from_secs(2)), "2s");
        assert!(check_timeout(parse_duration("1ns").unwrap()).is_err());
        assert!(check_timeout(parse_duration("999us").unwrap()).is_err());
        assert!(check_timeout(parse_duration("0").unwrap()).is_err());
        assert!(check_timeout(parse_duration("1ms").unwrap()).is_ok());
        assert!(check_timeout(parse_duration("8760h").unwrap()).is_ok());
        assert!(check_timeout(parse_duration("8761h").unwrap()).is_err());
    }

    /// Found by the `limits` fuzz target: a number was read through a
    /// float, so a timeout past about 104 days (2^53 ns) printed to the
    /// nanosecond read back rounded (21136809.999999999s as 21136810s), and
    /// `Limits` did not survive its own serialisation.
    #[test]
    fn fuzz_regression_durations_read_back_exactly() {
        let d = Duration::new(21_136_809, 999_999_999);
        assert_eq!(format_duration(d), "21136809.999999999s");
        assert_eq!(parse_duration("21136809.999999999s"), Ok(d));
        for d in [
            Duration::new(10_000_000, 1),
            Duration::new(MAX_TIMEOUT.as_secs() - 1, 999_999_999),
            Duration::new(0, 1_500_001),
            Duration::new(0, 1_001),
            Duration::new(u64::MAX, 999_999_999),
            MIN_TIMEOUT,
        ] {
            assert_eq!(parse_duration(&format_duration(d)), Ok(d), "{d:?}");
        }
        let limits = Limits {
            timeout: Some(Duration::new(21_136_809, 999_999_999)),
            ..Limits::default()
        };
        let json = serde_json::to_string(&limits).unwrap();
        assert_eq!(serde_json::from_str::<Limits>(&json).unwrap(), limits);
        // Units, rounding to the nearest nanosecond, and the edges.
        assert_eq!(parse_duration("1.5m"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_duration("0.25h"), Ok(Duration::from_secs(900)));
        assert_eq!(parse_duration(".5s"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("2."), Ok(Duration::from_secs(2)));
        assert_eq!(parse_duration("1.5ns"), Ok(Duration::from_nanos(2)));
        assert_eq!(parse_duration("1.4999ns"), Ok(Duration::from_nanos(1)));
        assert_eq!(
            parse_duration("0.0000000004999999999999999999999s"),
            Ok(Duration::ZERO)
        );
        assert_eq!(
            parse_duration("1.000000000500000000000000000001s"),
            Ok(Duration::new(1, 1))
        );
        assert_eq!(parse_duration("250 µs"), Ok(Duration::from_micros(250)));
        for bad in [".", "", "1.2.3s", "s", "-1s", "1e3s"] {
            assert!(parse_duration(bad).is_err(), "{bad}");
        }
        assert!(parse_duration("18446744073709551616s")
            .unwrap_err()
            .contains("out of range"));
        assert!(parse_duration(&"9".repeat(60))
            .unwrap_err()
            .contains("out of range"));
        assert_eq!(
            parse_duration("18446744073709551615.999999999s"),
            Ok(Duration::MAX)
        );
    }

    #[test]
    fn limiter_counts_all_memories_and_tables() {
        use wasmtime::ResourceLimiter;
        let mut l = MemoryLimiter::new(&Limits {
            max_memory: Some(1 << 20),
            ..Default::default()
        });
        assert!(l.memory_growing(0, 512 << 10, None).unwrap());
        assert!(l.memory_growing(0, 256 << 10, None).unwrap());
        assert!(l.memory_growing(512 << 10, (768 << 10) + 1, None).is_err());
        assert!(l.hit());
        assert_eq!(l.peak(), 768 << 10);
        assert!(l.table_growing(0, 1000, None).unwrap());
    }
}
