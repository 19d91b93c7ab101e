//! `hello-p3`: a small WASI 0.3 (p3) command component, the p3 twin of
//! `hello-p2` with the same arguments and output.
//!
//! It exports `wasi:cli/run@0.3.0` (an async function) and uses only the
//! WASI 0.3 interfaces, through the `wasip3` crate, rather than the standard
//! library (which on wasm32-wasip2 would use WASI 0.2):
//!
//! * `wasi:filesystem` — uppercases `/data/input.txt` into `/data/output.txt`
//!   when a `/data` directory is preopened (files read and written as
//!   streams);
//! * `wasi:random` — prints 16 random bytes as hex;
//! * `wasi:clocks` — prints the system clock and checks the monotonic clock;
//! * `wasi:sockets` — `--connect HOST:PORT` looks `HOST` up if it is a name,
//!   sends `ping\n` over TCP and prints the first line of the reply;
//! * `--sleep MS`, `--alloc MIB` and `--spin` first wait, grow linear memory
//!   or loop for ever, for the host's limits to act on;
//! * `--exit N` makes it exit with code `N` once everything above has run
//!   (`wasi:cli/exit.exit-with-code`, part of WASI 0.3.0).
//!
//! stdout and stderr are `stream<u8>`s handed to the host once, at the start.
//! Only the standard library's panic and out-of-memory messages still import
//! WASI 0.2 (stdio, environment, exit), so a host links both versions.

use std::net::IpAddr;

use wasip3::cli::{environment, exit, stderr, stdout};
use wasip3::clocks::{monotonic_clock, system_clock};
use wasip3::filesystem::preopens;
use wasip3::filesystem::types::{Descriptor, DescriptorFlags, ErrorCode, OpenFlags, PathFlags};
use wasip3::random::random;
use wasip3::sockets::ip_name_lookup;
use wasip3::sockets::types::{
    IpAddress, IpAddressFamily, IpSocketAddress, Ipv4SocketAddress, Ipv6SocketAddress, TcpSocket,
};
use wasip3::wit_bindgen::{FutureReader, StreamResult, StreamWriter};
use wasip3::wit_stream;

const DATA_DIR: &str = "/data";
const INPUT: &str = "/data/input.txt";
const OUTPUT: &str = "/data/output.txt";

struct HelloP3;

wasip3::cli::command::export!(HelloP3);

impl wasip3::exports::cli::run::Guest for HelloP3 {
    async fn run() -> Result<(), ()> {
        let mut con = Console::open();
        let opts = match parse_args(environment::get_arguments().into_iter().skip(1)) {
            Ok(o) => o,
            Err(msg) => {
                con.err(&format!("error: {msg}\n")).await;
                return con.finish(2).await;
            }
        };

        con.out("Hello from a p3 component!\n").await;

        if let Some(ms) = opts.sleep_ms {
            monotonic_clock::wait_for(ms.saturating_mul(1_000_000)).await;
        }
        if let Some(mib) = opts.alloc_mib {
            // 16 pages of 64 KiB make a MiB.
            let grown = mib.checked_mul(16).map_or(usize::MAX, |pages| {
                core::arch::wasm32::memory_grow(0, pages)
            });
            if grown == usize::MAX {
                con.err(&format!("cannot grow memory by {mib} MiB\n")).await;
                return con.finish(1).await;
            }
            con.out(&format!("grew memory by {mib} MiB\n")).await;
        }
        if opts.spin {
            let mut x: u64 = 1;
            loop {
                x = std::hint::black_box(x.wrapping_mul(6364136223846793005).wrapping_add(1));
            }
        }

        transform_data(&mut con).await;
        print_random(&mut con).await;
        print_clocks(&mut con).await;

        if let Some(addr) = &opts.connect {
            match ping(addr).await {
                Ok(line) => con.out(&format!("reply: {line}\n")).await,
                Err(err) => {
                    con.err(&format!("connect failed: {err}\n")).await;
                    return con.finish(1).await;
                }
            }
        }

        con.finish(opts.exit.unwrap_or(0)).await
    }
}

/// stdout and stderr as the byte streams WASI 0.3 takes them as.
struct Console {
    out: Output,
    err: Output,
}

