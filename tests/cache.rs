//! The compile cache: the second run compiles nothing; bad entries are
//! recompiled; concurrent fills are safe; precompiled code needs a flag.

mod common;
use common::*;
use std::path::Path;

fn run_cached(cache: &Path, file: &Path, extra: &[&str]) -> Run {
    let mut v = vec![
        "run".to_string(),
        "-v".into(),
        "--cache-dir".into(),
        s(cache),
        s(file),
    ];
    v.extend(extra.iter().map(|s| s.to_string()));
    run(v)
}

fn objects(cache: &Path) -> Vec<std::path::PathBuf> {
    let mut found = Vec::new();
    for engine in std::fs::read_dir(cache.join("v1")).unwrap() {
        for o in std::fs::read_dir(engine.unwrap().path().join("objects")).unwrap() {
            found.push(o.unwrap().path());
        }
    }
    found
}

#[test]
fn second_run_compiles_nothing() {
    for g in ["hello-p1.wasm", "hello-p2.wasm"] {
        let cache = tempdir();
        let r = run_cached(cache.path(), &guest(g), &[]);
        assert_eq!(r.code, 0, "{r:?}");
        assert!(r.stderr.contains("compiled (cache miss)"), "{r:?}");
        let r = run_cached(cache.path(), &guest(g), &[]);
        assert_eq!(r.code, 0, "{r:?}");
        assert!(
            r.stderr
                .contains("cache hit (by file identity): nothing compiled"),
            "{r:?}"
        );
        assert!(!r.stderr.contains("compiled (cache miss)"), "{r:?}");
        // The same bytes under another name: found by content.
        let copy = cache.path().join("copy.wasm");
        std::fs::copy(guest(g), &copy).unwrap();
        let r = run_cached(cache.path(), &copy, &[]);
        assert!(
            r.stderr
                .contains("cache hit (by content): nothing compiled"),
            "{r:?}"
        );
        assert_eq!(objects(cache.path()).len(), 1);
    }
}

#[test]
fn changed_file_is_recompiled() {
    let cache = tempdir();
    let f = cache.path().join("m.wat");
    std::fs::write(
        &f,
        "(module (func (export \"v\") (result i32) i32.const 1))",
    )
    .unwrap();
    let r = run([
        "run",
        "-v",
        "--cache-dir",
        &s(cache.path()),
        "--invoke",
        "v",
        &s(&f),
    ]);
    assert_eq!(r.stdout.trim(), "1", "{r:?}");
    std::fs::write(
        &f,
        "(module (func (export \"v\") (result i32) i32.const 2))",
    )
    .unwrap();
    let r = run([
        "run",
        "-v",
        "--cache-dir",
        &s(cache.path()),
        "--invoke",
        "v",
        &s(&f),
    ]);
    assert_eq!(r.stdout.trim(), "2", "{r:?}");
    assert!(r.stderr.contains("compiled (cache miss)"), "{r:?}");
}

#[test]
fn corrupted_and_foreign_entries_are_recompiled() {
    let cache = tempdir();
    let g = guest("hello-p1.wasm");
    assert_eq!(run_cached(cache.path(), &g, &[]).code, 0);
    let obj = objects(cache.path()).pop().unwrap();
    let good = std::fs::read(&obj).unwrap();

    // A flipped byte in the code.
    let mut bad = good.clone();
    bad[good.len() / 2] ^= 0x55;
    std::fs::write(&obj, &bad).unwrap();
    let r = run_cached(cache.path(), &g, &[]);
    assert_eq!(r.code, 0, "{r:?}");
    assert!(
        r.stderr.contains("corrupted") && r.stderr.contains("compiled (cache miss)"),
        "{r:?}"
    );
    assert!(run_cached(cache.path(), &g, &[])
        .stderr
        .contains("cache hit"));

    // A truncated entry.
    std::fs::write(&obj, &good[..100]).unwrap();
    let r = run_cached(cache.path(), &g, &[]);
    assert_eq!(r.code, 0, "{r:?}");
    assert!(r.stderr.contains("compiled (cache miss)"), "{r:?}");

    // A foreign entry with a valid checksum: code from another engine
    // configuration (compiled with fuel metering). A `.cwasm` carries the
    // same trailer as a cache entry.
    let other = tempdir();
    let cwasm = other.path().join("fuel.cwasm");
    assert_eq!(run(["compile", "--fuel", &s(&g), "-o", &s(&cwasm)]).code, 0);
    let entry = std::fs::read(&cwasm).unwrap();
    let (code, trailer) = entry.split_at(entry.len() - 40);
    assert_eq!(&trailer[..32], blake3_of(code).as_slice());
    assert_eq!(&trailer[32..], b"WLCACHE1");
    std::fs::write(&obj, &entry).unwrap();
    let r = run_cached(cache.path(), &g, &[]);
    assert_eq!(r.code, 0, "{r:?}");
    assert!(
        r.stderr.contains("rejected") && r.stderr.contains("compiled (cache miss)"),
        "{r:?}"
    );

    // Garbage in the index.
    for idx in std::fs::read_dir(obj.parent().unwrap().parent().unwrap().join("index")).unwrap() {
        std::fs::write(idx.unwrap().path(), "not an entry").unwrap();
    }
    let r = run_cached(cache.path(), &g, &[]);
    assert_eq!(r.code, 0, "{r:?}");
    assert!(r.stderr.contains("cache hit (by content)"), "{r:?}");
}

