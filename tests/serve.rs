//! `wasmlayer serve`, end to end: the real binary on real wasi:http
//! components, driven by a real HTTP client.

mod common;
use common::serve::*;
use common::server::Serving;
use common::*;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

#[test]
fn routes_env_streaming_echo_and_access_log() {
    let dir = tempdir();
    let manifest = write_manifest(
        dir.path(),
        &format!(
            r#"
            [[route]]
            path = "/hello"
            component = "{hello}"
            env = {{ GREETING = "Howdy" }}

            [[route]]
            path = "/hello/echo"
            component = "{echo}"
            "#,
            hello = s(&guest("http-hello.wasm")),
            echo = s(&guest("http-echo.wasm")),
        ),
    );
    let server = Server::start(&[&s(&manifest)]);

    let (status, _, body) = get(&server.url("/hello/world"));
    assert_eq!(status, 200);
    assert_eq!(body, "Howdy from wasmlayer! path=/hello/world\n");
    // Longest prefix wins; a prefix only matches at a `/`.
    let payload: Vec<u8> = (0..300_000u32).map(|i| (i % 251) as u8).collect();
    let (status, echoed) = post(&server.url("/hello/echo"), &payload);
    assert_eq!(status, 200);
    assert!(echoed == payload, "echo returned {} bytes", echoed.len());
    let (status, _, body) = get(&server.url("/hellothere"));
    assert_eq!(status, 404, "{body}");
    assert_eq!(get(&server.url("/")).0, 404);

    let mut server = server;
    server.wait_for(Duration::from_secs(5), |s| {
        let log = s.access_log();
        (log.iter().any(|l| l["route"] == "/hello/echo")
            && log.iter().any(|l| l["path"] == "/hellothere"))
        .then_some(())
    });
    let log = server.access_log();
    let hello = log
        .iter()
        .find(|l| l["path"] == "/hello/world")
        .expect("access-log line for /hello/world");
    assert_eq!(hello["route"], "/hello");
    assert_eq!(hello["status"], 200);
    assert_eq!(hello["bytes_out"], 40);
    assert!(hello["fuel"].as_u64().unwrap() > 0, "{hello}");
    assert!(hello["memory_peak"].as_u64().unwrap() >= 65536, "{hello}");
    assert!(hello["wall_us"].as_u64().unwrap() > 0, "{hello}");
    let echo = log
        .iter()
        .find(|l| l["route"] == "/hello/echo")
        .expect("access-log line for the echo");
    assert_eq!(echo["bytes_in"], 300_000);
    assert_eq!(echo["bytes_out"], 300_000);
    assert!(log
        .iter()
        .any(|l| l["path"] == "/hellothere" && l["status"] == 404));
}

