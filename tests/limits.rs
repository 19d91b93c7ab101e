//! Limits end runaway guests with a documented exit code and one clear line.

mod common;
use common::*;
use std::time::{Duration, Instant};

#[test]
fn memory_bomb_hits_the_memory_limit() {
    for g in ["hostile-p1.wasm", "hostile-p2.wasm"] {
        let r = run(["run", "--max-memory", "64MiB", &s(&guest(g)), "membomb"]);
        assert_eq!(r.code, 137, "{g}: {r:?}");
        assert!(
            r.stderr
                .contains("error: guest exceeded its memory limit (64 MiB)"),
            "{g}: {r:?}"
        );
    }
}

#[test]
fn memory_limit_counts_initial_memory_and_tables() {
    let r = run([
        "run",
        "--max-memory",
        "512MiB",
        &s(&fixture("huge-memory.wat")),
    ]);
    assert_eq!(r.code, 137, "{r:?}");
    assert!(
        r.stderr.contains(
            "error: guest needs 1 GiB of memory to start, above its memory limit (512 MiB)"
        ),
        "{r:?}"
    );
    let r = run([
        "run",
        "--max-memory",
        "2GiB",
        &s(&fixture("huge-memory.wat")),
    ]);
    assert_eq!(r.code, 0, "{r:?}");
    let r = run([
        "run",
        "--max-memory",
        "1MiB",
        &s(&fixture("table-bomb.wat")),
    ]);
    assert_eq!(r.code, 137, "{r:?}");
    assert!(r.stderr.contains("memory limit (1 MiB)"), "{r:?}");
}

#[test]
fn fuel_ends_an_endless_loop() {
    for g in ["hostile-p1.wasm", "hostile-p2.wasm"] {
        let r = run(["run", "--fuel", "5000000", &s(&guest(g)), "loop"]);
        assert_eq!(r.code, 152, "{g}: {r:?}");
        assert!(
            r.stderr
                .contains("error: guest exhausted its fuel (5000000 units)"),
            "{g}: {r:?}"
        );
    }
    // Enough fuel for a real program.
    let r = run(["run", "--fuel", "100000000", &s(&guest("hello-p1.wasm"))]);
    assert_eq!(r.code, 0, "{r:?}");
}

#[test]
fn timeout_ends_an_endless_loop() {
    for g in ["hostile-p1.wasm", "hostile-p2.wasm"] {
        let start = Instant::now();
        let r = run(["run", "--timeout", "300ms", &s(&guest(g)), "loop"]);
        assert_eq!(r.code, 124, "{g}: {r:?}");
        assert!(
            r.stderr
                .contains("error: guest exceeded its wall-clock timeout (300ms)"),
            "{g}: {r:?}"
        );
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "a timeout must not hang"
        );
    }
    let r = run(["run", "--timeout", "30s", &s(&guest("hello-p1.wasm"))]);
    assert_eq!(
        r.code, 0,
        "a generous timeout does not disturb a normal run: {r:?}"
    );
}

#[test]
fn unbounded_recursion_is_a_stack_overflow_trap() {
    for g in ["hostile-p1.wasm", "hostile-p2.wasm"] {
        let r = run(["run", &s(&guest(g)), "recurse"]);
        assert_eq!(r.code, 134, "{g}: {r:?}");
        assert!(
            r.stderr.contains("error: guest trapped: stack overflow"),
            "{g}: {r:?}"
        );
        assert!(
            r.stderr.contains("recurse"),
            "backtrace names the function: {r:?}"
        );
    }
}

