//! `echo`: streams the request body back as it arrives, chunk by chunk,
//! and reports the byte count in a trailing line when `?count` is asked.

use http_common::wasip2::exports::http::incoming_handler::Guest;
use http_common::wasip2::http::types::{IncomingRequest, OutgoingBody, ResponseOutparam};

struct Echo;

impl Guest for Echo {
    fn handle(request: IncomingRequest, out: ResponseOutparam) {
        let count = http_common::path(&request).ends_with("?count");
        let (body, stream) = http_common::start_response(out, 200, &[("content-type", "application/octet-stream")]);
        let mut total = 0usize;
        http_common::for_each_chunk(request, |chunk| {
            total += chunk.len();
            http_common::write_all(&stream, chunk);
        });
        if count {
            http_common::write_all(&stream, format!("\n{total} bytes\n").as_bytes());
        }
        drop(stream);
        OutgoingBody::finish(body, None).expect("finish body");
    }
}

http_common::wasip2::http::proxy::export!(Echo with_types_in http_common::wasip2);