#[test]
fn each_limit_has_its_status_and_the_server_keeps_serving() {
    let mut server = Server::start(&[
        "--timeout",
        "1s",
        "--max-memory",
        "16MiB",
        "--fuel",
        "50000000",
        "--max-body",
        "1KiB",
        &s(&guest("http-hostile.wasm")),
    ]);
    let (status, _, body) = get(&server.url("/loop"));
    // The loop burns its fuel before the timeout.
    assert_eq!(status, 500, "{body}");
    assert!(body.contains("exhausted its fuel"), "{body}");
    let (status, _, body) = get(&server.url("/membomb"));
    assert_eq!(status, 500, "{body}");
    assert!(body.contains("memory limit (16 MiB)"), "{body}");
    let (status, _, body) = get(&server.url("/trap"));
    assert_eq!(status, 500, "{body}");
    assert!(body.contains("unreachable"), "{body}");
    let (status, _, body) = get(&server.url("/sleep?3000"));
    assert_eq!(status, 504, "{body}");
    assert!(body.contains("timeout (1s)"), "{body}");
    assert_eq!(post(&server.url("/ok"), &[b'x'; 2048]).0, 413);
    assert_eq!(post(&server.url("/ok"), &[b'x'; 512]).0, 200);

    // Malformed HTTP is answered by the host; the guest never sees it.
    let mut raw = TcpStream::connect(("127.0.0.1", server.port)).unwrap();
    raw.write_all(b"THIS IS NOT HTTP\r\n\r\n").unwrap();
    let mut answer = String::new();
    let _ = raw.read_to_string(&mut answer);
    assert!(answer.starts_with("HTTP/1.1 400"), "{answer:?}");

    let (status, _, body) = get(&server.url("/ok"));
    assert_eq!((status, body.as_str()), (200, "ok\n"));
    for cause in [
        "exhausted its fuel",
        "memory limit",
        "unreachable",
        "timeout",
    ] {
        let logged = server.wait_for(Duration::from_secs(5), |s| {
            s.stderr_text().contains(cause).then_some(())
        });
        assert!(
            logged.is_some(),
            "no log line naming `{cause}`:\n{}",
            server.stderr_text()
        );
    }
    // Records are written once body and instance are both done: wait for the last.
    server.wait_for(Duration::from_secs(5), |s| {
        (metric(
            &s.metrics(),
            r#"wasmlayer_request_memory_bytes_count{route="/"}"#,
        ) == Some(6.0))
        .then_some(())
    });
    let m = server.metrics();
    assert_eq!(
        metric(&m, r#"wasmlayer_requests_total{route="/",status="500"}"#),
        Some(3.0),
        "{m}"
    );
    assert_eq!(
        metric(&m, r#"wasmlayer_requests_total{route="/",status="504"}"#),
        Some(1.0),
        "{m}"
    );
    assert_eq!(
        metric(&m, r#"wasmlayer_requests_total{route="/",status="413"}"#),
        Some(1.0),
        "{m}"
    );
    assert_eq!(
        metric(&m, r#"wasmlayer_requests_total{route="/",status="200"}"#),
        Some(2.0),
        "{m}"
    );
    let fuel_sum = metric(&m, r#"wasmlayer_request_fuel_sum{route="/"}"#).unwrap();
    assert!(
        fuel_sum >= 50_000_000.0,
        "the loop's fuel is metered: {fuel_sum}"
    );
    assert_eq!(
        metric(&m, r#"wasmlayer_request_memory_bytes_count{route="/"}"#),
        Some(6.0),
        "{m}"
    );
    assert_eq!(
        get(&format!("http://127.0.0.1:{}/healthz", server.admin)).0,
        200
    );
    assert_eq!(
        get(&format!("http://127.0.0.1:{}/readyz", server.admin)).0,
        200
    );
}

/// A loopback HTTP server answering every request with `upstream body`.
fn upstream() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let mut stream = stream;
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut line = String::new();
            while reader.read_line(&mut line).is_ok_and(|n| n > 2) {
                line.clear();
            }
            let _ = stream.write_all(
                b"HTTP/1.1 200 OK\r\ncontent-length: 13\r\nconnection: close\r\n\r\nupstream body",
            );
        }
    });
    port
}

#[test]
fn outbound_http_only_to_the_allowlist() {
    let port = upstream();
    let dir = tempdir();
    let manifest = write_manifest(
        dir.path(),
        &format!(
            r#"
            [[route]]
            path = "/allowed"
            component = "{c}"
            env = {{ UPSTREAM_URL = "http://127.0.0.1:{port}/data" }}
            allow_http = ["127.0.0.1:{port}"]

            [[route]]
            path = "/denied"
            component = "{c}"
            env = {{ UPSTREAM_URL = "http://127.0.0.1:{port}/data" }}
            allow_http = ["127.0.0.1:1"]
            "#,
            c = s(&guest("http-upstream.wasm")),
        ),
    );
    let mut server = Server::start(&[&s(&manifest)]);
    let (status, _, body) = get(&server.url("/allowed"));
    assert_eq!(
        (status, body.as_str()),
        (200, "upstream said 200: upstream body")
    );
    assert_outbound_denied(&mut server, "/denied");
}

/// GET `path` is answered 502 because the guest's outbound request was
/// denied, and the server logged the denial.
fn assert_outbound_denied(server: &mut Server, path: &str) {
    let (status, _, body) = get(&server.url(path));
    assert_eq!(status, 502, "{body}");
    assert!(body.contains("HttpRequestDenied"), "{body}");
    let logged = server.wait_for(Duration::from_secs(5), |s| {
        s.stderr_text()
            .contains("outbound HTTP denied")
            .then_some(())
    });
    assert!(logged.is_some(), "{}", server.stderr_text());
}

#[test]
fn beyond_the_pool_requests_get_503_with_retry_after() {
    let server = Server::start(&["--pool-size", "2", &s(&guest("http-hostile.wasm"))]);
    let slow: Vec<_> = (0..2)
        .map(|_| {
            let url = server.url("/sleep?1500");
            std::thread::spawn(move || get(&url).0)
        })
        .collect();
    let mut server = server;
    server
        .wait_for(Duration::from_secs(10), |s| {
            s.in_flight().eq(&2.0).then_some(())
        })
        .expect("two requests in flight");
    let (status, headers, _) = get(&server.url("/ok"));
    assert_eq!(status, 503);
    assert!(
        headers.to_ascii_lowercase().contains("retry-after: 1"),
        "{headers}"
    );
    for t in slow {
        assert_eq!(t.join().unwrap(), 200);
    }
    assert_eq!(get(&server.url("/ok")).0, 200);
    let m = server.metrics();
    assert_eq!(
        metric(&m, r#"wasmlayer_rejected_total{result="at-capacity"}"#),
        Some(1.0),
        "{m}"
    );
}

/// `component` with one more core module, whose instance has a memory of
/// its own: each instance of the result takes two of the pool's memories.
fn with_a_second_memory(component: &[u8]) -> Vec<u8> {
    use wasmparser::{Parser, Payload};
    let (mut depth, mut modules) = (0i32, 0u32);
    for payload in Parser::new(0).parse_all(component) {
        match payload.unwrap() {
            Payload::ModuleSection { .. } => {
                modules += u32::from(depth == 0);
                depth += 1;
            }
            Payload::ComponentSection { .. } => depth += 1,
            Payload::End(_) => depth -= 1,
            _ => {}
        }
    }
    assert!(modules < 128, "{modules} modules: one byte of LEB128 below");
    let module = b"\0asm\x01\0\0\0\x05\x03\x01\x00\x01"; // (module (memory 1))
    let mut out = component.to_vec();
    out.extend_from_slice(&[1, module.len() as u8]);
    out.extend_from_slice(module);
    // (core instance (instantiate <that module>))
    out.extend_from_slice(&[2, 4, 1, 0, modules as u8, 0]);
    wasmparser::Validator::new_with_features(wasmparser::WasmFeatures::all())
        .validate_all(&out)
        .expect("a valid component");
    out
}

#[test]
fn an_instance_the_pool_cannot_make_gets_503_and_the_rest_go_on() {
    // A pool of 2 holds two memories; this guest's instances take two each,
    // so a second request finds a free slot but no memory for it.
    let t = tempdir();
    let guest_path = t.path().join("two-memories.wasm");
    let bytes = std::fs::read(guest("http-hostile.wasm")).unwrap();
    std::fs::write(&guest_path, with_a_second_memory(&bytes)).unwrap();
    let mut server = Server::start(&["--pool-size", "2", &s(&guest_path)]);
    assert_eq!(get(&server.url("/ok")).0, 200);
    // Its instance is freed just after the answer is sent.
    server
        .wait_for(Duration::from_secs(10), |s| {
            s.in_flight().eq(&0.0).then_some(())
        })
        .expect("nothing in flight");
    let slow = {
        let url = server.url("/sleep?1500");
        std::thread::spawn(move || get(&url).0)
    };
    server
        .wait_for(Duration::from_secs(10), |s| {
            s.in_flight().eq(&1.0).then_some(())
        })
        .expect("one request in flight");
    let (status, headers, body) = get(&server.url("/ok"));
    assert_eq!(status, 503, "{body}");
    assert!(body.contains("no instance available"), "{body}");
    assert!(
        headers.to_ascii_lowercase().contains("retry-after: 1"),
        "{headers}"
    );
    assert_eq!(slow.join().unwrap(), 200);
    // Freed: the next one is served, and the server never stopped.
    assert_eq!(get(&server.url("/ok")).0, 200);
    let record = logged(&mut server, "/ok", 503);
    assert!(
        record["error"]
            .as_str()
            .is_some_and(|e| e.contains("no instance available")),
        "{record}"
    );
    assert!(server.exited().is_none(), "still serving");
    let m = server.metrics();
    assert!(m.contains(r#"status="503""#), "{m}");
}

#[test]
fn reload_swaps_versions_without_failing_requests() {
    let dir = tempdir();
    let component = dir.path().join("app.wasm");
    std::fs::copy(guest("http-hello.wasm"), &component).unwrap();
    let manifest = write_manifest(
        dir.path(),
        "[[route]]\npath = \"/\"\ncomponent = \"app.wasm\"\n",
    );
    let mut server = Server::start(&[&s(&manifest)]);
    assert!(get(&server.url("/x")).2.starts_with("Hello from wasmlayer"));

    // Load in the background while the component changes under it.
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let load = {
        let (url, stop) = (server.url("/x"), stop.clone());
        std::thread::spawn(move || {
            let mut statuses = Vec::new();
            while !stop.load(std::sync::atomic::Ordering::SeqCst) {
                statuses.push(get(&url).0);
            }
            statuses
        })
    };
    std::thread::sleep(Duration::from_millis(200));
    std::fs::copy(guest("http-hostile.wasm"), dir.path().join("next.wasm")).unwrap();
    std::fs::rename(dir.path().join("next.wasm"), &component).unwrap();
    let swapped = server.wait_for(Duration::from_secs(30), |s| {
        get(&s.url("/x")).2.eq("ok\n").then_some(())
    });
    assert!(
        swapped.is_some(),
        "the new version never answered:\n{}",
        server.stderr_text()
    );
    std::thread::sleep(Duration::from_millis(200));
    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    let statuses = load.join().unwrap();
    assert!(
        statuses.len() > 5 && statuses.iter().all(|s| *s == 200),
        "statuses during reload: {statuses:?}"
    );

    // A broken version is rejected and the running one keeps serving.
    std::fs::write(dir.path().join("next.wasm"), b"\0asm\x0d\0\x01\0garbage").unwrap();
    std::fs::rename(dir.path().join("next.wasm"), &component).unwrap();
    let rejected = server.wait_for(Duration::from_secs(10), |s| {
        s.stderr_text().contains("reload rejected").then_some(())
    });
    assert!(rejected.is_some(), "{}", server.stderr_text());
    assert_eq!(get(&server.url("/x")).2, "ok\n");

    // SIGHUP reloads too (the manifest now points at a fixed component).
    std::fs::copy(guest("http-hello.wasm"), dir.path().join("hello.wasm")).unwrap();
    std::fs::write(
        &manifest,
        "[[route]]\npath = \"/\"\ncomponent = \"hello.wasm\"\n",
    )
    .unwrap();
    server.signal(libc::SIGHUP);
    let back = server.wait_for(Duration::from_secs(30), |s| {
        get(&s.url("/x")).2.starts_with("Hello").then_some(())
    });
    assert!(back.is_some(), "{}", server.stderr_text());
    let m = server.metrics();
    assert!(
        metric(&m, r#"wasmlayer_reloads_total{result="ok"}"#).unwrap() >= 2.0,
        "{m}"
    );
    assert!(
        metric(&m, r#"wasmlayer_reloads_total{result="rejected"}"#).unwrap() >= 1.0,
        "{m}"
    );
}

#[test]
fn sigterm_drains_in_flight_requests_then_exits_0() {
    let mut server = Server::start(&[&s(&guest("http-hostile.wasm"))]);
    let slow = {
        let url = server.url("/sleep?1000");
        std::thread::spawn(move || get(&url))
    };
    server
        .wait_for(Duration::from_secs(10), |s| {
            s.in_flight().eq(&1.0).then_some(())
        })
        .expect("one request in flight");
    server.signal(libc::SIGTERM);
    let (status, _, body) = slow.join().unwrap();
    assert_eq!((status, body.as_str()), (200, "slept 1000 ms\n"));
    let status = server
        .wait_exit(Duration::from_secs(15))
        .unwrap_or_else(|| panic!("did not exit after draining:\n{}", server.stderr_text()));
    assert_eq!(status.code(), Some(0), "{}", server.stderr_text());
    // The pipe may still hold the last lines after the exit.
    let until = Instant::now() + Duration::from_secs(5);
    while !server.stderr_text().contains("drained") && Instant::now() < until {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(
        server.stderr_text().contains("drained"),
        "{}",
        server.stderr_text()
    );
    assert!(
        TcpStream::connect(("127.0.0.1", server.port)).is_err(),
        "still accepting after drain"
    );
}

#[test]
fn the_manifest_can_set_the_addresses() {
    let dir = tempdir();
    let manifest = write_manifest(
        dir.path(),
        &format!(
            "[server]\nlisten = \"127.0.0.1:0\"\nadmin = \"127.0.0.1:0\"\npool_size = 4\n[[route]]\npath = \"/\"\ncomponent = \"{}\"\ninherit_env = [\"PATH\"]\n",
            s(&guest("http-hello.wasm"))
        ),
    );
    let server = Server::start_with(&[&s(&manifest)]);
    assert_eq!(get(&server.url("/")).0, 200);
    assert!(
        server.stderr_text().contains("pool of 4"),
        "{}",
        server.stderr_text()
    );
    assert_eq!(
        get(&format!("http://127.0.0.1:{}/healthz", server.admin)).0,
        200
    );
}

#[test]
fn bad_targets_are_refused_clearly() {
    let dir = tempdir();
    let bad = write_manifest(
        dir.path(),
        "[[route]]\npath = \"nope\"\ncomponent = \"x.wasm\"\n",
    );
    let r = run(["serve", &s(&bad)]);
    assert_eq!(r.code, 2, "{r:?}");
    assert!(r.stderr.contains("must start with `/`"), "{r:?}");
    let r = run(["serve", &s(&guest("transform-c.wasm"))]);
    assert_eq!(r.code, 126, "{r:?}");
    assert!(r.stderr.contains("needs a wasi:http component"), "{r:?}");
    let r = run(["serve", &s(&guest("hello-p2.wasm"))]);
    assert_eq!(r.code, 126, "{r:?}");
    assert!(
        r.stderr
            .contains("not a wasi:http component: it exports neither"),
        "{r:?}"
    );
    let r = run(["serve", "--env", "A=1", &s(&bad)]);
    assert_eq!(r.code, 2, "{r:?}");
}

/// Sends `bytes` on a fresh connection and leaves it open.
fn send_raw(port: u16, bytes: &[u8]) -> TcpStream {
    let mut c = TcpStream::connect(("127.0.0.1", port)).unwrap();
    c.write_all(bytes).unwrap();
    c
}

/// Reads what the server answers until it closes the connection.
fn answer(mut c: TcpStream, within: Duration) -> String {
    c.set_read_timeout(Some(within)).unwrap();
    let mut buf = Vec::new();
    let _ = c.read_to_end(&mut buf);
    String::from_utf8_lossy(&buf).into_owned()
}

/// Sends `bytes` on a fresh connection and reads the whole answer.
fn exchange(port: u16, bytes: &[u8]) -> String {
    answer(send_raw(port, bytes), Duration::from_secs(10))
}

/// A record from the access log, found by path and status.
fn logged(server: &mut Server, path: &str, status: u64) -> serde_json::Value {
    server
        .wait_for(Duration::from_secs(10), |s| {
            s.access_log()
                .into_iter()
                .find(|r| r["path"] == path && r["status"] == status)
        })
        .unwrap_or_else(|| {
            panic!(
                "no record of {path} with {status}:\n{:?}",
                server.access_log()
            )
        })
}

#[test]
fn slow_clients_hold_connections_not_instances() {
    let mut server = Server::start(&[
        "--pool-size",
        "2",
        "--header-timeout",
        "5s",
        "--body-timeout",
        "5s",
        &s(&guest("http-hostile.wasm")),
    ]);
    // Bodies trickling in, and headers never finished (slowloris).
    let start = Instant::now();
    let uploads: Vec<_> = (0..150)
        .map(|_| {
            send_raw(
                server.port,
                b"POST /ok HTTP/1.1\r\nHost: x\r\nContent-Length: 500\r\n\r\nabc",
            )
        })
        .collect();
    let lorises: Vec<_> = (0..150)
        .map(|_| send_raw(server.port, b"GET /ok HTTP/1.1\r\nHost: x\r\nX-Slow: "))
        .collect();
    let idle = send_raw(server.port, b"");
    // Everyone else is served meanwhile: a pool of 2 is not held by them.
    for _ in 0..5 {
        let (status, _, body) = get(&server.url("/ok"));
        assert_eq!((status, body.as_str()), (200, "ok\n"));
    }
    // ... while every slow client still holds its connection.
    assert!(
        start.elapsed() < Duration::from_secs(5),
        "{:?}",
        start.elapsed()
    );
    // Each slow client is answered 408 at its deadline and disconnected.
    for c in uploads {
        let a = answer(c, Duration::from_secs(15));
        assert!(a.starts_with("HTTP/1.1 408"), "{a:?}");
        assert!(a.contains("request body not received within 5s"), "{a:?}");
    }
    for c in lorises {
        let a = answer(c, Duration::from_secs(15));
        assert!(a.starts_with("HTTP/1.1 408"), "{a:?}");
        assert!(
            a.contains("request headers not received within 5s"),
            "{a:?}"
        );
    }
    assert!(
        start.elapsed() < Duration::from_secs(10),
        "{:?}",
        start.elapsed()
    );
    // An idle connection is closed without an answer.
    assert_eq!(answer(idle, Duration::from_secs(10)), "");
    server.wait_for(Duration::from_secs(10), |s| {
        (metric(
            &s.metrics(),
            r#"wasmlayer_rejected_total{result="header-timeout"}"#,
        ) == Some(150.0))
        .then_some(())
    });
    let m = server.metrics();
    for (name, n) in [
        (r#"wasmlayer_rejected_total{result="body-timeout"}"#, 150.0),
        (
            r#"wasmlayer_rejected_total{result="header-timeout"}"#,
            150.0,
        ),
        (r#"wasmlayer_requests_total{route="/",status="408"}"#, 150.0),
        (r#"wasmlayer_requests_total{route="-",status="408"}"#, 150.0),
        (r#"wasmlayer_requests_total{route="/",status="200"}"#, 5.0),
    ] {
        assert_eq!(metric(&m, name), Some(n), "{name}\n{m}");
    }
    assert_eq!(
        metric(&m, "wasmlayer_rejected_total{result=\"at-capacity\"}"),
        None,
        "{m}"
    );
}

#[test]
fn fuel_is_metered_however_a_request_ends() {
    let dir = tempdir();
    let hostile = s(&guest("http-hostile.wasm"));
    let manifest = write_manifest(
        dir.path(),
        &format!(
            r#"
            [[route]]
            path = "/fuel"
            component = "{hostile}"
            fuel = 50000000

            [[route]]
            path = "/time"
            component = "{hostile}"
            timeout = "1s"

            [[route]]
            path = "/mem"
            component = "{hostile}"
            max_memory = "16MiB"
            "#
        ),
    );
    let mut server = Server::start(&[&s(&manifest)]);
    assert_eq!(get(&server.url("/fuel/loop")).0, 500);
    assert_eq!(get(&server.url("/time/loop")).0, 504);
    assert_eq!(get(&server.url("/mem/membomb")).0, 500);
    assert_eq!(get(&server.url("/mem/trap")).0, 500);
    assert_eq!(get(&server.url("/mem/ok")).0, 200);
    let fuel = |r: serde_json::Value| r["fuel"].as_u64().unwrap_or_else(|| panic!("{r}"));
    let exhausted = logged(&mut server, "/fuel/loop", 500);
    assert_eq!(fuel(exhausted.clone()), 50_000_000, "{exhausted}");
    // The same loop, ended by the clock after 1 s, burnt far more than the
    // 50,000,000 it burns in a fraction of that time.
    let wall = exhausted["wall_us"].as_u64().unwrap();
    let timed_out = fuel(logged(&mut server, "/time/loop", 504));
    if wall < 500_000 {
        assert!(timed_out > 100_000_000, "{timed_out} (50M in {wall} µs)");
    }
    assert!(timed_out > 50_000_000, "{timed_out}");
    for path in ["/mem/membomb", "/mem/trap"] {
        let burnt = fuel(logged(&mut server, path, 500));
        assert!(burnt > 1000, "{path}: {burnt}");
    }
    assert!(fuel(logged(&mut server, "/mem/ok", 200)) > 1000);
    let m = server.metrics();
    let sum = metric(&m, r#"wasmlayer_request_fuel_sum{route="/time"}"#).unwrap();
    assert_eq!(sum, timed_out as f64, "{m}");
}

#[test]
fn timeouts_are_answered_on_time_under_load() {
    let mut server = Server::start(&["--timeout", "1s", &s(&guest("http-hostile.wasm"))]);
    let start = Instant::now();
    let loops: Vec<_> = (0..100)
        .map(|_| {
            let url = server.url("/loop");
            std::thread::spawn(move || {
                let (status, _, _) = get(&url);
                (status, start.elapsed())
            })
        })
        .collect();
    // The server answers others while every guest thread is busy.
    std::thread::sleep(Duration::from_millis(300));
    let (status, _, _) = get(&server.url("/ok"));
    assert_eq!(status, 200);
    for t in loops {
        let (status, took) = t.join().unwrap();
        assert_eq!(status, 504);
        // 1 s, a margin for the client threads to start, and the documented
        // margin of the answer.
        assert!(
            took < Duration::from_millis(2000),
            "answered after {took:?}"
        );
    }
    server.wait_for(Duration::from_secs(10), |s| {
        s.in_flight().eq(&0.0).then_some(())
    });
    assert_eq!(get(&server.url("/ok")).0, 200);
}

#[test]
fn http_framing_is_checked_before_any_guest() {
    let server = Server::start(&[&s(&guest("http-hostile.wasm"))]);
    // HTTP/1.0 may leave out Host: the request is for this server.
    let a = exchange(server.port, b"GET /ok HTTP/1.0\r\n\r\n");
    assert!(
        a.starts_with("HTTP/1.0 200") && a.ends_with("ok\n"),
        "{a:?}"
    );
    // HTTP/1.1 must have it.
    let a = exchange(server.port, b"GET /ok HTTP/1.1\r\n\r\n");
    assert!(
        a.starts_with("HTTP/1.1 400") && a.contains("missing Host header"),
        "{a:?}"
    );
    // Two framings at once are how requests are smuggled: 400, and the
    // connection closes, so whatever follows on it is never served. On a
    // keep-alive connection, after requests framed each way (a body that
    // looks like headers included), in either order of the two headers.
    for (i, head) in [
        "Content-Length: 40\r\nTransfer-Encoding: chunked",
        "transfer-encoding: chunked\r\ncontent-length: 4",
    ]
    .iter()
    .enumerate()
    {
        let before = if i == 0 {
            String::new()
        } else {
            "POST /ok HTTP/1.1\r\nHost: x\r\nContent-Length: 30\r\n\r\nTransfer-Encoding: chunked\r\n\r\n\
             POST /ok HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n\
             15\r\nContent-Length: 1\r\n\r\n\r\n0\r\n\r\n"
                .to_string()
        };
        let request = format!(
            "{before}POST /ok HTTP/1.1\r\nHost: x\r\n{head}\r\n\r\n0\r\n\r\nGET /trap HTTP/1.1\r\nHost: x\r\n\r\n"
        );
        let a = exchange(server.port, request.as_bytes());
        let answers: Vec<&str> = a.split("HTTP/1.1 ").skip(1).collect();
        assert_eq!(answers.len(), 1 + 2 * i, "{a:?}");
        assert!(
            answers[..2 * i].iter().all(|r| r.starts_with("200")),
            "{a:?}"
        );
        let last = answers.last().unwrap();
        assert!(
            last.starts_with("400")
                && last.contains("Transfer-Encoding together with Content-Length")
                && last.to_ascii_lowercase().contains("connection: close"),
            "{a:?}"
        );
    }
    // A non-chunked Transfer-Encoding cannot be framed at all.
    let a = exchange(
        server.port,
        b"POST /ok HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip\r\n\r\n",
    );
    assert!(a.starts_with("HTTP/1.1 400"), "{a:?}");
    assert_eq!(get(&server.url("/ok")).0, 200);
    // The guest never saw a trap request.
    assert!(
        !server.stderr_text().contains("unreachable"),
        "{}",
        server.stderr_text()
    );
}

#[test]
fn a_pool_larger_than_the_kernel_allows_is_fitted_with_a_warning() {
    let max: u64 = std::fs::read_to_string("/proc/sys/vm/max_map_count")
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    let server = Server::start(&[
        "--pool-size",
        "1000000",
        "--max-instance-memory",
        "2MiB",
        &s(&guest("http-hello.wasm")),
    ]);
    let err = server.stderr_text();
    if max < 10_000_000 {
        assert!(err.contains("warning: serving with a pool of"), "{err}");
        assert!(err.contains("instead of 1000000"), "{err}");
        assert!(err.contains(&format!("vm.max_map_count is {max}")), "{err}");
        assert!(err.contains("sysctl -w vm.max_map_count="), "{err}");
    }
    assert_eq!(get(&server.url("/")).0, 200);
}

#[test]
fn prometheus_scrapes_the_metrics() {
    let prometheus = Path::new("/usr/bin/prometheus");
    assert!(
        prometheus.exists(),
        "Debian's prometheus is missing: run scripts/setup.sh"
    );
    let server = Server::start(&[&s(&guest("http-hello.wasm"))]);
    for _ in 0..3 {
        assert_eq!(get(&server.url("/x")).0, 200);
    }
    assert_eq!(post(&server.url("/x"), b"abc").0, 200);

    // The classic text format, served to clients that do not ask for
    // OpenMetrics, passes Prometheus's own checker.
    let (_, headers, exposition) = get(&format!("http://127.0.0.1:{}/metrics", server.admin));
    assert!(headers.contains("text/plain; version=0.0.4"), "{headers}");
    let mut check = std::process::Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("promtool");
    check
        .stdin
        .take()
        .unwrap()
        .write_all(exposition.as_bytes())
        .unwrap();
    let checked = output(check.wait_with_output().unwrap());
    assert_eq!(checked.code, 0, "{checked:?}\n{exposition}");

    // A real Prometheus scrapes the admin endpoint every second.
    let dir = tempdir();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let config = dir.path().join("prometheus.yml");
    std::fs::write(
        &config,
        format!(
            "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\nscrape_configs:\n  - job_name: wasmlayer\n    static_configs:\n      - targets: ['127.0.0.1:{}']\n",
            server.admin
        ),
    )
    .unwrap();
    struct Killed(Child);
    impl Drop for Killed {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    let _prom = Killed(
        std::process::Command::new(prometheus)
            .arg(format!("--config.file={}", config.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.path().join("data").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start prometheus"),
    );
    let query = |q: &str| -> Option<serde_json::Value> {
        let q: String = q
            .bytes()
            .map(|b| match b {
                b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'_' => (b as char).to_string(),
                _ => format!("%{b:02X}"),
            })
            .collect();
        let url = format!("http://127.0.0.1:{port}/api/v1/query?query={q}");
        let mut r = agent().get(&url).call().ok()?;
        let v: serde_json::Value =
            serde_json::from_str(&r.body_mut().read_to_string().ok()?).ok()?;
        v["data"]["result"]
            .as_array()
            .cloned()
            .map(serde_json::Value::from)
    };
    let value = |q: &str| -> Option<f64> {
        query(q)?.as_array()?.first()?["value"][1]
            .as_str()?
            .parse()
            .ok()
    };
    let until = Instant::now() + Duration::from_secs(60);
    let mut seen = None;
    while Instant::now() < until {
        seen = value(r#"wasmlayer_requests_total{route="/",status="200"}"#);
        if seen == Some(4.0) {
            break;
        }
        std::thread::sleep(Duration::from_millis(250));
    }
    let targets = agent()
        .get(&format!("http://127.0.0.1:{port}/api/v1/targets"))
        .call()
        .ok()
        .and_then(|mut r| r.body_mut().read_to_string().ok())
        .unwrap_or_default();
    assert_eq!(seen, Some(4.0), "targets: {targets}");
    assert!(targets.contains(r#""health":"up""#), "{targets}");
    assert_eq!(
        value(r#"wasmlayer_request_duration_seconds_count{route="/"}"#),
        Some(4.0)
    );
    assert_eq!(
        value(r#"sum(wasmlayer_request_duration_seconds_bucket{route="/",le="+Inf"})"#),
        Some(4.0)
    );
    assert_eq!(
        value(r#"wasmlayer_request_body_bytes_total{route="/"}"#),
        Some(3.0)
    );
    assert!(value(r#"wasmlayer_request_fuel_sum{route="/"}"#).unwrap_or(0.0) > 0.0);
}

/// Records of `path` in the access log (requests, not instance lines).
fn records_of(server: &Server, path: &str) -> Vec<serde_json::Value> {
    server
        .access_log()
        .into_iter()
        .filter(|r| r["path"] == path)
        .collect()
}

#[test]
fn wasi_p3_handlers_are_served_with_the_grants_and_every_limit() {
    let p3 = s(&guest("http-hello-p3.wasm"));
    let mut server = Server::start(&[
        "--env",
        "GREETING=Hi",
        "--timeout",
        "1s",
        "--max-memory",
        "8MiB",
        &p3,
    ]);
    let (status, _, body) = get(&server.url("/a/b"));
    assert_eq!(
        (status, body.as_str()),
        (200, "Hi from wasmlayer! path=/a/b\n")
    );
    assert_eq!(get(&server.url("/ok")).2, "ok\n");
    // Only what was granted: GREETING, not the host's environment.
    assert_eq!(get(&server.url("/env?GREETING")).2, "Hi\n");
    assert_eq!(get(&server.url("/env?PATH")).0, 404);
    // Memory: the instance may not grow past 8 MiB (the guest answers 500).
    assert_eq!(get(&server.url("/alloc?1")).0, 200);
    let (status, _, body) = get(&server.url("/alloc?64"));
    assert_eq!(status, 500, "{body}");
    // Wall time: a spinning guest gets 504 on time, and the server goes on.
    let started = Instant::now();
    let (status, _, body) = get(&server.url("/loop"));
    assert_eq!(status, 504, "{body}");
    assert!(
        started.elapsed() < Duration::from_millis(1900),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(get(&server.url("/ok")).0, 200);
    let spun = logged(&mut server, "/loop", 504);
    assert!(spun["fuel"].as_u64().unwrap() > 10_000_000, "{spun}");
    // Each request had an instance of its own, metered on its own.
    let log = server.access_log();
    let ids: Vec<u64> = log.iter().filter_map(|r| r["instance"].as_u64()).collect();
    let mut unique = ids.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(ids.len(), unique.len(), "{log:?}");
    let ok = &records_of(&server, "/ok")[0];
    assert!(ok["fuel"].as_u64().unwrap() > 0, "{ok}");
    assert!(ok["memory_peak"].as_u64().unwrap() > 0, "{ok}");
    drop(server);

    // Fuel: a spinning guest runs out of it (500 naming the limit).
    let server = Server::start(&["--fuel", "5000000", &p3]);
    let (status, _, body) = get(&server.url("/loop"));
    assert_eq!(status, 500, "{body}");
    assert!(body.contains("fuel"), "{body}");
    assert_eq!(get(&server.url("/ok")).0, 200);
}

#[test]
fn wasi_p3_outbound_http_only_to_the_allowlist() {
    let port = upstream();
    let p3 = s(&guest("http-hello-p3.wasm"));
    let server = Server::start(&["--allow-http", &format!("127.0.0.1:{port}"), &p3]);
    let (status, _, body) = get(&server.url(&format!("/fetch?http://127.0.0.1:{port}/data")));
    assert_eq!(
        (status, body.as_str()),
        (200, "upstream 200: upstream body"),
        "{}",
        server.stderr_text()
    );
    // Another port of the same host is not on the allowlist.
    let (status, _, body) = get(&server.url("/fetch?http://127.0.0.1:1/data"));
    assert_eq!(status, 502, "{body}");
    assert!(body.contains("HttpRequestDenied"), "{body}");
    drop(server);
    // Nothing granted: nothing goes out.
    let mut server = Server::start(&[&p3]);
    assert_outbound_denied(&mut server, &format!("/fetch?http://127.0.0.1:{port}/data"));
}

#[test]
fn wasi_p3_instances_are_reused_when_the_route_says_so() {
    let p3 = s(&guest("http-hello-p3.wasm"));
    // One request at a time, three per instance: instances 0,0,0,1,1,1.
    let mut server = Server::start(&["--reuse", "3", &p3]);
    for _ in 0..6 {
        assert_eq!(get(&server.url("/ok")).0, 200);
    }
    let log = server
        .wait_for(Duration::from_secs(10), |s| {
            let r = records_of(s, "/ok");
            (r.len() == 6).then_some(r)
        })
        .expect("six records");
    let ids: Vec<u64> = log
        .iter()
        .map(|r| r["instance"].as_u64().unwrap())
        .collect();
    assert_eq!(ids[0..3], [ids[0]; 3], "{log:?}");
    assert_eq!(ids[3..6], [ids[3]; 3], "{log:?}");
    assert_ne!(ids[0], ids[3], "{log:?}");
    // Served one after another, each request has its own fuel.
    assert!(
        log.iter().all(|r| r["fuel"].as_u64().unwrap() > 0),
        "{log:?}"
    );
    // The first pays for the instantiation.
    assert!(log[0]["fuel"].as_u64() > log[1]["fuel"].as_u64(), "{log:?}");
    drop(server);

    // Four at once on one instance: fuel goes to the instance's own line.
    let mut server = Server::start(&["--reuse", "8", "--concurrent-reuse", "4", &p3]);
    let started = Instant::now();
    let sleepers: Vec<_> = (0..4)
        .map(|_| {
            let url = server.url("/sleep?600");
            std::thread::spawn(move || get(&url).0)
        })
        .collect();
    for t in sleepers {
        assert_eq!(t.join().unwrap(), 200);
    }
    assert!(
        started.elapsed() < Duration::from_millis(2000),
        "{:?}",
        started.elapsed()
    );
    // Each instance writes its line once it is idle past 1s. Requests that
    // arrive together may start a second instance that ends up serving
    // none: the lines add up to the four requests.
    let instances = server
        .wait_for(Duration::from_secs(10), |s| {
            let lines: Vec<serde_json::Value> = s
                .access_log()
                .into_iter()
                .filter(|r| r["requests"].as_u64().is_some())
                .collect();
            let served: u64 = lines.iter().map(|r| r["requests"].as_u64().unwrap()).sum();
            (served == 4).then_some(lines)
        })
        .expect("instance lines for the four requests");
    for instance in &instances {
        assert!(instance["fuel"].as_u64().unwrap() > 0, "{instance}");
    }
    let sleeps = records_of(&server, "/sleep?600");
    assert_eq!(sleeps.len(), 4, "{sleeps:?}");
    assert!(sleeps.iter().all(|r| r["fuel"].is_null()), "{sleeps:?}");
    drop(server);

    // Reuse is for WASI 0.3: a 0.2 component serves one request per instance.
    let r = run(["serve", "--reuse", "2", &s(&guest("http-hello.wasm"))]);
    assert_eq!(r.code, 2, "{r:?}");
    assert!(r.stderr.contains("reuse needs a WASI 0.3"), "{r:?}");
    let r = run(["serve", "--reuse", "0", &p3]);
    assert_eq!(r.code, 2, "{r:?}");
}
