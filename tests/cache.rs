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
    // configuration (compiled with fuel metering).
    let other = tempdir();
    let cwasm = other.path().join("fuel.cwasm");
    assert_eq!(run(["compile", "--fuel", &s(&g), "-o", &s(&cwasm)]).code, 0);
    let code = std::fs::read(&cwasm).unwrap();
    let mut entry = code.clone();
    entry.extend_from_slice(blake3_of(&code).as_slice());
    entry.extend_from_slice(b"WLCACHE1");
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