fn blake3_of(bytes: &[u8]) -> Vec<u8> {
    blake3::hash(bytes).as_bytes().to_vec()
}

#[test]
fn concurrent_runs_fill_the_cache_safely() {
    let cache = tempdir();
    let g = guest("hello-p2.wasm");
    let children: Vec<_> = (0..6)
        .map(|_| {
            wasmlayer()
                .args(["run", "-v", "--cache-dir", &s(cache.path()), &s(&g)])
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    for c in children {
        let r = output(c.wait_with_output().unwrap());
        r.no_panic();
        assert_eq!(r.code, 0, "{r:?}");
        assert!(r.stdout.contains("Hello from a p2 component!"), "{r:?}");
    }
    let r = run_cached(cache.path(), &g, &[]);
    assert!(r.stderr.contains("cache hit"), "{r:?}");
    let objs = objects(cache.path());
    assert_eq!(objs.len(), 1, "{objs:?}");
    // No temporary files left behind.
    let engine_dir = objs[0].parent().unwrap().parent().unwrap();
    for sub in ["objects", "index"] {
        for e in std::fs::read_dir(engine_dir.join(sub)).unwrap() {
            let n = e.unwrap().file_name().into_string().unwrap();
            assert!(!n.contains(".tmp"), "left over: {n}");
        }
    }
}

#[test]
fn no_cache_always_compiles_and_writes_nothing() {
    let cache = tempdir();
    for _ in 0..2 {
        let r = run([
            "run",
            "-v",
            "--no-cache",
            "--cache-dir",
            &s(cache.path()),
            &s(&guest("hello-p1.wasm")),
        ]);
        assert_eq!(r.code, 0);
        assert!(r.stderr.contains("compiled (cache miss)"), "{r:?}");
    }
    assert!(std::fs::read_dir(cache.path()).unwrap().next().is_none());
}

#[test]
fn an_unsafe_cache_directory_is_not_used() {
    use std::os::unix::fs::PermissionsExt;
    let cache = tempdir();
    std::fs::set_permissions(cache.path(), std::fs::Permissions::from_mode(0o777)).unwrap();
    let r = run_cached(cache.path(), &guest("hello-p1.wasm"), &[]);
    assert_eq!(r.code, 0, "{r:?}");
    assert!(r.stderr.contains("not private"), "{r:?}");
}

#[test]
fn compile_then_run_precompiled() {
    let t = tempdir();
    for (g, extra) in [
        ("hello-p1.wasm", "Hello, world!"),
        ("hello-p2.wasm", "Hello from a p2 component!"),
    ] {
        let out = t.path().join(format!("{g}.cwasm"));
        let r = run(["compile", &s(&guest(g)), "-o", &s(&out)]);
        assert_eq!(r.code, 0, "{r:?}");
        // Refused without the explicit flag.
        let r = run(["run", &s(&out)]);
        assert_eq!(r.code, 126, "{r:?}");
        assert!(r.stderr.contains("--allow-precompiled"), "{r:?}");
        let r = run(["run", "--allow-precompiled", &s(&out)]);
        assert_eq!(r.code, 0, "{r:?}");
        assert!(r.stdout.contains(extra), "{r:?}");
    }
    // Engine settings must match.
    let plain = t.path().join("hostile.cwasm");
    assert_eq!(
        run(["compile", &s(&guest("hostile-p1.wasm")), "-o", &s(&plain)]).code,
        0
    );
    let r = run([
        "run",
        "--allow-precompiled",
        "--fuel",
        "1000",
        &s(&plain),
        "loop",
    ]);
    assert_eq!(r.code, 126, "{r:?}");
    assert!(r.stderr.contains("cannot load precompiled code"), "{r:?}");
    let fueled = t.path().join("hostile-fuel.cwasm");
    assert_eq!(
        run([
            "compile",
            "--fuel",
            &s(&guest("hostile-p1.wasm")),
            "-o",
            &s(&fueled)
        ])
        .code,
        0
    );
    let r = run([
        "run",
        "--allow-precompiled",
        "--fuel",
        "100000",
        &s(&fueled),
        "loop",
    ]);
    assert_eq!(r.code, 152, "{r:?}");
    // A corrupted precompiled file is an error, not a crash.
    let mut bytes = std::fs::read(out_of(t.path())).unwrap();
    bytes.truncate(bytes.len() / 2);
    let broken = t.path().join("broken.cwasm");
    std::fs::write(&broken, &bytes).unwrap();
    let r = run(["run", "--allow-precompiled", &s(&broken)]);
    assert_eq!(r.code, 126, "{r:?}");
}

fn out_of(dir: &Path) -> std::path::PathBuf {
    dir.join("hello-p1.wasm.cwasm")
}

/// Runs `wasmlayer ARGS` and fails if it has not finished within `limit`
/// (a blocked open would otherwise hang the test).
fn run_at_most(args: &[String], limit: std::time::Duration) -> Run {
    use std::io::Read;
    let mut child = wasmlayer()
        .args(args)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let (mut out, mut err) = (child.stdout.take().unwrap(), child.stderr.take().unwrap());
    let readers = (
        std::thread::spawn(move || {
            let mut s = String::new();
            let _ = out.read_to_string(&mut s);
            s
        }),
        std::thread::spawn(move || {
            let mut s = String::new();
            let _ = err.read_to_string(&mut s);
            s
        }),
    );
    let start = std::time::Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if start.elapsed() > limit {
            let _ = child.kill();
            let _ = child.wait();
            panic!("wasmlayer {args:?} still running after {limit:?}");
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    };
    let r = Run {
        code: status.code().unwrap_or(-1),
        stdout: readers.0.join().unwrap(),
        stderr: readers.1.join().unwrap(),
    };
    r.no_panic();
    r
}

fn mkfifo(path: &Path) {
    let c = std::ffi::CString::new(path.to_str().unwrap()).unwrap();
    // SAFETY: a valid NUL-terminated path.
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
}

#[test]
fn entries_replaced_by_fifos_are_misses_not_hangs() {
    let cache = tempdir();
    let g = guest("hello-p1.wasm");
    let args = vec![
        "run".to_string(),
        "-v".into(),
        "--cache-dir".into(),
        s(cache.path()),
        s(&g),
    ];
    let limit = std::time::Duration::from_secs(60);
    assert_eq!(run_at_most(&args, limit).code, 0);
    let obj = objects(cache.path()).pop().unwrap();
    std::fs::remove_file(&obj).unwrap();
    mkfifo(&obj);
    let r = run_at_most(&args, limit);
    assert_eq!(r.code, 0, "{r:?}");
    assert!(
        r.stderr.contains("not a regular file") && r.stderr.contains("compiled (cache miss)"),
        "{r:?}"
    );
    assert!(std::fs::metadata(&obj).unwrap().is_file(), "rewritten");

    // The same for index entries.
    let index = obj.parent().unwrap().parent().unwrap().join("index");
    for e in std::fs::read_dir(&index).unwrap() {
        let p = e.unwrap().path();
        std::fs::remove_file(&p).unwrap();
        mkfifo(&p);
    }
    let r = run_at_most(&args, limit);
    assert_eq!(r.code, 0, "{r:?}");
    assert!(
        r.stderr.contains("not a regular file") && r.stderr.contains("cache hit (by content)"),
        "{r:?}"
    );
}

#[test]
fn every_cache_directory_must_be_private() {
    use std::os::unix::fs::PermissionsExt;
    let g = guest("hello-p1.wasm");
    let cache = tempdir();
    assert_eq!(run_cached(cache.path(), &g, &[]).code, 0);
    let v1 = cache.path().join("v1");
    let engine = std::fs::read_dir(&v1)
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    for (dir, mode) in [
        (v1.clone(), 0o777),
        (v1.clone(), 0o770),
        (engine.clone(), 0o777),
        (engine.join("objects"), 0o722),
        (engine.join("index"), 0o707),
    ] {
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(mode)).unwrap();
        let r = run_cached(cache.path(), &g, &[]);
        assert_eq!(r.code, 0, "{r:?}");
        assert!(
            r.stderr.contains("not private") && r.stderr.contains(&s(&dir)),
            "{} {mode:o}: {r:?}",
            dir.display()
        );
        assert!(
            r.stderr.contains("compiled (cache miss)"),
            "the cache is not read: {r:?}"
        );
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700)).unwrap();
    }
    let r = run_cached(cache.path(), &g, &[]);
    assert!(r.stderr.contains("cache hit"), "{r:?}");
}

