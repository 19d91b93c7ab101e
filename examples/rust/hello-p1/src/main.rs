//! `hello-p1`: a small WASI preview 1 demo guest.
//!
//! * greets `NAME` (first positional argument, else the `NAME` environment
//!   variable, else `world`);
//! * echoes its arguments and the `NAME` variable;
//! * if a `/data` directory is preopened and holds `input.txt`, writes an
//!   uppercased copy to `/data/output.txt`;
//! * `--exit N` anywhere in the arguments makes it exit with code `N` once
//!   everything above has run.

use std::env;
use std::fs;
use std::io::{self, Write};
use std::process;

const DATA_DIR: &str = "/data";
const INPUT: &str = "/data/input.txt";
const OUTPUT: &str = "/data/output.txt";

fn main() {
    let args: Vec<String> = env::args().skip(1).collect();

    let (exit_code, positional) = match split_exit_flag(&args) {
        Ok(v) => v,
        Err(msg) => {
            eprintln!("error: {msg}");
            process::exit(2);
        }
    };

    let env_name = env::var("NAME").ok();
    let name = positional
        .first()
        .cloned()
        .or_else(|| env_name.clone())
        .unwrap_or_else(|| "world".to_string());

    println!("Hello, {name}!");
    println!("args: {args:?}");
    match &env_name {
        Some(v) => println!("env NAME={v}"),
        None => println!("env NAME is not set"),
    }

    transform_data();

    // Flush before a possible `process::exit`, which skips destructors.
    let _ = io::stdout().flush();
    if let Some(code) = exit_code {
        process::exit(code);
    }
}

/// Uppercases `/data/input.txt` into `/data/output.txt`. Problems are reported
/// on stderr and are never fatal.
fn transform_data() {
    let input = match fs::read(INPUT) {
        Ok(bytes) => bytes,
        Err(err) => {
            // Tell "no preopen at all" apart from "preopen without input".
            match fs::metadata(DATA_DIR) {
                Err(dir_err) => eprintln!("no {DATA_DIR} preopen: {dir_err}"),
                Ok(_) => eprintln!("cannot read {INPUT}: {err}"),
            }
            return;
        }
    };
    let output = uppercase(input);
    match fs::write(OUTPUT, &output) {
        Ok(()) => println!("wrote {OUTPUT} ({} bytes)", output.len()),
        Err(err) => eprintln!("cannot write {OUTPUT}: {err}"),
    }
}

/// Unicode uppercase for UTF-8 text, ASCII uppercase for anything else.
fn uppercase(bytes: Vec<u8>) -> Vec<u8> {
    match String::from_utf8(bytes) {
        Ok(text) => text.to_uppercase().into_bytes(),
        Err(err) => err.into_bytes().to_ascii_uppercase(),
    }
}

/// Removes `--exit N` from the arguments, returning the exit code (if any)
/// and the remaining positional arguments.
fn split_exit_flag(args: &[String]) -> Result<(Option<i32>, Vec<String>), String> {
    let mut code = None;
    let mut rest = Vec::new();
    let mut iter = args.iter();
    while let Some(arg) = iter.next() {
        if arg == "--exit" {
            let value = iter.next().ok_or("--exit needs a value")?;
            let parsed = value
                .parse::<i32>()
                .map_err(|e| format!("invalid --exit value {value:?}: {e}"))?;
            code = Some(parsed);
        } else {
            rest.push(arg.clone());
        }
    }
    Ok((code, rest))
}
