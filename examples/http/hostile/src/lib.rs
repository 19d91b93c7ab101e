//! `hostile`: misbehaves as the last segment of the path says, to show that
//! one request's failure stays its own:
//!
//! - `/loop`: spins forever (ended by the route's timeout or fuel);
//! - `/membomb`: allocates until memory runs out (ended by the memory limit);
//! - `/trap`: executes `unreachable`;
//! - `/sleep?MS`: answers after MS milliseconds (for timeouts, concurrency
//!   and draining);
//! - anything else: answers `ok`.

use http_common::wasip2::exports::http::incoming_handler::Guest;
use http_common::wasip2::http::types::{IncomingRequest, ResponseOutparam};

struct Hostile;

impl Guest for Hostile {
    fn handle(request: IncomingRequest, out: ResponseOutparam) {
        let path = http_common::path(&request);
        // The last segment names the behaviour, so the guest acts the same
        // on whatever route prefix it is served.
        let last = path
            .split('?')
            .next()
            .unwrap_or("")
            .rsplit('/')
            .next()
            .unwrap_or("");
        match last {
            "loop" => {
                let mut x: u64 = 1;
                loop {
                    x = std::hint::black_box(x.wrapping_mul(6364136223846793005).wrapping_add(1));
                }
            }
            "membomb" => {
                let mut hoard: Vec<Vec<u8>> = Vec::new();
                loop {
                    hoard.push(vec![1u8; 1 << 20]);
                    std::hint::black_box(&hoard);
                }
            }
            "trap" => core::arch::wasm32::unreachable(),
            "sleep" => {
                let ms: u64 = path
                    .split('?')
                    .nth(1)
                    .and_then(|q| q.parse().ok())
                    .unwrap_or(100);
                http_common::wasip2::clocks::monotonic_clock::subscribe_duration(ms * 1_000_000)
                    .block();
                http_common::respond(out, 200, &[], format!("slept {ms} ms\n").as_bytes());
            }
            _ => http_common::respond(out, 200, &[], b"ok\n"),
        }
    }
}

http_common::wasip2::http::proxy::export!(Hostile with_types_in http_common::wasip2);