/// File offset and size of the ELF section `name`.
fn elf_section(elf: &[u8], name: &str) -> (usize, usize) {
    let u16_at = |o: usize| u16::from_le_bytes(elf[o..o + 2].try_into().unwrap()) as usize;
    let u32_at = |o: usize| u32::from_le_bytes(elf[o..o + 4].try_into().unwrap()) as usize;
    let u64_at = |o: usize| u64::from_le_bytes(elf[o..o + 8].try_into().unwrap()) as usize;
    assert_eq!(&elf[..5], b"\x7fELF\x02", "a 64-bit ELF image");
    let (shoff, shentsize, shnum, shstrndx) =
        (u64_at(0x28), u16_at(0x3a), u16_at(0x3c), u16_at(0x3e));
    let header = |i: usize| shoff + i * shentsize;
    let strtab = u64_at(header(shstrndx) + 0x18);
    for i in 0..shnum {
        let h = header(i);
        let n = strtab + u32_at(h);
        let end = n + elf[n..].iter().position(|&b| b == 0).unwrap();
        if &elf[n..end] == name.as_bytes() {
            return (u64_at(h + 0x18), u64_at(h + 0x20));
        }
    }
    panic!("no section {name}");
}

#[test]
fn damaged_precompiled_files_are_refused_not_run() {
    let t = tempdir();
    let out = t.path().join("hostile.cwasm");
    let r = run(["compile", &s(&guest("hostile-p1.wasm")), "-o", &s(&out)]);
    assert_eq!(r.code, 0, "{r:?}");
    let good = std::fs::read(&out).unwrap();
    assert!(good.ends_with(b"WLCACHE1"), "compile writes the trailer");
    let (text, text_len) = elf_section(&good, ".text");
    assert!(text_len > 64);
    let len = good.len();
    let positions = [
        0,
        7,
        40,
        text,
        text + 1,
        text + text_len / 3,
        text + text_len / 2,
        text + text_len - 1,
        len / 2,
        len - 41,
        len - 40,
        len - 20,
        len - 1,
    ];
    let bad = t.path().join("bad.cwasm");
    for (i, &pos) in positions.iter().enumerate() {
        let mut bytes = good.clone();
        bytes[pos] ^= [0x01, 0x80, 0xff, 0x55][i % 4];
        std::fs::write(&bad, &bytes).unwrap();
        for cmd in [
            vec![
                "run",
                "--allow-precompiled",
                bad.to_str().unwrap(),
                "exit",
                "3",
            ],
            vec!["inspect", "--allow-precompiled", bad.to_str().unwrap()],
        ] {
            let r = run(&cmd);
            assert_eq!(r.code, 126, "byte {pos} flipped, {cmd:?}: {r:?}");
            assert!(r.stderr.starts_with("error: "), "{r:?}");
            assert_eq!(r.stderr.lines().count(), 1, "one clear line: {r:?}");
            if pos >= 64 {
                assert!(
                    r.stderr.contains("corrupted (checksum mismatch)")
                        || r.stderr.contains("without a wasmlayer checksum"),
                    "byte {pos}: {r:?}"
                );
            }
        }
    }
    // The intact file runs.
    let r = run(["run", "--allow-precompiled", &s(&out), "exit", "3"]);
    assert_eq!(r.code, 3, "{r:?}");
    // Without its trailer it is refused too.
    std::fs::write(&bad, &good[..len - 40]).unwrap();
    let r = run(["run", "--allow-precompiled", &s(&bad)]);
    assert_eq!(r.code, 126, "{r:?}");
    assert!(r.stderr.contains("without a wasmlayer checksum"), "{r:?}");
}
