//! `hostile`: a deliberately misbehaving guest for exercising sandbox limits.
//!
//! Built for both wasm32-wasip1 and wasm32-wasip2. The subcommand is the first
//! argument:
//!
//! ```text
//! loop                 spin forever
//! membomb              allocate 1 MiB chunks until allocation fails
//! recurse              unbounded recursion (stack overflow)
//! read PATH            print a file
//! write PATH TEXT      write TEXT to PATH, print `ok`
//! ls PATH              list a directory, sorted
//! env NAME             print an environment variable
//! envall               print every environment variable as K=V
//! connect HOST:PORT    TCP: send `ping\n`, print the reply line (p2 only)
//! resolve NAME         look NAME up, print each address on a line (p2 only)
//! exit N               exit with code N
//! panic                panic!("boom")
//! sleep SECS           block in a host call (the WASI clock) for SECS seconds
//! ```
//!
//! On wasm32-wasip2, exit codes 1..=255 are reported through
//! `wasi:cli/exit.exit-with-code`; `std::process::exit` alone would turn every
//! non-zero code into 1 there.

use std::env;
use std::fs;
use std::hint::black_box;
use std::io::{self, BufRead, BufReader, Write};
use std::net::TcpStream;
use std::process;

const USAGE: &str = "\
usage: hostile <command> [args]
commands:
  loop                 spin forever
  membomb              allocate 1 MiB chunks until allocation fails
  recurse              unbounded recursion (stack overflow)
  read PATH            print a file
  write PATH TEXT      write TEXT to PATH
  ls PATH              list a directory
  env NAME             print an environment variable
  envall               print every environment variable
  connect HOST:PORT    TCP ping (wasip2 only)
  resolve NAME         name lookup (wasip2 only)
  exit N               exit with code N
  panic                panic
  sleep SECS           sleep in a host call";

fn main() {
    let args: Vec<String> = env::args().skip(1).collect();
    let argv: Vec<&str> = args.iter().map(String::as_str).collect();

    match argv.as_slice() {
        ["loop"] => spin(),
        ["membomb"] => membomb(),
        ["recurse"] => {
            let depth = recurse(0);
            // Not reached in practice.
            println!("{depth}");
        }
        ["read", path] => read(path),
        ["write", path, text] => write(path, text),
        ["ls", path] => ls(path),
        ["env", name] => env_var(name),
        ["envall"] => envall(),
        ["connect", addr] => connect(addr),
        ["resolve", name] => resolve(name),
        ["exit", code] => match code.parse::<i32>() {
            Ok(code) => exit(code),
            Err(_) => usage(),
        },
        ["panic"] => panic!("boom"),
        ["sleep", secs] => match secs.parse::<u64>() {
            Ok(secs) => {
                std::thread::sleep(std::time::Duration::from_secs(secs));
                println!("slept {secs}s");
            }
            Err(_) => usage(),
        },
        _ => usage(),
    }
}

fn usage() -> ! {
    eprintln!("{USAGE}");
    exit(2);
}

fn fail(err: impl std::fmt::Display) -> ! {
    let _ = io::stdout().flush();
    eprintln!("error: {err}");
    exit(1);
}

/// Exits with `code`, keeping the exact code on both WASI targets.
fn exit(code: i32) -> ! {
    let _ = io::stdout().flush();
    let _ = io::stderr().flush();
    #[cfg(all(target_os = "wasi", target_env = "p2"))]
    if let Ok(status @ 1..=255) = u8::try_from(code) {
        wasip2::cli::exit::exit_with_code(status);
    }
    process::exit(code)
}

fn spin() -> ! {
    let mut counter: u64 = 0;
    loop {
        counter = black_box(counter.wrapping_add(1));
    }
}

fn membomb() -> ! {
    const CHUNK: usize = 1 << 20;
    const PAGE: usize = 4096;
    let mut chunks: Vec<Vec<u8>> = Vec::new();
    loop {
        let mut chunk = vec![0u8; CHUNK];
        // Touch every page so the memory is really committed.
        for i in (0..CHUNK).step_by(PAGE) {
            chunk[i] = (i / PAGE) as u8 | 1;
        }
        chunks.push(black_box(chunk));
        black_box(&chunks);
    }
}

/// Non-tail recursion: the addition after the call keeps every frame alive.
#[allow(unconditional_recursion)]
#[inline(never)]
fn recurse(depth: u64) -> u64 {
    let next = recurse(black_box(depth + 1));
    black_box(next).wrapping_add(black_box(depth))
}

fn read(path: &str) {
    match fs::read(path) {
        Ok(bytes) => {
            let mut out = io::stdout().lock();
            if let Err(e) = out.write_all(&bytes).and_then(|_| out.flush()) {
                fail(e);
            }
        }
        Err(e) => fail(e),
    }
}

fn write(path: &str, text: &str) {
    match fs::write(path, text) {
        Ok(()) => println!("ok"),
        Err(e) => fail(e),
    }
}

fn ls(path: &str) {
    let entries = match fs::read_dir(path) {
        Ok(entries) => entries,
        Err(e) => fail(e),
    };
    let mut names = Vec::new();
    for entry in entries {
        match entry {
            Ok(entry) => names.push(entry.file_name().to_string_lossy().into_owned()),
            Err(e) => fail(e),
        }
    }
    names.sort();
    for name in names {
        println!("{name}");
    }
}

fn env_var(name: &str) {
    match env::var_os(name) {
        Some(value) => println!("{}", value.to_string_lossy()),
        None => {
            eprintln!("{name} is not set");
            exit(1);
        }
    }
}

fn envall() {
    for (key, value) in env::vars_os() {
        println!("{}={}", key.to_string_lossy(), value.to_string_lossy());
    }
}

fn resolve(name: &str) {
    use std::net::ToSocketAddrs;
    match (name, 0).to_socket_addrs() {
        Ok(addrs) => {
            let mut ips: Vec<String> = addrs.map(|a| a.ip().to_string()).collect();
            ips.sort();
            ips.dedup();
            for ip in ips {
                println!("{ip}");
            }
        }
        Err(e) => fail(e),
    }
}

fn connect(addr: &str) {
    let result = (|| -> io::Result<String> {
        let mut stream = TcpStream::connect(addr)?;
        stream.write_all(b"ping\n")?;
        stream.flush()?;
        let mut line = String::new();
        BufReader::new(stream).read_line(&mut line)?;
        Ok(line.trim_end_matches(['\r', '\n']).to_string())
    })();
    match result {
        Ok(line) => println!("{line}"),
        Err(e) => fail(e),
    }
}
