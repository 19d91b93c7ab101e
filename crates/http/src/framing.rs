//! Finds requests framed two ways at once (`Transfer-Encoding` together
//! with `Content-Length`), which hyper hides from the service.
//!
//! hyper frames such a request by `Transfer-Encoding` alone, drops
//! `Content-Length` before the service sees it and closes the connection
//! after the answer (RFC 9112, 6.3), so nothing is smuggled past it; but a
//! request like that is what smuggling through a front proxy looks like,
//! and the RFC lets a server reject it, which request-smuggling defences
//! expect (400). [`Watched`] wraps a connection's stream and follows the
//! bytes hyper reads with a small state machine: request heads, the header
//! lines that frame a body, and the body by its framing, so that heads are
//! told from body bytes on a keep-alive connection. It keeps a few hundred
//! bytes per connection, never a copy of the request.
//!
//! The service asks [`Conflicts::take_next`] once per request, in order:
//! requests are parsed, and given to the service, one at a time in the
//! order of their heads. On input the scanner does not follow (a framing
//! hyper refuses anyway, an upgrade) it stops watching and reports
//! nothing more for the connection; hyper's own checks still hold.

use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// What is kept of one header line: enough for the name and value of the
/// two framing headers (a longer one of those stops the watch).
const LINE: usize = 96;

/// Shared between a connection's stream and its service.
#[derive(Debug, Default)]
pub struct Conflicts {
    /// Index of the first head framed two ways (`u64::MAX`: none).
    first: AtomicU64,
    /// Requests the service has seen.
    served: AtomicU64,
}

impl Conflicts {
    pub fn new() -> Arc<Conflicts> {
        Arc::new(Conflicts {
            first: AtomicU64::new(u64::MAX),
            served: AtomicU64::new(0),
        })
    }

    /// Whether the next request given to the service (call once per
    /// request, in order) was framed two ways.
    pub fn take_next(&self) -> bool {
        let index = self.served.fetch_add(1, Ordering::AcqRel);
        self.first.load(Ordering::Acquire) == index
    }
}

/// A stream whose incoming bytes are followed by a [`Scanner`].
pub struct Watched<T> {
    inner: T,
    scanner: Scanner,
}

impl<T> Watched<T> {
    pub fn new(inner: T, conflicts: Arc<Conflicts>) -> Watched<T> {
        Watched {
            inner,
            scanner: Scanner::new(conflicts),
        }
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for Watched<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let this = &mut *self;
        let out = Pin::new(&mut this.inner).poll_read(cx, buf);
        if let Poll::Ready(Ok(())) = out {
            this.scanner.feed(&buf.filled()[before..]);
        }
        out
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for Watched<T> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}

/// Where the scanner is in the request stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// In a head (`started`: past its request line's first byte).
    Head { started: bool },
    /// In a body of this many more bytes.
    Body(u64),
    /// In a chunked body.
    Chunk(Chunk),
    /// Not watching any more.
    Off,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Chunk {
    /// Reading the size (hex digits so far, and whether one was seen).
    Size(u64, bool),
    /// Past the size, up to the end of the line (extensions).
    Line(u64),
    /// In the data, with this many bytes to go.
    Data(u64),
    /// The CRLF after the data (`cr`: the CR was seen).
    DataEnd { cr: bool },
    /// Trailer lines after the last chunk (`empty`: the line so far is
    /// empty).
    Trailer { empty: bool },
}

/// What the head under way says about framing.
#[derive(Debug, Default, Clone, Copy)]
struct Framing {
    length: Option<u64>,
    length_seen: bool,
    length_bad: bool,
    transfer: bool,
    chunked: bool,
    upgrade: bool,
}

struct Scanner {
    state: State,
    /// Heads completed on this connection.
    heads: u64,
    framing: Framing,
    /// The header line under way (the first [`LINE`] bytes), and its full
    /// length.
    line: [u8; LINE],
    line_len: usize,
    conflicts: Arc<Conflicts>,
}

impl Scanner {
    fn new(conflicts: Arc<Conflicts>) -> Scanner {
        Scanner {
            state: State::Head { started: false },
            heads: 0,
            framing: Framing::default(),
            line: [0; LINE],
            line_len: 0,
            conflicts,
        }
    }

