//! The `transform` example: the table of built artifacts and the check of
//! its behaviour, shared by the guests and componentize tests.

use super::*;
use std::path::Path;

/// One built example: the artifact, the name it prints, and whether it is a
/// WASI p2 component (whose `exit` carries only success or failure).
pub struct Example {
    pub file: &'static str,
    pub lang: &'static str,
    pub p2: bool,
}

pub const EXAMPLES: &[Example] = &[
    Example {
        file: "transform-rust.wasm",
        lang: "rust",
        p2: false,
    },
    Example {
        file: "transform-rust-p2.wasm",
        lang: "rust",
        p2: true,
    },
    Example {
        file: "transform-c.wasm",
        lang: "c",
        p2: false,
    },
    Example {
        file: "transform-cpp.wasm",
        lang: "c++",
        p2: false,
    },
    Example {
        file: "transform-go.wasm",
        lang: "go",
        p2: false,
    },
    Example {
        file: "transform-as.wasm",
        lang: "assemblyscript",
        p2: false,
    },
];

/// Text with tabs, CR-LF, a non-ASCII word (left as is) and no final newline.
const INPUT: &[u8] = b"Hello, Wasm world!\n\tsecond Line,  caf\xc3\xa9 \r\nlast WORD";

/// The transformation every example implements, computed here independently.
fn expected(input: &[u8], upper: bool) -> (Vec<u8>, usize, usize) {
    let out = input
        .iter()
        .map(|c| {
            if upper {
                c.to_ascii_uppercase()
            } else {
                c.to_ascii_lowercase()
            }
        })
        .collect();
    let lines = input.iter().filter(|c| **c == b'\n').count();
    let words = input
        .split(|c| matches!(c, b' ' | b'\t' | b'\n' | b'\r' | 0x0b | 0x0c))
        .filter(|w| !w.is_empty())
        .count();
    (out, lines, words)
}

fn exit_for(ex: &Example, code: i32) -> i32 {
    if ex.p2 && code != 0 {
        1
    } else {
        code
    }
}

/// Runs `transform` with the dir granted as given (`None`: no grant).
fn transform(guest: &Path, dir: Option<(&Path, bool)>, env: &[&str], args: &[&str]) -> Run {
    let mut cmd = wasmlayer();
    cmd.arg("run");
    if let Some((d, read_only)) = dir {
        cmd.arg("--dir").arg(format!(
            "{}::/data{}",
            s(d),
            if read_only { ":ro" } else { "" }
        ));
    }
    for e in env {
        cmd.arg("--env").arg(e);
    }
    cmd.arg(guest).args(args);
    run_with(&mut cmd)
}

/// Checks one example's full behaviour; returns the problems found.
pub fn check_example(guest: &Path, ex: &Example) -> Vec<String> {
    let mut problems = Vec::new();
    let mut check = |ok: bool, what: String| {
        if !ok {
            problems.push(format!("{} ({}): {what}", ex.file, guest.display()));
        }
    };

    // Upper case, chosen exit code, env and args.
    let dir = tempdir();
    std::fs::write(dir.path().join("in.txt"), INPUT).unwrap();
    let r = transform(
        guest,
        Some((dir.path(), false)),
        &["MODE=upper"],
        &["/data/in.txt", "/data/out.txt", "7"],
    );
    let (out, lines, words) = expected(INPUT, true);
    let stdout = format!(
        "transform ({})\nmode: upper\ninput: /data/in.txt: {} bytes, {lines} lines, {words} words\n",
        ex.lang,
        INPUT.len()
    );
    check(r.code == exit_for(ex, 7), format!("exit code, {r:?}"));
    check(
        r.stdout == stdout,
        format!("stdout, expected:\n{stdout}{r:?}"),
    );
    check(
        r.stderr
            .contains(&format!("wrote {} bytes to /data/out.txt\n", INPUT.len())),
        format!("stderr, {r:?}"),
    );
    check(
        std::fs::read(dir.path().join("out.txt")).ok() == Some(out),
        "upper-cased output file".into(),
    );

    // Lower case, default mode handling, exit 0 by default.
    let r = transform(
        guest,
        Some((dir.path(), false)),
        &["MODE=lower"],
        &["/data/in.txt", "/data/low.txt"],
    );
    check(r.code == 0, format!("lower: exit code, {r:?}"));
    check(
        r.stdout.contains("mode: lower\n"),
        format!("lower: stdout, {r:?}"),
    );
    check(
        std::fs::read(dir.path().join("low.txt")).ok() == Some(expected(INPUT, false).0),
        "lower-cased output file".into(),
    );
    let r = transform(
        guest,
        Some((dir.path(), false)),
        &[],
        &["/data/in.txt", "/data/default.txt", "0"],
    );
    check(
        r.code == 0 && r.stdout.contains("mode: upper\n"),
        format!("default mode, {r:?}"),
    );

    // Read-only grant: reading works, writing is refused by the host.
    let r = transform(
        guest,
        Some((dir.path(), true)),
        &[],
        &["/data/in.txt", "/data/ro.txt"],
    );
    check(
        r.code == exit_for(ex, 1),
        format!("read-only: exit code, {r:?}"),
    );
    check(
        r.stderr.starts_with("transform: cannot write /data/ro.txt"),
        format!("read-only: stderr, {r:?}"),
    );
    check(
        !dir.path().join("ro.txt").exists(),
        "read-only: the file must not be created".into(),
    );

    // No grant at all: the file is out of reach.
    let r = transform(guest, None, &[], &["/data/in.txt", "/data/out.txt"]);
    check(
        r.code == exit_for(ex, 1),
        format!("no grant: exit code, {r:?}"),
    );
    check(
        r.stderr.starts_with("transform: cannot read /data/in.txt"),
        format!("no grant: stderr, {r:?}"),
    );

    // Usage errors.
    let r = transform(guest, Some((dir.path(), false)), &[], &["/data/in.txt"]);
    check(
        r.code == exit_for(ex, 2)
            && r.stderr
                .contains("usage: transform INPUT OUTPUT [EXIT_CODE]"),
        format!("usage, {r:?}"),
    );
    let r = transform(
        guest,
        Some((dir.path(), false)),
        &["MODE=shout"],
        &["/data/in.txt", "/data/x.txt"],
    );
    check(
        r.code == exit_for(ex, 2) && r.stderr.contains("unknown MODE"),
        format!("bad MODE, {r:?}"),
    );
    let r = transform(
        guest,
        Some((dir.path(), false)),
        &[],
        &["/data/in.txt", "/data/x.txt", "seven"],
    );
    check(
        r.code == exit_for(ex, 2) && r.stderr.contains("exit code must be an integer"),
        format!("bad exit code, {r:?}"),
    );
    problems
}
