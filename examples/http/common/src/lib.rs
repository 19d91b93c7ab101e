//! Small helpers over the raw `wasi:http` bindings, shared by the example
//! components.

use wasip2::http::types::{
    Fields, IncomingBody, IncomingRequest, OutgoingBody, OutgoingResponse, ResponseOutparam,
};
use wasip2::io::streams::{OutputStream, StreamError};

pub use wasip2;

/// Sends a response with `status`, `headers` and the whole `body`.
pub fn respond(out: ResponseOutparam, status: u16, headers: &[(&str, &str)], body: &[u8]) {
    let (body_handle, stream) = start_response(out, status, headers);
    write_all(&stream, body);
    drop(stream);
    OutgoingBody::finish(body_handle, None).expect("finish body");
}

/// Sends the status line and headers; the caller writes the body to the
/// stream, drops it and calls `OutgoingBody::finish`.
pub fn start_response(out: ResponseOutparam, status: u16, headers: &[(&str, &str)]) -> (OutgoingBody, OutputStream) {
    let fields = Fields::new();
    for (name, value) in headers {
        fields.append(name, value.as_bytes()).expect("valid header");
    }
    let response = OutgoingResponse::new(fields);
    response.set_status_code(status).expect("valid status");
    let body = response.body().expect("response body");
    ResponseOutparam::set(out, Ok(response));
    let stream = body.write().expect("body stream");
    (body, stream)
}

/// Writes all of `data` (in chunks the host accepts).
pub fn write_all(stream: &OutputStream, data: &[u8]) {
    for chunk in data.chunks(4096) {
        stream.blocking_write_and_flush(chunk).expect("write body");
    }
}

/// Calls `each` with every chunk of the request body as it arrives.
pub fn for_each_chunk(request: IncomingRequest, mut each: impl FnMut(&[u8])) {
    let body = request.consume().expect("request body");
    {
        let stream = body.stream().expect("body stream");
        loop {
            match stream.blocking_read(16 * 1024) {
                Ok(chunk) => each(&chunk),
                Err(StreamError::Closed) => break,
                Err(StreamError::LastOperationFailed(e)) => panic!("reading the body: {}", e.to_debug_string()),
            }
        }
    }
    IncomingBody::finish(body);
}

/// The request's path and query, or `/`.
pub fn path(request: &IncomingRequest) -> String {
    request.path_with_query().unwrap_or_else(|| "/".into())
}