struct Output {
    tx: StreamWriter<u8>,
    done: FutureReader<Result<(), wasip3::cli::types::ErrorCode>>,
}

impl Console {
    fn open() -> Console {
        let (out_tx, out_rx) = wit_stream::new();
        let (err_tx, err_rx) = wit_stream::new();
        Console {
            out: Output {
                tx: out_tx,
                done: stdout::write_via_stream(out_rx),
            },
            err: Output {
                tx: err_tx,
                done: stderr::write_via_stream(err_rx),
            },
        }
    }

    async fn out(&mut self, text: &str) {
        self.out.tx.write_all(text.as_bytes().to_vec()).await;
    }

    async fn err(&mut self, text: &str) {
        self.err.tx.write_all(text.as_bytes().to_vec()).await;
    }

    /// Closes both streams and waits until the host has written them out,
    /// then ends the program with `code`: 0 returns from `run`, 1..=255 go
    /// through `exit-with-code`, anything else is a plain failure (1).
    async fn finish(self, code: i32) -> Result<(), ()> {
        for output in [self.out, self.err] {
            drop(output.tx);
            let _ = output.done.await;
        }
        match u8::try_from(code) {
            Ok(0) => Ok(()),
            Ok(status) => {
                exit::exit_with_code(status);
                unreachable!("wasi:cli/exit returned")
            }
            Err(_) => Err(()),
        }
    }
}

struct Options {
    connect: Option<String>,
    exit: Option<i32>,
    /// `--sleep MS`: wait on the monotonic clock first.
    sleep_ms: Option<u64>,
    /// `--alloc MIB`: grow linear memory by MIB MiB first (exit 1 if refused).
    alloc_mib: Option<usize>,
    /// `--spin`: loop for ever first (for the host's limits).
    spin: bool,
}

fn parse_args(args: impl Iterator<Item = String>) -> Result<Options, String> {
    let mut opts = Options {
        connect: None,
        exit: None,
        sleep_ms: None,
        alloc_mib: None,
        spin: false,
    };
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
            "--sleep" => {
                let value = args.next().ok_or("--sleep needs milliseconds")?;
                opts.sleep_ms = Some(
                    value
                        .parse()
                        .map_err(|e| format!("invalid --sleep {value:?}: {e}"))?,
                );
            }
            "--alloc" => {
                let value = args.next().ok_or("--alloc needs MiB")?;
                opts.alloc_mib = Some(
                    value
                        .parse()
                        .map_err(|e| format!("invalid --alloc {value:?}: {e}"))?,
                );
            }
            "--spin" => opts.spin = true,
            _ => {} // other arguments are ignored
        }
    }
    Ok(opts)
}

/// `wasi:filesystem`: uppercase `/data/input.txt` into `/data/output.txt`.
async fn transform_data(con: &mut Console) {
    let preopens = preopens::get_directories();
    let Some(dir) = preopens
        .iter()
        .find(|(_, path)| path.trim_end_matches('/') == DATA_DIR)
        .map(|(dir, _)| dir)
    else {
        con.err(&format!("no {DATA_DIR} preopen\n")).await;
        return;
    };
    let input = match read_file(dir, "input.txt").await {
        Ok(bytes) => bytes,
        Err(err) => {
            con.err(&format!("cannot read {INPUT}: {err}\n")).await;
            return;
        }
    };
    let output = match String::from_utf8(input) {
        Ok(text) => text.to_uppercase().into_bytes(),
        Err(err) => err.into_bytes().to_ascii_uppercase(),
    };
    let len = output.len();
    match write_file(dir, "output.txt", output).await {
        Ok(()) => con.out(&format!("wrote {OUTPUT} ({len} bytes)\n")).await,
        Err(err) => con.err(&format!("cannot write {OUTPUT}: {err}\n")).await,
    }
}

async fn read_file(dir: &Descriptor, name: &str) -> Result<Vec<u8>, ErrorCode> {
    let file = dir
        .open_at(
            PathFlags::empty(),
            name.into(),
            OpenFlags::empty(),
            DescriptorFlags::READ,
        )
        .await?;
    let (data, done) = file.read_via_stream(0);
    let bytes = data.collect().await;
    done.await?;
    Ok(bytes)
}

