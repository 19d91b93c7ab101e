//! `hello-p2`: a small WASI preview 2 command component.
//!
//! Exercises the main WASI 0.2 interfaces:
//!
//! * `wasi:filesystem` — uppercases `/data/input.txt` into `/data/output.txt`
//!   when a `/data` directory is preopened;
//! * `wasi:random` — prints 16 random bytes as hex, fetched directly through
//!   `wasi:random/random.get-random-bytes`;
//! * `wasi:clocks` — prints the wall clock and checks the monotonic clock;
//! * `wasi:sockets` — `--connect HOST:PORT` sends `ping\n` over TCP and prints
//!   the first line of the reply;
//! * `--exit N` makes it exit with code `N` once everything above has run.
//!
//! Exit codes: `std::process::exit` on wasm32-wasip2 goes through
//! `wasi:cli/exit.exit(result)`, which can only say success or failure, so any
//! non-zero code would arrive at the host as 1. Codes 1..=255 are therefore
//! reported with `wasi:cli/exit.exit-with-code` (WASI 0.2.12).

use std::env;
use std::fs;
use std::io::{self, BufRead, BufReader, Write};
use std::net::TcpStream;
use std::process;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

const DATA_DIR: &str = "/data";
const INPUT: &str = "/data/input.txt";
const OUTPUT: &str = "/data/output.txt";

struct Options {
    connect: Option<String>,
    exit: Option<i32>,
}

fn main() {
    let opts = match parse_args(env::args().skip(1)) {
        Ok(o) => o,
        Err(msg) => {
            eprintln!("error: {msg}");
            exit(2);
        }
    };

    println!("Hello from a p2 component!");

    transform_data();
    print_random();
    print_clocks();

    if let Some(addr) = &opts.connect {
        match ping(addr) {
            Ok(line) => println!("reply: {line}"),
            Err(err) => {
                eprintln!("connect failed: {err}");
                exit(1);
            }
        }
    }

    if let Some(code) = opts.exit {
        exit(code);
    }
}

/// Exits with `code`, preserving codes 1..=255 (see the module docs).
fn exit(code: i32) -> ! {
    let _ = io::stdout().flush();
    let _ = io::stderr().flush();
    match u8::try_from(code) {
        Ok(status) if status != 0 => wasip2::cli::exit::exit_with_code(status),
        _ => {}
    }
    process::exit(code)
}

fn parse_args(args: impl Iterator<Item = String>) -> Result<Options, String> {
    let mut opts = Options { connect: None, exit: None };
    let mut args = args;
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--connect" => {
                opts.connect = Some(args.next().ok_or("--connect needs HOST:PORT")?);
            }
            "--exit" => {
                let value = args.next().ok_or("--exit needs a value")?;
                let code = value
                    .parse::<i32>()
                    .map_err(|e| format!("invalid --exit value {value:?}: {e}"))?;
                opts.exit = Some(code);
            }
            _ => {} // other arguments are ignored
        }
    }
    Ok(opts)
}

/// `wasi:filesystem`: uppercase `/data/input.txt` into `/data/output.txt`.
fn transform_data() {
    let input = match fs::read(INPUT) {
        Ok(bytes) => bytes,
        Err(err) => {
            match fs::metadata(DATA_DIR) {
                Err(dir_err) => eprintln!("no {DATA_DIR} preopen: {dir_err}"),
                Ok(_) => eprintln!("cannot read {INPUT}: {err}"),
            }
            return;
        }
    };
    let output = match String::from_utf8(input) {
        Ok(text) => text.to_uppercase().into_bytes(),
        Err(err) => err.into_bytes().to_ascii_uppercase(),
    };
    match fs::write(OUTPUT, &output) {
        Ok(()) => println!("wrote {OUTPUT} ({} bytes)", output.len()),
        Err(err) => eprintln!("cannot write {OUTPUT}: {err}"),
    }
}

/// `wasi:random`: 16 bytes straight from `get-random-bytes`.
fn print_random() {
    let bytes = wasip2::random::random::get_random_bytes(16);
    let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    println!("random: {hex}");
}

/// `wasi:clocks`: wall clock (SystemTime) and monotonic clock (Instant).
fn print_clocks() {
    match SystemTime::now().duration_since(UNIX_EPOCH) {
        Ok(d) => println!("wall clock: {}", d.as_secs()),
        Err(e) => println!("wall clock: before the unix epoch by {:?}", e.duration()),
    }
    let start = Instant::now();
    let later = Instant::now();
    if later >= start {
        println!("monotonic: ok");
    } else {
        println!("monotonic: went backwards");
    }
}

/// `wasi:sockets`: connect, send `ping\n`, return the first reply line.
fn ping(addr: &str) -> io::Result<String> {
    let mut stream = TcpStream::connect(addr)?;
    stream.write_all(b"ping\n")?;
    stream.flush()?;
    let mut line = String::new();
    BufReader::new(stream).read_line(&mut line)?;
    Ok(line.trim_end_matches(['\r', '\n']).to_string())
}
