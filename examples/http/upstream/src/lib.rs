//! `upstream`: fetches `$UPSTREAM_URL` (an `http://host:port/path` URL the
//! route's allowlist must permit) with wasi:http's outgoing handler and
//! relays status and body. A refused or failed call answers 502 with the
//! wasi:http error code.

use http_common::wasip2::exports::http::incoming_handler::Guest;
use http_common::wasip2::http::outgoing_handler;
use http_common::wasip2::http::types::{Fields, IncomingRequest, Method, OutgoingRequest, ResponseOutparam, Scheme};
use http_common::wasip2::io::streams::StreamError;

struct Upstream;

fn fetch(url: &str) -> Result<(u16, Vec<u8>), String> {
    let rest = url.strip_prefix("http://").ok_or("UPSTREAM_URL must start with http://")?;
    let (authority, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    let request = OutgoingRequest::new(Fields::new());
    request.set_method(&Method::Get).map_err(|_| "method")?;
    request.set_scheme(Some(&Scheme::Http)).map_err(|_| "scheme")?;
    request.set_authority(Some(authority)).map_err(|_| "authority")?;
    request.set_path_with_query(Some(path)).map_err(|_| "path")?;
    let pending = outgoing_handler::handle(request, None).map_err(|e| format!("{e:?}"))?;
    pending.subscribe().block();
    let response = match pending.get() {
        Some(Ok(Ok(r))) => r,
        Some(Ok(Err(e))) => return Err(format!("{e:?}")),
        Some(Err(())) | None => return Err("no response".into()),
    };
    let status = response.status();
    let body = response.consume().map_err(|_| "body")?;
    let mut data = Vec::new();
    {
        let stream = body.stream().map_err(|_| "stream")?;
        loop {
            match stream.blocking_read(16 * 1024) {
                Ok(chunk) => data.extend(chunk),
                Err(StreamError::Closed) => break,
                Err(StreamError::LastOperationFailed(e)) => return Err(e.to_debug_string()),
            }
        }
    }
    Ok((status, data))
}

impl Guest for Upstream {
    fn handle(_request: IncomingRequest, out: ResponseOutparam) {
        let url = std::env::var("UPSTREAM_URL").unwrap_or_default();
        match fetch(&url) {
            Ok((status, body)) => {
                let mut text = format!("upstream said {status}: ").into_bytes();
                text.extend(body);
                http_common::respond(out, 200, &[("content-type", "text/plain")], &text);
            }
            Err(e) => http_common::respond(out, 502, &[("content-type", "text/plain")], format!("upstream error: {e}\n").as_bytes()),
        }
    }
}

http_common::wasip2::http::proxy::export!(Upstream with_types_in http_common::wasip2);