#[test]
fn traps_print_their_kind_and_a_named_backtrace() {
    let f = s(&fixture("traps.wat"));
    for (args, kind, frames) in [
        (
            vec!["--invoke", "divide", &f, "1", "0"],
            "integer divide by zero",
            vec!["divide"],
        ),
        (
            vec!["--invoke", "outer", &f],
            "unreachable instruction executed",
            vec!["crash", "outer"],
        ),
        (
            vec!["--invoke", "peek", &f, "1000000"],
            "out-of-bounds memory access",
            vec!["peek"],
        ),
        (
            vec!["--invoke", "deep", &f, "0"],
            "stack overflow",
            vec!["deep"],
        ),
    ] {
        let mut v = vec!["run"];
        v.extend(&args);
        let r = run(&v);
        assert_eq!(r.code, 134, "{args:?}: {r:?}");
        assert!(
            r.stderr
                .starts_with(&format!("error: guest trapped: {kind}\n")),
            "{args:?}: {r:?}"
        );
        assert!(r.stderr.contains("wasm backtrace:"), "{r:?}");
        for fr in frames {
            assert!(
                r.stderr.contains(&format!("traps!{fr}")),
                "frame {fr} in {r:?}"
            );
        }
    }
    let r = run(["run", &s(&fixture("start-divzero.wat"))]);
    assert_eq!(r.code, 134, "{r:?}");
    let bt: Vec<&str> = r.stderr.lines().skip(2).collect();
    assert!(
        bt[0].contains("divzero!compute") && bt[1].contains("divzero!main"),
        "{r:?}"
    );
}

#[test]
fn a_guest_panic_is_a_trap() {
    let r = run(["run", &s(&guest("hostile-p1.wasm")), "panic"]);
    assert_eq!(r.code, 134, "{r:?}");
    assert!(
        r.stderr.contains("boom") && r.stderr.contains("error: guest trapped"),
        "{r:?}"
    );
}

#[test]
fn timeout_ends_a_guest_blocked_in_a_host_call() {
    for g in ["hostile-p1.wasm", "hostile-p2.wasm"] {
        let start = Instant::now();
        let r = run(["run", "--timeout", "300ms", &s(&guest(g)), "sleep", "60"]);
        assert_eq!(r.code, 124, "{g}: {r:?}");
        assert!(
            r.stderr
                .contains("error: guest exceeded its wall-clock timeout (300ms)"),
            "{g}: {r:?}"
        );
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "{g}: took {:?}",
            start.elapsed()
        );
        assert!(!r.stdout.contains("slept"), "{r:?}");
    }
}

#[test]
fn limits_outside_the_enforceable_range_are_usage_errors() {
    let g = s(&guest("hello-p1.wasm"));
    for (flag, value, needle) in [
        ("--timeout", "1ns", "from 1ms to 8760h"),
        ("--timeout", "999us", "from 1ms to 8760h"),
        ("--timeout", "0s", "from 1ms to 8760h"),
        ("--timeout", "8761h", "from 1ms to 8760h"),
        (
            "--max-memory",
            "18446744073709551616",
            "18446744073709551615",
        ),
        ("--max-memory", "17179869184GiB", "out of range"),
        ("--max-memory", "99999999999999999999999999", "out of range"),
    ] {
        let r = run(["run", flag, value, &g]);
        assert_eq!(r.code, 2, "{flag} {value}: {r:?}");
        assert!(
            r.stderr.starts_with(&format!("error: {flag}: ")) && r.stderr.contains(needle),
            "{flag} {value}: {r:?}"
        );
        assert_eq!(r.stderr.lines().count(), 1, "{r:?}");
        assert!(r.stdout.is_empty(), "the guest must not run: {r:?}");
    }
    // The ends of the ranges are accepted.
    let r = run(["run", "--max-memory", "18446744073709551615", &g]);
    assert_eq!(r.code, 0, "{r:?}");
    let r = run(["run", "--timeout", "8760h", &g]);
    assert_eq!(r.code, 0, "{r:?}");
}

#[test]
fn the_shortest_timeout_is_enforced() {
    for g in ["hostile-p1.wasm", "hostile-p2.wasm"] {
        let start = Instant::now();
        let r = run(["run", "--timeout", "1ms", &s(&guest(g)), "loop"]);
        assert_eq!(r.code, 124, "{g}: {r:?}");
        assert!(
            r.stderr
                .contains("error: guest exceeded its wall-clock timeout (1ms)"),
            "{g}: {r:?}"
        );
        assert!(start.elapsed() < Duration::from_secs(20), "{g}");
    }
}

