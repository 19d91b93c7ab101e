//! Serving `wasi:http/handler@0.3` (WASI 0.3) components.
//!
//! A WASI 0.3 instance may serve several requests, one after another and at
//! once, so calls go through Wasmtime's [`ProxyHandler`], which keeps
//! workers (an instance each) and hands them requests. A route chooses how
//! far an instance is reused: `reuse` requests in all (1 by default: a fresh
//! instance per request, as for WASI 0.2) and `concurrent_reuse` at once.
//!
//! Limits and metering, per request where the instance allows it:
//! - every instance takes a slot of the server's pool for its whole life,
//!   and is made only once a request's body is in;
//! - a request's deadline is its route's timeout: the request gets 504,
//!   and the instance that did not answer in time is dropped;
//! - fuel: with `concurrent_reuse = 1` each request is billed what its
//!   instance burnt from its start to the next request's start (or the
//!   instance's end), instantiation included for the first: exact, since
//!   nothing else ran in between. With requests at once, fuel cannot be
//!   told apart: the requests' records carry none, and the instance's line
//!   (`"instance"`) in the access log carries the total;
//! - memory belongs to the instance: `memory_peak` is its peak so far, and
//!   `max_memory` bounds the instance, however many requests it serves;
//! - a trap, fuel or memory exhausted ends the instance and fails the
//!   requests it had in hand, each with the cause.

use crate::app::{
    at_capacity, failure, http_view, new_store, receive, Body, Counted, Failure, Received, Record,
    Requests, Route,
};
use http_body_util::BodyExt;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};
use tokio::sync::{oneshot, OwnedSemaphorePermit, Semaphore};
use wasmlayer_core::{ComponentState, Error, Grant, Host, Limits};
use wasmtime::component::TaskGroupId;
use wasmtime::{Store, StoreContextMut};
use wasmtime_wasi_http::handler::{
    ExpirationError, HandlerState, Instance, InstantiationError, ProxyHandler, ProxyPre,
    ShouldAccept, WorkerExpiration, WorkerState, WorkerStatus,
};
use wasmtime_wasi_http::p3::bindings::ServicePre;

/// How long an idle instance is kept for the next request of its route
/// (it holds a slot of the pool meanwhile).
pub const IDLE_INSTANCE_TIMEOUT: Duration = Duration::from_secs(1);

/// How long a failed request waits for its instance's cause (trap, fuel,
/// memory) once the instance has ended.
const CAUSE_WAIT: Duration = Duration::from_millis(500);

/// A WASI 0.3 route's component, and the handler made for it on first use.
pub struct Service {
    pre: ServicePre<ComponentState>,
    handler: OnceLock<ProxyHandler<RouteState>>,
    /// Requests in hand at once: pool size × `concurrent_reuse`.
    admitted: OnceLock<Arc<Semaphore>>,
}

impl Service {
    pub fn new(pre: ServicePre<ComponentState>) -> Service {
        Service {
            pre,
            handler: OnceLock::new(),
            admitted: OnceLock::new(),
        }
    }

    pub fn engine(&self) -> &wasmtime::Engine {
        self.pre.engine()
    }
}

/// One request, as its instance sees it.
pub struct Call {
    record: Arc<Record>,
    cause: Arc<Cause>,
}

/// Where an instance that ends by failure sends the cause to a request it
/// had in hand (kept by the instance apart from the request's record, whose
/// access-log line is written once the request is over).
struct Cause(Mutex<Option<oneshot::Sender<Failure>>>);

impl Cause {
    fn send(&self, f: Failure) {
        if let Some(tx) = self.0.lock().unwrap_or_else(|p| p.into_inner()).take() {
            let _ = tx.send(f);
        }
    }

    /// Whether the request still waits for an answer.
    fn waiting(&self) -> bool {
        self.0
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .as_ref()
            .is_some_and(|tx| !tx.is_closed())
    }
}

impl Call {
    fn meter(&self, fuel: u64, memory: u64) {
        self.record.with(|i| {
            i.fuel = Some(fuel);
            i.memory = Some(memory);
        });
    }
}

/// What the handler needs to make a route's instances.
pub struct RouteState {
    pre: ProxyPre<ComponentState>,
    engine: wasmtime::Engine,
    name: Arc<str>,
    spec: crate::manifest::RouteSpec,
    host: Host,
    grant: Grant,
    pool: Arc<Semaphore>,
    metrics: Arc<crate::metrics::Metrics>,
    next_instance: AtomicU64,
}

impl HandlerState for RouteState {
    type StoreData = ComponentState;
    type WorkerExpiration = Expiry;
    type WorkerState = Worker;

