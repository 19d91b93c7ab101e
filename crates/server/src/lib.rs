//! The accept loop of Wasmlayer's servers (`wasmlayer serve` and
//! `wasmlayer policy webhook`): connections are accepted until SIGTERM or
//! SIGINT, with a back-off when accepting fails, then drained: the listener
//! closes and every open connection is asked to finish its in-flight
//! request, up to a deadline. Also hyper's timer on Tokio.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinSet;

/// The pause after a failed accept before the next one.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(20);

/// Tells a connection that the server is draining.
#[derive(Clone)]
pub struct Stop(watch::Receiver<bool>);

impl Stop {
    /// Resolves once the server drains: the connection should finish its
    /// in-flight request and close (hyper's `graceful_shutdown`).
    pub async fn requested(&mut self) {
        let _ = self.0.changed().await;
    }
}

/// What a server does as it stops, for readiness and log lines. Each is
/// called once, in this order, by [`serve`] after the shutdown signal.
pub trait Events {
    /// No more connections are accepted; the listener closes right after.
    fn stopping(&self) {}

    /// `open` connections are about to be asked to finish, within `timeout`.
    fn draining(&self, open: usize, timeout: Duration) {
        let _ = (open, timeout);
    }

    /// Every connection finished before the deadline.
    fn drained(&self) {}

    /// The deadline passed with `open` connections left; they are aborted.
    fn deadline_passed(&self, open: usize) {
        let _ = open;
    }
}

/// Accepts connections on `listener` until `shutdown` resolves, running
/// `connection` on a task of its own for each (with `TCP_NODELAY` set).
/// A failed accept (out of file descriptors, most likely) is logged and
/// retried after a short pause, while open connections go on being served.
///
/// On shutdown the listener closes, every open connection is told through
/// its [`Stop`] to finish, and those still open after `drain_timeout` are
/// aborted; `events` hears of each step.
pub async fn serve<C, F>(
    listener: TcpListener,
    shutdown: impl Future<Output = ()>,
    drain_timeout: Duration,
    events: &impl Events,
    mut connection: C,
) where
    C: FnMut(TcpStream, Stop) -> F,
    F: Future<Output = ()> + Send + 'static,
{
    let (stop_tx, stop_rx) = watch::channel(false);
    let mut connections = JoinSet::new();
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let stream = match accepted {
                    Ok((stream, _)) => stream,
                    Err(e) => {
                        // Out of file descriptors, most likely: back off
                        // instead of spinning, and keep serving open ones.
                        tracing::warn!("cannot accept a connection: {e}");
                        tokio::time::sleep(ACCEPT_BACKOFF).await;
                        continue;
                    }
                };
                let _ = stream.set_nodelay(true);
                connections.spawn(connection(stream, Stop(stop_rx.clone())));
            }
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
            () = &mut shutdown => break,
        }
    }

    // Drain: no new connections, open ones finish their in-flight requests.
    events.stopping();
    drop(listener);
    events.draining(connections.len(), drain_timeout);
    let _ = stop_tx.send(true);
    let drained = tokio::time::timeout(drain_timeout, async {
        while connections.join_next().await.is_some() {}
    })
    .await;
    match drained {
        Ok(()) => events.drained(),
        Err(_) => {
            events.deadline_passed(connections.len());
            connections.abort_all();
        }
    }
}

/// Handles SIGTERM from now on (the error is that of installing the
/// handler) and returns what resolves on the first SIGTERM or SIGINT.
pub fn shutdown_signal() -> std::io::Result<impl Future<Output = ()>> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate())?;
    Ok(async move {
        tokio::select! {
            _ = term.recv() => {}
            _ = tokio::signal::ctrl_c() => {}
        }
    })
}

/// hyper's timer (for its header deadline), on Tokio.
#[derive(Clone, Copy, Debug, Default)]
pub struct TokioTimer;

struct TokioSleep(tokio::time::Sleep);

impl Future for TokioSleep {
    type Output = ();
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        // SAFETY: a projection to the only field, never moved out.
        unsafe { self.map_unchecked_mut(|s| &mut s.0) }.poll(cx)
    }
}

impl hyper::rt::Sleep for TokioSleep {}

impl hyper::rt::Timer for TokioTimer {
    fn sleep(&self, duration: Duration) -> Pin<Box<dyn hyper::rt::Sleep>> {
        Box::pin(TokioSleep(tokio::time::sleep(duration)))
    }

    fn sleep_until(&self, deadline: Instant) -> Pin<Box<dyn hyper::rt::Sleep>> {
        Box::pin(TokioSleep(tokio::time::sleep_until(deadline.into())))
    }
}