/// `(module (func (export "_start") ...))` whose body nests `depth`
/// blocks: compile time grows faster than the depth.
fn nested_blocks(depth: usize) -> Vec<u8> {
    fn section(id: u8, payload: &[u8]) -> Vec<u8> {
        let mut out = vec![id];
        leb(&mut out, payload.len());
        out.extend_from_slice(payload);
        out
    }
    fn leb(out: &mut Vec<u8>, mut n: usize) {
        loop {
            let b = (n & 0x7f) as u8;
            n >>= 7;
            out.push(if n == 0 { b } else { b | 0x80 });
            if n == 0 {
                return;
            }
        }
    }
    let mut body = vec![0x00];
    body.extend(std::iter::repeat_n([0x02, 0x40], depth).flatten());
    body.extend(std::iter::repeat_n(0x0b, depth + 1));
    let mut code = vec![0x01];
    leb(&mut code, body.len());
    code.extend(body);
    let mut m = b"\0asm\x01\0\0\0".to_vec();
    m.extend(section(1, b"\x01\x60\x00\x00"));
    m.extend(section(3, b"\x01\x00"));
    m.extend(section(7, b"\x01\x06_start\x00\x00"));
    m.extend(section(10, &code));
    m
}

#[test]
fn the_timeout_bounds_compilation_too() {
    let t = tempdir();
    let small = t.path().join("small.wasm");
    std::fs::write(&small, nested_blocks(10)).unwrap();
    let r = run(["run", "--no-cache", "--timeout", "1s", &s(&small)]);
    assert_eq!(r.code, 0, "{r:?}");
    // About a minute of compiling on this machine's unoptimised build.
    let bomb = t.path().join("bomb.wasm");
    std::fs::write(&bomb, nested_blocks(100_000)).unwrap();
    let started = Instant::now();
    let r = run(["run", "--no-cache", "--timeout", "1s", &s(&bomb)]);
    assert_eq!(r.code, 124, "{r:?}");
    assert!(
        r.stderr
            .contains("error: compiling the guest took longer than its wall-clock timeout (1s)"),
        "{r:?}"
    );
    assert!(started.elapsed() < Duration::from_secs(10), "{r:?}");
}

#[test]
fn wasi_p3_commands_have_the_same_limits_and_exit_codes() {
    let g = s(&guest("hello-p3.wasm"));
    let started = Instant::now();
    let r = run(["run", "--timeout", "1s", &g, "--spin"]);
    assert_eq!(r.code, 124, "{r:?}");
    assert!(r.stderr.contains("wall-clock timeout (1s)"), "{r:?}");
    assert!(started.elapsed() < Duration::from_secs(5), "{r:?}");
    // A guest waiting on the host (a 0.3 async wait) is ended too.
    let r = run(["run", "--timeout", "500ms", &g, "--sleep", "10000"]);
    assert_eq!(r.code, 124, "{r:?}");
    let r = run(["run", "--fuel", "1000000", &g, "--spin"]);
    assert_eq!(r.code, 152, "{r:?}");
    assert!(
        r.stderr.contains("exhausted its fuel (1000000 units)"),
        "{r:?}"
    );
    let r = run(["run", "--max-memory", "4MiB", &g, "--alloc", "8"]);
    assert_eq!(r.code, 137, "{r:?}");
    assert!(r.stderr.contains("memory limit (4 MiB)"), "{r:?}");
    let r = run(["run", "--max-memory", "16MiB", &g, "--alloc", "8"]);
    assert_eq!(r.code, 0, "{r:?}");
    assert!(r.stdout.contains("grew memory by 8 MiB"), "{r:?}");
    // The guest's own exit code, through wasi:cli/exit@0.3.
    let r = run(["run", &g, "--exit", "7"]);
    assert_eq!(r.code, 7, "{r:?}");
}

#[test]
fn a_limit_below_the_initial_memory_is_named_as_such() {
    // A Rust guest declares over 1 MiB of memory before any code runs.
    for g in ["hello-p1.wasm", "hello-p2.wasm"] {
        let r = run(["run", "--max-memory", "64KiB", &s(&guest(g))]);
        assert_eq!(r.code, 137, "{g}: {r:?}");
        assert!(
            r.stderr
                .contains("of memory to start, above its memory limit (64 KiB)"),
            "{g}: {r:?}"
        );
    }
}