    async fn instantiate(&self) -> wasmtime::Result<Instance<ComponentState, Expiry, Worker>> {
        let Ok(permit) = self.pool.clone().try_acquire_owned() else {
            return Err(wasmtime::format_err!(AtCapacity));
        };
        let (mut store, fuel) = new_store(&self.host, &self.engine, &self.name, &self.grant)
            .map_err(|e| wasmtime::format_err!("{e}"))?;
        let proxy = self.pre.instantiate_async(&mut store).await?;
        self.metrics.in_flight.inc();
        let spec = &self.spec;
        let timeout = spec
            .limits
            .timeout
            .unwrap_or(crate::manifest::DEFAULT_TIMEOUT);
        let missed = Arc::new(std::sync::atomic::AtomicBool::new(false));
        Ok(Instance {
            store,
            proxy,
            view: http_view,
            expiration: Expiry {
                timeout,
                sleep: Box::pin(tokio::time::sleep(Duration::ZERO)),
                missed: missed.clone(),
            },
            state: Worker {
                id: self.next_instance.fetch_add(1, Ordering::Relaxed),
                route: self.name.clone(),
                reuse: spec.reuse as usize,
                concurrent: spec.concurrent_reuse as usize,
                timeout,
                limits: spec.limits.clone(),
                fuel,
                metrics: self.metrics.clone(),
                calls: Mutex::new(Calls::default()),
                missed,
                _permit: permit,
            },
        })
    }
}

/// Why an instance was not made: the pool is full.
#[derive(Debug)]
struct AtCapacity;

impl std::fmt::Display for AtCapacity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("at capacity: every instance of the pool is in use")
    }
}

/// When an instance is dropped: past its request's deadline while it
/// works, or idle for [`IDLE_INSTANCE_TIMEOUT`].
pub struct Expiry {
    timeout: Duration,
    sleep: Pin<Box<tokio::time::Sleep>>,
    /// Set when the instance is dropped for missing a request's deadline.
    missed: Arc<std::sync::atomic::AtomicBool>,
}

impl WorkerExpiration for Expiry {
    fn poll(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        state: WorkerStatus,
        start: Instant,
    ) -> Poll<()> {
        let this = self.get_mut();
        let limit = match state {
            WorkerStatus::Idle => IDLE_INSTANCE_TIMEOUT,
            WorkerStatus::Requests | WorkerStatus::PostReturn => this.timeout,
        };
        let at = start + limit;
        if Instant::now() < at {
            this.sleep.as_mut().reset(at.into());
            if this.sleep.as_mut().poll(cx).is_pending() {
                return Poll::Pending;
            }
        }
        if state != WorkerStatus::Idle {
            this.missed.store(true, Ordering::Release);
        }
        Poll::Ready(())
    }
}

/// One instance: how many requests it takes, and their metering.
pub struct Worker {
    id: u64,
    route: Arc<str>,
    reuse: usize,
    concurrent: usize,
    timeout: Duration,
    limits: Limits,
    /// Fuel the instance started with.
    fuel: u64,
    metrics: Arc<crate::metrics::Metrics>,
    calls: Mutex<Calls>,
    /// Dropped for missing a request's deadline (see [`Expiry`]).
    missed: Arc<std::sync::atomic::AtomicBool>,
    /// The instance's slot of the pool, freed with it.
    _permit: OwnedSemaphorePermit,
}

#[derive(Default)]
struct Calls {
    /// With one request at a time: the one under way, and the fuel left
    /// when it started.
    current: Option<(Arc<Call>, u64)>,
    /// Requests taken and not yet answered (to tell them the cause if the
    /// instance fails).
    taken: Vec<Arc<Cause>>,
    served: u64,
}

impl WorkerState for Worker {
    type StoreData = ComponentState;
    type RequestData = Arc<Call>;

    fn should_accept_request(&self, concurrent: usize, total: usize) -> ShouldAccept {
        if total >= self.reuse {
            ShouldAccept::Never
        } else if concurrent >= self.concurrent {
            ShouldAccept::No
        } else {
            ShouldAccept::Yes
        }
    }

