//! transform: reads a file from a granted directory, converts its text as
//! $MODE says, writes the result, reports on stdout and stderr and exits with
//! the code given as third argument. Same behaviour as the C, C++, Go and
//! AssemblyScript examples. Only the standard library: the same source builds
//! as a WASI p1 module and as a WASI p2 component.

use std::io::Write;
use std::process::exit;

const USAGE: &str = "usage: transform INPUT OUTPUT [EXIT_CODE]";

fn fail(code: i32, message: &str) -> ! {
    eprintln!("transform: {message}");
    exit(code)
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if !(3..=4).contains(&args.len()) {
        fail(2, USAGE);
    }
    let (input, output) = (&args[1], &args[2]);
    let exit_code = match args.get(3) {
        None => 0,
        Some(s) => match s.parse::<i32>() {
            Ok(n) if (0..=125).contains(&n) && s.bytes().all(|b| b.is_ascii_digit()) => n,
            _ => fail(2, &format!("exit code must be an integer from 0 to 125, got \"{s}\"")),
        },
    };
    let mode = std::env::var("MODE").ok().filter(|m| !m.is_empty()).unwrap_or_else(|| "upper".into());
    let upper = match mode.as_str() {
        "upper" => true,
        "lower" => false,
        _ => fail(2, &format!("unknown MODE \"{mode}\" (expected upper or lower)")),
    };

    let mut data = std::fs::read(input).unwrap_or_else(|e| fail(1, &format!("cannot read {input}: {e}")));
    let (mut lines, mut words, mut in_word) = (0usize, 0usize, false);
    for c in data.iter_mut() {
        if *c == b'\n' {
            lines += 1;
        }
        let space = matches!(*c, b' ' | b'\t' | b'\n' | b'\r' | 0x0b | 0x0c);
        if !space && !in_word {
            words += 1;
        }
        in_word = !space;
        if upper {
            c.make_ascii_uppercase();
        } else {
            c.make_ascii_lowercase();
        }
    }
    std::fs::write(output, &data).unwrap_or_else(|e| fail(1, &format!("cannot write {output}: {e}")));

    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "transform (rust)");
    let _ = writeln!(out, "mode: {mode}");
    let _ = writeln!(out, "input: {input}: {} bytes, {lines} lines, {words} words", data.len());
    let _ = out.flush();
    eprintln!("wrote {} bytes to {output}", data.len());
    exit(exit_code)
}