    fn feed(&mut self, mut bytes: &[u8]) {
        while !bytes.is_empty() {
            match self.state {
                State::Off => return,
                State::Body(left) => {
                    let n = left.min(bytes.len() as u64);
                    bytes = &bytes[n as usize..];
                    self.state = if left == n {
                        State::Head { started: false }
                    } else {
                        State::Body(left - n)
                    };
                }
                State::Chunk(Chunk::Data(left)) => {
                    let n = left.min(bytes.len() as u64);
                    bytes = &bytes[n as usize..];
                    self.state = State::Chunk(if left == n {
                        Chunk::DataEnd { cr: false }
                    } else {
                        Chunk::Data(left - n)
                    });
                }
                State::Head { started } => {
                    self.head_byte(bytes[0], started);
                    bytes = &bytes[1..];
                }
                State::Chunk(chunk) => {
                    self.state = chunk_byte(chunk, bytes[0]);
                    bytes = &bytes[1..];
                }
            }
        }
    }

    fn head_byte(&mut self, b: u8, started: bool) {
        if b != b'\n' {
            if self.line_len < LINE {
                self.line[self.line_len] = b;
            }
            self.line_len += 1;
            return;
        }
        // A line ends (CRLF, or a bare LF as hyper's parser allows).
        let len = self.line_len.min(LINE);
        let full = self.line_len;
        self.line_len = 0;
        let line = trim_cr(&self.line[..len]);
        let empty = full <= 1 && line.is_empty();
        if !started {
            // Empty lines before a request line are skipped.
            if !empty {
                self.framing = Framing {
                    upgrade: line.starts_with(b"CONNECT "),
                    ..Framing::default()
                };
                self.state = State::Head { started: true };
            }
            return;
        }
        if empty {
            self.end_of_head();
            return;
        }
        let Some(colon) = line.iter().position(|&c| c == b':') else {
            return;
        };
        let name = &line[..colon];
        let value = trim(&line[colon + 1..]);
        let framing = &mut self.framing;
        if name.eq_ignore_ascii_case(b"content-length") {
            framing.length_seen = true;
            match parse_decimal(value) {
                Some(n) if full <= LINE && framing.length.is_none_or(|m| m == n) => {
                    framing.length = Some(n)
                }
                _ => framing.length_bad = true,
            }
        } else if name.eq_ignore_ascii_case(b"transfer-encoding") {
            framing.transfer = true;
            if full > LINE {
                // Too long to tell what it ends with.
                framing.length_bad = true;
            }
            let last = value.rsplit(|&c| c == b',').next().map(trim);
            framing.chunked = last.is_some_and(|c| c.eq_ignore_ascii_case(b"chunked"));
        } else if name.eq_ignore_ascii_case(b"upgrade") {
            framing.upgrade = true;
        }
    }