    fn on_request_start(
        &self,
        store: StoreContextMut<'_, ComponentState>,
        call: Arc<Call>,
        _group: TaskGroupId,
    ) -> Pin<Box<dyn Future<Output = ()> + 'static + Send + Sync>> {
        let left = store.get_fuel().unwrap_or(0);
        let peak = store.data().limiter().peak();
        call.record.with(|i| i.instance = Some(self.id));
        let mut calls = self.calls.lock().unwrap_or_else(|p| p.into_inner());
        calls.served += 1;
        calls.taken.retain(|c| c.waiting());
        calls.taken.push(call.cause.clone());
        if self.concurrent == 1 {
            // The first request pays for the instantiation too.
            let since = match calls.current.take() {
                Some((previous, at)) => {
                    previous.meter(at.saturating_sub(left), peak);
                    left
                }
                None if calls.served == 1 => self.fuel,
                None => left,
            };
            calls.current = Some((call, since));
        }
        Box::pin(tokio::time::sleep(self.timeout))
    }

    fn drop(&self, mut store: Store<ComponentState>, result: wasmtime::Result<()>) {
        let nn = crate::app::nn_metered(store.data_mut());
        let left = store.get_fuel().unwrap_or(0);
        let limiter = store.data().limiter();
        let (peak, hit) = (limiter.peak(), limiter.hit());
        drop(store);
        self.metrics.in_flight.dec();
        let mut calls = self.calls.lock().unwrap_or_else(|p| p.into_inner());
        if let Some((call, at)) = calls.current.take() {
            call.meter(at.saturating_sub(left), peak);
            // An instance's wasi-nn work, on the request it served last.
            call.record.with(|i| i.nn = nn);
        }
        if self.concurrent > 1 {
            let line = serde_json::json!({
                "ts_ms": crate::app::now_ms(),
                "route": &*self.route,
                "instance": self.id,
                "requests": calls.served,
                "fuel": self.fuel.saturating_sub(left),
                "memory_peak": peak,
            });
            use std::io::Write;
            let _ = writeln!(std::io::stdout().lock(), "{line}");
        }
        if let Err(e) = result {
            let cause = if self.missed.load(Ordering::Acquire) {
                Error::Timeout(self.timeout)
            } else {
                wasmlayer_core::run::classify(e, &self.limits, hit)
            };
            let status = Failure::guest(cause);
            let text = status.error.to_string();
            let mut first = Some(status);
            for cause in calls.taken.iter().filter(|c| c.waiting()) {
                cause.send(first.take().unwrap_or_else(|| Failure {
                    status: 500,
                    error: Error::Trap {
                        kind: text.clone(),
                        backtrace: Vec::new(),
                    },
                }));
            }
        }
    }
}

/// Serves one request on a WASI 0.3 route.
pub async fn handle(
    route: &Route,
    service: &Service,
    request: http::Request<hyper::body::Incoming>,
    requests: &Requests,
) -> http::Response<Body> {
    let metrics = &requests.metrics;
    let Received {
        record,
        request,
        start,
    } = match receive(route, request, requests).await {
        Ok(r) => r,
        Err(response) => return response,
    };
    let spec = &route.spec;
    let admitted = service.admitted.get_or_init(|| {
        Arc::new(Semaphore::new(
            requests
                .pool_size
                .saturating_mul(spec.concurrent_reuse as usize),
        ))
    });
    let Ok(_admitted) = admitted.clone().try_acquire_owned() else {
        return at_capacity(route, &record, metrics);
    };
    let handler = service
        .handler
        .get_or_init(|| {
            ProxyHandler::new(RouteState {
                pre: ProxyPre::P3(service.pre.clone()),
                engine: service.engine().clone(),
                name: route.name.clone(),
                spec: spec.clone(),
                host: route.host.clone(),
                grant: route.grant.clone(),
                pool: requests.pool.clone(),
                metrics: metrics.clone(),
                next_instance: AtomicU64::new(0),
            })
        })
        .clone();
    let timeout = spec
        .limits
        .timeout
        .unwrap_or(crate::manifest::DEFAULT_TIMEOUT);
    let deadline = start + timeout;
    let (cause_tx, cause_rx) = oneshot::channel();
    let call = Arc::new(Call {
        record: record.clone(),
        cause: Arc::new(Cause(Mutex::new(Some(cause_tx)))),
    });
    // Instances run on the guests' runtime (the handler spawns its workers
    // where it is called).
    let task = requests
        .guests
        .spawn(async move { handler.handle(call, request).await });
    // A response the guest makes after its deadline (on a busy runtime,
    // the task may be polled late) is not served: the clock is read first.
    let outcome = crate::app::until_deadline(deadline, task).await;
    let f = match outcome {
        Some(Ok(Ok(response))) => {
            record.status(response.status().as_u16());
            return response.map(|inner| Counted { inner, record }.boxed_unsync());
        }
        Some(Ok(Err(e))) => failed(e, cause_rx, timeout).await,
        Some(Err(join)) => Failure::guest(Error::host(format!("request task failed: {join}"))),
        None => Failure::guest(Error::Timeout(timeout)),
    };
    failure(&record, &route.name, f)
}

/// Why a request got no response.
async fn failed(
    e: wasmtime::Error,
    cause: oneshot::Receiver<Failure>,
    timeout: Duration,
) -> Failure {
    if let Some(i) = e.downcast_ref::<InstantiationError<Arc<Call>>>() {
        if i.error.downcast_ref::<AtCapacity>().is_some() {
            return Failure {
                status: 503,
                error: Error::host(
                    "no instance available: every instance of the pool is in use".to_string(),
                ),
            };
        }
        let trap = i.error.downcast_ref::<wasmtime::Trap>().is_some();
        return Failure {
            status: if trap { 500 } else { 503 },
            error: Error::host(format!("no instance available: {:#}", i.error)),
        };
    }
    if e.downcast_ref::<ExpirationError>().is_some() {
        return Failure::guest(Error::Timeout(timeout));
    }
    // The instance failed: its cause comes once it has ended.
    match tokio::time::timeout(CAUSE_WAIT, cause).await {
        Ok(Ok(f)) => f,
        _ => Failure::guest(Error::Trap {
            kind: format!("{e:#}"),
            backtrace: Vec::new(),
        }),
    }
}