async fn write_file(dir: &Descriptor, name: &str, bytes: Vec<u8>) -> Result<(), ErrorCode> {
    let file = dir
        .open_at(
            PathFlags::empty(),
            name.into(),
            OpenFlags::CREATE | OpenFlags::TRUNCATE,
            DescriptorFlags::WRITE,
        )
        .await?;
    let (mut tx, rx) = wit_stream::new();
    let done = file.write_via_stream(rx, 0);
    tx.write_all(bytes).await;
    drop(tx);
    done.await
}

/// `wasi:random`: 16 bytes from `get-random-bytes`.
async fn print_random(con: &mut Console) {
    let bytes = random::get_random_bytes(16);
    let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    con.out(&format!("random: {hex}\n")).await;
}

/// `wasi:clocks`: the system clock in seconds, and the monotonic clock.
async fn print_clocks(con: &mut Console) {
    let now = system_clock::now();
    if now.seconds >= 0 {
        con.out(&format!("wall clock: {}\n", now.seconds)).await;
    } else {
        con.out(&format!(
            "wall clock: before the unix epoch by {}s\n",
            -now.seconds
        ))
        .await;
    }
    let start = monotonic_clock::now();
    let later = monotonic_clock::now();
    let verdict = if later >= start {
        "ok"
    } else {
        "went backwards"
    };
    con.out(&format!("monotonic: {verdict}\n")).await;
}

/// `wasi:sockets`: connect, send `ping\n`, return the first reply line.
async fn ping(addr: &str) -> Result<String, String> {
    let (host, port) = addr.rsplit_once(':').ok_or("expected HOST:PORT")?;
    let port: u16 = port
        .parse()
        .map_err(|_| format!("invalid port in {addr:?}"))?;
    let host = host.trim_start_matches('[').trim_end_matches(']');
    let addresses = match host.parse::<IpAddr>() {
        Ok(ip) => vec![ip_address(ip)],
        Err(_) => ip_name_lookup::resolve_addresses(host.into())
            .await
            .map_err(|e| format!("cannot look up {host}: {e}"))?,
    };
    let mut last_error = format!("no address for {host}");
    for address in addresses {
        match connect(address, port).await {
            Ok(socket) => return exchange(socket).await,
            Err(err) => last_error = err,
        }
    }
    Err(last_error)
}

fn ip_address(ip: IpAddr) -> IpAddress {
    match ip {
        IpAddr::V4(v4) => {
            let [a, b, c, d] = v4.octets();
            IpAddress::Ipv4((a, b, c, d))
        }
        IpAddr::V6(v6) => {
            let [a, b, c, d, e, f, g, h] = v6.segments();
            IpAddress::Ipv6((a, b, c, d, e, f, g, h))
        }
    }
}

async fn connect(address: IpAddress, port: u16) -> Result<TcpSocket, String> {
    let (family, remote) = match address {
        IpAddress::Ipv4(address) => (
            IpAddressFamily::Ipv4,
            IpSocketAddress::Ipv4(Ipv4SocketAddress { port, address }),
        ),
        IpAddress::Ipv6(address) => (
            IpAddressFamily::Ipv6,
            IpSocketAddress::Ipv6(Ipv6SocketAddress {
                port,
                flow_info: 0,
                address,
                scope_id: 0,
            }),
        ),
    };
    let socket = TcpSocket::create(family).map_err(|e| e.to_string())?;
    socket.connect(remote).await.map_err(|e| e.to_string())?;
    Ok(socket)
}

async fn exchange(socket: TcpSocket) -> Result<String, String> {
    let (mut tx, rx) = wit_stream::new();
    let sent = socket.send(rx);
    tx.write_all(b"ping\n".to_vec()).await;
    drop(tx);
    sent.await.map_err(|e| e.to_string())?;

    let (mut data, _done) = socket.receive();
    let mut reply = Vec::new();
    while !reply.contains(&b'\n') {
        let (status, buf) = data.read(Vec::with_capacity(1024)).await;
        match status {
            StreamResult::Complete(_) => reply.extend_from_slice(&buf),
            StreamResult::Dropped | StreamResult::Cancelled => break,
        }
    }
    let line = reply.split(|&b| b == b'\n').next().unwrap_or_default();
    let line = String::from_utf8_lossy(line);
    Ok(line.trim_end_matches('\r').to_string())
}