    fn end_of_head(&mut self) {
        let f = self.framing;
        let index = self.heads;
        self.heads += 1;
        self.state = if f.transfer && f.length_seen {
            // hyper closes the connection after this one: nothing after
            // it needs watching.
            let _ = self.conflicts.first.compare_exchange(
                u64::MAX,
                index,
                Ordering::AcqRel,
                Ordering::Acquire,
            );
            State::Off
        } else if f.upgrade || f.length_bad || (f.transfer && !f.chunked) {
            State::Off
        } else if f.transfer {
            State::Chunk(Chunk::Size(0, false))
        } else {
            match f.length {
                Some(n) if n > 0 => State::Body(n),
                _ => State::Head { started: false },
            }
        };
    }
}

fn chunk_byte(chunk: Chunk, b: u8) -> State {
    let next = match chunk {
        Chunk::Size(n, digits) => match (b as char).to_digit(16) {
            Some(d) if n >> 60 == 0 => Chunk::Size(n << 4 | u64::from(d), true),
            Some(_) => return State::Off,
            None if !digits => return State::Off,
            None if b == b'\n' => after_size(n),
            None => Chunk::Line(n),
        },
        Chunk::Line(n) => {
            if b == b'\n' {
                after_size(n)
            } else {
                Chunk::Line(n)
            }
        }
        Chunk::Data(_) => unreachable!("data is skipped in bulk"),
        Chunk::DataEnd { cr: false } if b == b'\r' => Chunk::DataEnd { cr: true },
        Chunk::DataEnd { .. } if b == b'\n' => Chunk::Size(0, false),
        Chunk::DataEnd { .. } => return State::Off,
        Chunk::Trailer { empty } => match b {
            b'\n' if empty => return State::Head { started: false },
            b'\n' => Chunk::Trailer { empty: true },
            b'\r' => Chunk::Trailer { empty },
            _ => Chunk::Trailer { empty: false },
        },
    };
    State::Chunk(next)
}

/// After a chunk's size line: its data, or the trailers after the last.
fn after_size(n: u64) -> Chunk {
    if n == 0 {
        Chunk::Trailer { empty: true }
    } else {
        Chunk::Data(n)
    }
}

fn trim_cr(line: &[u8]) -> &[u8] {
    line.strip_suffix(b"\r").unwrap_or(line)
}

fn trim(bytes: &[u8]) -> &[u8] {
    let start = bytes
        .iter()
        .position(|b| !matches!(b, b' ' | b'\t'))
        .unwrap_or(bytes.len());
    let end = bytes
        .iter()
        .rposition(|b| !matches!(b, b' ' | b'\t'))
        .map_or(start, |i| i + 1);
    &bytes[start..end]
}

fn parse_decimal(bytes: &[u8]) -> Option<u64> {
    if bytes.is_empty() || !bytes.iter().all(u8::is_ascii_digit) {
        return None;
    }
    std::str::from_utf8(bytes).ok()?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Feeds `stream` in pieces of `step` bytes; returns the index of the
    /// first head framed two ways, and the state at the end.
    fn scan(stream: &[u8], step: usize) -> (Option<u64>, State, u64) {
        let conflicts = Conflicts::new();
        let mut s = Scanner::new(conflicts.clone());
        for piece in stream.chunks(step) {
            s.feed(piece);
        }
        let first = conflicts.first.load(Ordering::Acquire);
        ((first != u64::MAX).then_some(first), s.state, s.heads)
    }

    fn every_step(stream: &[u8]) -> (Option<u64>, State, u64) {
        let whole = scan(stream, stream.len().max(1));
        for step in 1..stream.len().min(40) {
            assert_eq!(scan(stream, step), whole, "step {step}");
        }
        whole
    }

    const IDLE: State = State::Head { started: false };

    #[test]
    fn follows_keep_alive_requests_by_their_framing() {
        let stream = b"GET / HTTP/1.1\r\nHost: x\r\n\r\n\
            POST /a HTTP/1.1\r\nHost: x\r\nContent-Length: 26\r\n\r\n\
            Transfer-Encoding: chunked\
            POST /b HTTP/1.1\r\nHost: x\r\ntransfer-encoding: gzip, Chunked\r\n\r\n\
            1a\r\nContent-Length: 5\r\n\r\nabcde\r\n3;ext=1\r\nxyz\r\n0\r\nTrailer: t\r\n\r\n\
            \r\nGET /c HTTP/1.1\nHost: x\n\n";
        assert_eq!(every_step(stream), (None, IDLE, 4));
    }

    #[test]
    fn finds_the_head_framed_two_ways() {
        for head in [
            &b"POST / HTTP/1.1\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n"[..],
            b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\ncontent-length: 4\r\n\r\n",
            b"POST / HTTP/1.1\r\nTRANSFER-ENCODING: chunked\r\nContent-Length:  x\r\n\r\n",
        ] {
            let mut stream = b"GET / HTTP/1.1\r\nHost: x\r\n\r\n".to_vec();
            stream.extend_from_slice(b"PUT / HTTP/1.1\r\nContent-Length: 3\r\n\r\nabc");
            stream.extend_from_slice(head);
            stream.extend_from_slice(b"0\r\n\r\nGET /smuggled HTTP/1.1\r\n\r\n");
            assert_eq!(every_step(&stream), (Some(2), State::Off, 3));
        }
    }

    #[test]
    fn stops_watching_what_it_cannot_follow() {
        for stream in [
            &b"POST / HTTP/1.1\r\nTransfer-Encoding: gzip\r\n\r\n"[..],
            b"GET / HTTP/1.1\r\nUpgrade: websocket\r\n\r\n",
            b"CONNECT x:1 HTTP/1.1\r\n\r\n",
            b"POST / HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n",
            b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
            b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n1\r\nab\r\n",
            b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nfffffffffffffffff\r\n",
        ] {
            assert_eq!(
                every_step(stream).1,
                State::Off,
                "{:?}",
                String::from_utf8_lossy(stream)
            );
        }
    }

    #[test]
    fn long_header_lines_are_not_kept() {
        let mut stream = b"GET / HTTP/1.1\r\nCookie: ".to_vec();
        stream.extend(std::iter::repeat_n(b'c', 20_000));
        stream.extend_from_slice(b"\r\nContent-Length: 2\r\n\r\nokGET / HTTP/1.1\r\n\r\n");
        assert_eq!(every_step(&stream), (None, IDLE, 2));
    }

    #[test]
    fn the_service_learns_which_request_it_was() {
        let conflicts = Conflicts::new();
        let mut s = Scanner::new(conflicts.clone());
        s.feed(b"GET / HTTP/1.1\r\n\r\nPOST / HTTP/1.1\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n");
        assert!(!conflicts.take_next());
        assert!(conflicts.take_next());
        assert!(!conflicts.take_next());
    }
}
