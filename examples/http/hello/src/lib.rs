//! `hello`: answers every request with a greeting. The greeting comes from
//! the `GREETING` environment variable the route grants, if any.

use http_common::wasip2::exports::http::incoming_handler::Guest;
use http_common::wasip2::http::types::{IncomingRequest, ResponseOutparam};

struct Hello;

impl Guest for Hello {
    fn handle(request: IncomingRequest, out: ResponseOutparam) {
        let greeting = std::env::var("GREETING").unwrap_or_else(|_| "Hello".into());
        let body = format!("{greeting} from wasmlayer! path={}\n", http_common::path(&request));
        http_common::respond(out, 200, &[("content-type", "text/plain")], body.as_bytes());
    }
}

http_common::wasip2::http::proxy::export!(Hello with_types_in http_common::wasip2);
