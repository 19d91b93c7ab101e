//! `hello-p3`: the WASI 0.3 (p3) twin of `hello`. It exports
//! `wasi:http/handler@0.3.0` (the `wasi:http/service` world): `handle` is an
//! async function that returns the response, whose body is a `stream<u8>`
//! written after it is returned.
//!
//! The last segment of the path picks the answer, so the component acts the
//! same on whatever route prefix it is served:
//!
//! - `/ok`: answers `ok`;
//! - `/sleep?MS`: answers after MS milliseconds (default 100), waiting on
//!   `wasi:clocks/monotonic-clock.wait-for`;
//! - `/loop`: spins forever (ended by the route's timeout or fuel);
//! - `/alloc?MIB`: grows linear memory by MIB MiB (default 1) and says how
//!   big it now is; 500 when the memory may not grow that far;
//! - `/env?NAME`: answers the environment variable `NAME`; 404 when unset;
//! - `/fetch?http://HOST:PORT/PATH`: sends a GET there with
//!   `wasi:http/client.send` and answers with the upstream's status and
//!   body; 502 with the error code when the host refuses or it fails;
//! - anything else: `<GREETING> from wasmlayer! path=<path>`, like `hello`,
//!   with `GREETING` from the route's env (default `Hello`).

use wasip3::cli::environment;
use wasip3::clocks::monotonic_clock;
use wasip3::http::types::{ErrorCode, Fields, Request, Response, Scheme};
use wasip3::{wit_future, wit_stream};

struct HelloP3;

wasip3::http::service::export!(HelloP3);

impl wasip3::exports::http::handler::Guest for HelloP3 {
    async fn handle(request: Request) -> Result<Response, ErrorCode> {
        let path = request.get_path_with_query().unwrap_or_else(|| "/".into());
        let (route, query) = path.split_once('?').unwrap_or((&path, ""));
        let (status, body) = match route.rsplit('/').next().unwrap_or("") {
            "ok" => (200, "ok\n".to_string()),
            "sleep" => {
                let ms: u64 = query.parse().unwrap_or(100);
                monotonic_clock::wait_for(ms.saturating_mul(1_000_000)).await;
                (200, format!("slept {ms} ms\n"))
            }
            "loop" => spin(),
            "alloc" => alloc(query.parse().unwrap_or(1)),
            "fetch" => fetch(query).await,
            "env" => match env(query) {
                Some(value) => (200, format!("{value}\n")),
                None => (404, format!("{query} is not set\n")),
            },
            _ => {
                let greeting = env("GREETING").unwrap_or_else(|| "Hello".into());
                (200, format!("{greeting} from wasmlayer! path={path}\n"))
            }
        };
        respond(status, body)
    }
}

/// Sends `body` as text/plain with `status`.
fn respond(status: u16, body: String) -> Result<Response, ErrorCode> {
    let headers = Fields::from_list(&[("content-type".into(), b"text/plain".to_vec())])
        .map_err(|e| ErrorCode::InternalError(Some(format!("{e:?}"))))?;
    let (mut contents, contents_rx) = wit_stream::new();
    let (trailers, trailers_rx) = wit_future::new(|| Ok(None));
    let (response, _sent) = Response::new(headers, Some(contents_rx), trailers_rx);
    // No trailers: dropping the writer sends the default, `Ok(None)`.
    drop(trailers);
    response
        .set_status_code(status)
        .map_err(|()| ErrorCode::InternalError(Some(format!("bad status {status}"))))?;
    // The host reads the body only once it has the response, so write it
    // from a task that runs on after `handle` returns.
    wasip3::spawn_local(async move {
        contents.write_all(body.into_bytes()).await;
    });
    Ok(response)
}

/// GETs `url` (`http://authority/path`) through the host's HTTP client.
async fn fetch(url: &str) -> (u16, String) {
    let Some(rest) = url.strip_prefix("http://") else {
        return (400, "fetch needs an http:// URL\n".into());
    };
    let (authority, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
    let path = if path.is_empty() { "/" } else { path };
    let (trailers, trailers_rx) = wit_future::new(|| Ok(None));
    drop(trailers);
    let (request, _sent) = Request::new(Fields::new(), None, trailers_rx, None);
    if request.set_scheme(Some(&Scheme::Http)).is_err()
        || request.set_authority(Some(authority)).is_err()
        || request.set_path_with_query(Some(path)).is_err()
    {
        return (400, format!("cannot make a request for {url}\n"));
    }
    match wasip3::http::client::send(request).await {
        Ok(response) => {
            let status = response.get_status_code();
            let (done, done_rx) = wit_future::new(|| Ok(()));
            let (body, _trailers) = Response::consume_body(response, done_rx);
            let bytes = body.collect().await;
            drop(done);
            (200, format!("upstream {status}: {}", String::from_utf8_lossy(&bytes)))
        }
        Err(code) => (502, format!("upstream failed: {code:?}\n")),
    }
}

fn env(name: &str) -> Option<String> {
    environment::get_environment()
        .into_iter()
        .find_map(|(k, v)| (k == name).then_some(v))
}

fn spin() -> ! {
    let mut x: u64 = 1;
    loop {
        x = std::hint::black_box(x.wrapping_mul(6364136223846793005).wrapping_add(1));
    }
}

/// Grows linear memory by `mib` MiB (16 pages of 64 KiB each).
fn alloc(mib: usize) -> (u16, String) {
    const PAGES_PER_MIB: usize = 16;
    let grown = match mib.checked_mul(PAGES_PER_MIB) {
        Some(pages) => core::arch::wasm32::memory_grow(0, pages),
        None => usize::MAX,
    };
    if grown == usize::MAX {
        return (500, format!("cannot grow memory by {mib} MiB\n"));
    }
    let total = core::arch::wasm32::memory_size(0) / PAGES_PER_MIB;
    (200, format!("grew memory by {mib} MiB to {total} MiB\n"))
}
