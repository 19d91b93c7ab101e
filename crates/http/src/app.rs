//! One version of the app: routes with their pre-instantiated components,
//! and the handling of one request in a fresh instance.

use crate::manifest::{Manifest, RouteSpec};
use crate::metrics::{Metrics, RouteLabel, RouteStatus};
use bytes::Bytes;
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt, Full, Limited};
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};
use wasmlayer_core::caps::NetPattern;
use wasmlayer_core::runtime::Compiled;
use wasmlayer_core::{
    ComponentState, Error, Extension, Grant, Host, Imports, LoadOptions, Result, Runtime, Setup,
    Stdio, StoreOptions, Stream,
};
use wasmtime::component::Linker;
use wasmtime::Store;
use wasmtime_wasi_http::p2::bindings::http::types::{ErrorCode, Scheme};
use wasmtime_wasi_http::p2::bindings::ProxyPre;
use wasmtime_wasi_http::p2::body::HyperOutgoingBody;
use wasmtime_wasi_http::{WasiHttpCtx, WasiHttpCtxView, WasiHttpHooks};

/// The body type of every response.
pub type Body = UnsyncBoxBody<Bytes, wasmtime_wasi_http::Error>;

/// wasi:http as a host extension: per store, its context and the hooks
/// that hold outbound requests to the grant's `allow_http`; imports of
/// 0.2 and 0.3, each when the component imports it.
pub struct WasiHttp {
    /// The route, named in logs.
    pub route: Arc<str>,
}

/// wasi:http's state in a guest's store.
struct HttpState {
    ctx: WasiHttpCtx,
    hooks: Hooks,
}

/// wasi:http's view of a store made by a host with [`WasiHttp`].
pub(crate) fn http_view(guest: &mut ComponentState) -> WasiHttpCtxView<'_> {
    let (state, table) = guest
        .extension_and_table::<HttpState>()
        .expect("a store made by a host with the WasiHttp extension has its state");
    WasiHttpCtxView {
        ctx: &mut state.ctx,
        table,
        hooks: &mut state.hooks,
    }
}

impl Extension for WasiHttp {
    fn name(&self) -> &'static str {
        "wasi:http"
    }

    fn prepare(&self, setup: &mut Setup<'_>) -> Result<()> {
        let allow = Arc::new(setup.grant.capabilities.allow_http.clone());
        setup.insert(HttpState {
            ctx: WasiHttpCtx::new(),
            hooks: Hooks {
                route: self.route.clone(),
                allow,
            },
        });
        Ok(())
    }

    fn link_component(
        &self,
        linker: &mut Linker<ComponentState>,
        imports: &Imports,
    ) -> wasmtime::Result<()> {
        use wasmtime_wasi_http::WasiHttp as Http;
        let http = |version: &str| {
            imports
                .names()
                .any(|n| n.starts_with("wasi:http/") && n.contains(version))
        };
        if http("@0.2") {
            let options = wasmtime_wasi_http::p2::bindings::LinkOptions::default();
            wasmtime_wasi_http::p2::bindings::http::outgoing_handler::add_to_linker::<_, Http>(
                linker, http_view,
            )?;
            wasmtime_wasi_http::p2::bindings::http::types::add_to_linker::<_, Http>(
                linker,
                &options.into(),
                http_view,
            )?;
        }
        if http("@0.3") {
            wasmtime_wasi_http::p3::bindings::http::client::add_to_linker::<_, Http>(
                linker, http_view,
            )?;
            wasmtime_wasi_http::p3::bindings::http::types::add_to_linker::<_, Http>(
                linker, http_view,
            )?;
        }
        Ok(())
    }
}

/// Outbound HTTP only to the route's allowlist.
struct Hooks {
    route: Arc<str>,
    allow: Arc<Vec<NetPattern>>,
}

type SendResult = wasmtime_wasi_http::Result<(
    http::Response<wasmtime_wasi_http::WasiBody>,
    Box<dyn std::future::Future<Output = wasmtime_wasi_http::Result<()>> + Send>,
)>;

impl WasiHttpHooks for Hooks {
    fn send_request(
        &mut self,
        request: http::Request<wasmtime_wasi_http::WasiBody>,
        options: Option<wasmtime_wasi_http::RequestOptions>,
        fut: Box<dyn std::future::Future<Output = wasmtime_wasi_http::Result<()>> + Send>,
    ) -> Box<dyn std::future::Future<Output = SendResult> + Send> {
        let uri = request.uri();
        let host = uri.host().unwrap_or("").to_string();
        let port = uri
            .port_u16()
            .unwrap_or(if uri.scheme_str() == Some("https") {
                443
            } else {
                80
            });
        if !self.allow.iter().any(|p| p.matches_authority(&host, port)) {
            tracing::warn!(route = %self.route, %host, port, "outbound HTTP denied: not on the route's allowlist");
            return Box::new(async { Err(wasmtime_wasi_http::Error::HttpRequestDenied) });
        }
        tracing::debug!(route = %self.route, %host, port, "outbound HTTP allowed");
        drop(fut);
        Box::new(async move {
            let (response, io) = wasmtime_wasi_http::default_send_request(request, options).await?;
            Ok((
                response.map(BodyExt::boxed_unsync),
                Box::new(io) as Box<dyn std::future::Future<Output = _> + Send>,
            ))
        })
    }
}

/// A route ready to serve.
pub struct Route {
    pub spec: RouteSpec,
    pub name: Arc<str>,
    handler: Handler,
    /// What the route's stores are made with: WASI and wasi:http.
    pub(crate) host: Host,
    /// The route's admitted grant.
    pub(crate) grant: Grant,
}

/// How a route's component is called.
enum Handler {
    /// `wasi:http/incoming-handler@0.2`: a fresh instance per request.
    P2(ProxyPre<ComponentState>),
    /// `wasi:http/handler@0.3`: instances that may serve several requests.
    P3(crate::p3::Service),
}

/// One version of the app.
pub struct App {
    /// Longest prefix first.
    pub routes: Vec<Route>,
}

impl App {
    /// Loads (from the compile cache or by compiling) every route's
    /// component, and puts each route's grants through admission: the
    /// runtime's, then the manifest's policy when it names one (both must
    /// allow; each can narrow).
    pub fn build(
        runtime: &Runtime,
        manifest: &Manifest,
        policy: Option<&crate::PolicyLoader>,
    ) -> Result<App> {
        let mut routes = Vec::new();
        // A manifest's policy is read afresh with every build (and reload).
        let policy = match (manifest.policy.is_empty(), policy) {
            (true, _) => None,
            (false, Some(load)) => Some(load(&manifest.policy)?),
            (false, None) => {
                return Err(Error::usage(
                    "the manifest names a policy, and this server has no policy engine",
                ))
            }
        };
        for spec in &manifest.routes {
            let loaded = runtime.load(&spec.component, LoadOptions::default())?;
            let context = wasmlayer_core::AdmissionContext {
                command: "serve".into(),
                route: Some(spec.path.clone()),
            };
            let grant = runtime
                .admit_also(
                    &loaded,
                    &spec.caps,
                    &spec.limits,
                    &context,
                    policy.as_deref(),
                )
                .map_err(|e| match e {
                    Error::Denied { reasons } => Error::Denied {
                        reasons: reasons
                            .into_iter()
                            .map(|r| format!("route {}: {r}", spec.path))
                            .collect(),
                    },
                    other => other,
                })?;
            let mut spec = spec.clone();
            spec.caps = grant.capabilities.clone();
            spec.limits = grant.limits.clone();
            let component = match &loaded.compiled {
                Compiled::Component(c) => c.clone(),
                Compiled::Module(_) => {
                    return Err(Error::invalid(format!(
                        "{}: a core module; `serve` needs a wasi:http component (wasmlayer componentize cannot add an HTTP handler)",
                        spec.component.display()
                    )))
                }
            };
            let name: Arc<str> = spec.path.as_str().into();
            let host = runtime.host().clone().with(WasiHttp {
                route: name.clone(),
            });
            #[cfg(feature = "nn")]
            let host = host.with(wasmlayer_nn::WasiNn::default());
            let linker = host.component_linker(&component)?;
            let not_http = |e: wasmtime::Error| {
                let exports_http = component
                    .component_type()
                    .exports(component.engine())
                    .any(|(name, _)| name.starts_with("wasi:http/"));
                Error::invalid(if exports_http {
                    format!(
                        "{}: not a usable wasi:http component: {e:#}",
                        spec.component.display()
                    )
                } else {
                    format!(
                        "{}: not a wasi:http component: it exports neither wasi:http/incoming-handler@0.2 nor wasi:http/handler@0.3",
                        spec.component.display()
                    )
                })
            };
            let pre = linker.instantiate_pre(&component).map_err(not_http)?;
            let handler = match wasmtime_wasi_http::p3::bindings::ServicePre::new(pre.clone()) {
                Ok(p3) => Handler::P3(crate::p3::Service::new(p3)),
                Err(_) => {
                    if spec.reuse > 1 || spec.concurrent_reuse > 1 {
                        return Err(Error::usage(format!(
                            "route {}: reuse needs a WASI 0.3 (wasi:http/handler@0.3) component; {} is WASI 0.2, whose instances serve one request each",
                            spec.path,
                            spec.component.display()
                        )));
                    }
                    Handler::P2(ProxyPre::new(pre).map_err(not_http)?)
                }
            };
            routes.push(Route {
                name,
                spec,
                handler,
                host,
                grant,
            });
        }
        Ok(App { routes })
    }

    pub fn route_for(&self, path: &str) -> Option<&Route> {
        self.routes.iter().find(|r| r.spec.matches(path))
    }
}

/// A fresh store for one of the route's instances, with the route's grant
/// and limits: WASI from the grant (the guest's stdout and stderr go to the
/// server's stderr), outbound HTTP through the allowlist, the memory limit,
/// and fuel that yields to other guests every [`FUEL_YIELD_INTERVAL`]
/// units. Returns the fuel it starts with.
///
/// Guests take turns by fuel, not by epoch: a yield writes the fuel burnt
/// so far back to the store, an epoch check does not. The deadline is a
/// timer around the call.
pub(crate) fn new_store(
    host: &Host,
    engine: &wasmtime::Engine,
    name: &str,
    grant: &Grant,
) -> Result<(Store<ComponentState>, u64)> {
    let store = host.component_store(
        engine,
        grant,
        StoreOptions {
            program_name: name.to_string(),
            stdio: Stdio {
                stdin: Stream::Null,
                stdout: Stream::Stderr,
                stderr: Stream::Stderr,
            },
            fuel_yield_interval: Some(FUEL_YIELD_INTERVAL),
            ..Default::default()
        },
    )?;
    let fuel = store.get_fuel().unwrap_or(u64::MAX);
    Ok((store, fuel))
}

/// What one request did, written as one access-log line and into the
/// metrics once the request is over: when its response body has been sent
/// and its instance has finished, whichever is last (the last owner drops it).
pub struct Record {
    route: Arc<str>,
    method: String,
    path: String,
    start: Instant,
    metrics: Arc<Metrics>,
    inner: Mutex<RecordInner>,
}

#[derive(Default)]
pub(crate) struct RecordInner {
    pub(crate) status: u16,
    pub(crate) bytes_in: u64,
    pub(crate) bytes_out: u64,
    pub(crate) fuel: Option<u64>,
    pub(crate) memory: Option<u64>,
    pub(crate) error: Option<String>,
    /// The instance that served it, on routes that reuse instances.
    pub(crate) instance: Option<u64>,
    /// wasi-nn: inferences run, their time, and the bytes of the models loaded.
    pub(crate) nn: Option<(u64, std::time::Duration, u64)>,
}

/// What a store's wasi-nn counted (none when it loaded no model).
#[allow(unused_variables)]
pub(crate) fn nn_metered(state: &mut ComponentState) -> Option<(u64, std::time::Duration, u64)> {
    #[cfg(feature = "nn")]
    {
        let m = state.extension::<wasmlayer_nn::NnState>()?.meter();
        if m.models > 0 {
            return Some((m.inferences, m.inference_time, m.model_bytes));
        }
    }
    None
}

impl Record {
    pub fn new(
        route: Arc<str>,
        method: &str,
        path: &str,
        start: Instant,
        metrics: Arc<Metrics>,
    ) -> Arc<Self> {
        Arc::new(Record {
            route,
            method: method.to_string(),
            path: path.to_string(),
            start,
            metrics,
            inner: Mutex::new(RecordInner::default()),
        })
    }

    pub(crate) fn with<R>(&self, f: impl FnOnce(&mut RecordInner) -> R) -> R {
        f(&mut self.inner.lock().unwrap_or_else(|p| p.into_inner()))
    }

    pub fn status(&self, status: u16) {
        self.with(|i| i.status = status);
    }

    pub fn error(&self, error: String) {
        self.with(|i| {
            i.error.get_or_insert(error);
        });
    }
}

impl Drop for Record {
    fn drop(&mut self) {
        let wall = self.start.elapsed();
        let i = self.inner.get_mut().unwrap_or_else(|p| p.into_inner());
        let mut line = serde_json::json!({
            "ts_ms": now_ms(),
            "route": &*self.route,
            "method": self.method,
            "path": self.path,
            "status": i.status,
            "wall_us": wall.as_micros() as u64,
            "fuel": i.fuel,
            "memory_peak": i.memory,
            "bytes_in": i.bytes_in,
            "bytes_out": i.bytes_out,
            "error": i.error,
        });
        if let Some(id) = i.instance {
            line["instance"] = id.into();
        }
        if let Some((n, took, bytes)) = i.nn {
            line["nn_inferences"] = n.into();
            line["nn_time_us"] = (took.as_micros() as u64).into();
            line["nn_model_bytes"] = bytes.into();
        }
        {
            use std::io::Write;
            let mut out = std::io::stdout().lock();
            let _ = writeln!(out, "{line}");
        }
        let route = RouteLabel {
            route: self.route.to_string(),
        };
        let m = &self.metrics;
        m.requests
            .get_or_create(&RouteStatus {
                route: route.route.clone(),
                status: i.status.to_string(),
            })
            .inc();
        m.duration.get_or_create(&route).observe(wall.as_secs_f64());
        if let Some(f) = i.fuel {
            m.fuel.get_or_create(&route).observe(f as f64);
        }
        if let Some(mem) = i.memory {
            m.memory.get_or_create(&route).observe(mem as f64);
        }
        if let Some((n, took, bytes)) = i.nn {
            m.nn_inferences.get_or_create(&route).inc_by(n);
            m.nn_seconds
                .get_or_create(&route)
                .observe(took.as_secs_f64());
            m.nn_model_bytes.get_or_create(&route).observe(bytes as f64);
        }
        m.bytes_in.get_or_create(&route).inc_by(i.bytes_in);
        m.bytes_out.get_or_create(&route).inc_by(i.bytes_out);
    }
}

/// Milliseconds since the Unix epoch, for access-log lines.
pub(crate) fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// A short plain-text response from the host.
pub fn plain(status: u16, text: impl Into<String>) -> http::Response<Body> {
    let text: String = text.into();
    http::Response::builder()
        .status(status)
        .header("content-type", "text/plain; charset=utf-8")
        .body(
            Full::new(Bytes::from(text + "\n"))
                .map_err(|never| match never {})
                .boxed_unsync(),
        )
        .expect("a valid response")
}

/// Counts the response body bytes into the request's record.
pub(crate) struct Counted {
    pub(crate) inner: Body,
    pub(crate) record: Arc<Record>,
}

impl http_body::Body for Counted {
    type Data = Bytes;
    type Error = wasmtime_wasi_http::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Bytes>, Self::Error>>> {
        let polled = Pin::new(&mut self.inner).poll_frame(cx);
        if let Poll::Ready(Some(Ok(frame))) = &polled {
            if let Some(data) = frame.data_ref() {
                let n = data.len() as u64;
                self.record.with(|i| i.bytes_out += n);
            }
        }
        if let Poll::Ready(Some(Err(e))) = &polled {
            self.record.error(format!("response body failed: {e}"));
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}

/// How a request failed, and so how it is answered.
pub struct Failure {
    pub status: u16,
    pub error: Error,
}

impl Failure {
    /// 504 for a timeout, 500 for anything the guest did.
    pub(crate) fn guest(error: Error) -> Self {
        let status = if matches!(error, Error::Timeout(_)) {
            504
        } else {
            500
        };
        Failure { status, error }
    }
}

/// Answers a failed request and notes it in the request's record.
pub(crate) fn failure(record: &Record, route: &str, f: Failure) -> http::Response<Body> {
    tracing::warn!(route, status = f.status, cause = %f.error, "request failed");
    answer(record, f.status, f.error.to_string())
}

/// Refuses a request before any instance is involved: counted by reason.
pub fn refuse(
    record: &Record,
    metrics: &Metrics,
    reason: &str,
    status: u16,
    text: String,
) -> http::Response<Body> {
    metrics
        .rejected
        .get_or_create(&crate::metrics::ResultLabel {
            result: reason.into(),
        })
        .inc();
    answer(record, status, text)
}

/// The host's own answer to a request, noted in its record: 503 asks the
/// client to retry, and after a 408 the connection closes (the rest of the
/// body may still be on its way, so it cannot carry another request).
fn answer(record: &Record, status: u16, text: String) -> http::Response<Body> {
    record.status(status);
    record.error(text.clone());
    let mut r = plain(status, text);
    let header = match status {
        503 => Some((http::header::RETRY_AFTER, "1")),
        408 => Some((http::header::CONNECTION, "close")),
        _ => None,
    };
    if let Some((name, value)) = header {
        r.headers_mut()
            .insert(name, http::HeaderValue::from_static(value));
    }
    r
}

/// What every request of a server shares.
pub struct Requests {
    /// One permit per instance alive at once.
    pub pool: Arc<tokio::sync::Semaphore>,
    /// The pool's size.
    pub pool_size: usize,
    pub metrics: Arc<Metrics>,
    /// Guests run on a runtime of their own, so that a crowd of busy guests
    /// never delays the I/O threads that answer on time (504s included).
    pub guests: tokio::runtime::Handle,
    /// Time to receive a request's body.
    pub body_timeout: Duration,
}

/// Fuel a guest burns between two yields to the other guests. Fuel is
/// written back to the store at every yield, so a request ended between two
/// yields (timeout) is metered exactly.
const FUEL_YIELD_INTERVAL: u64 = 1_000_000;

/// Serves one request on `route` in a fresh instance.
///
/// Two phases, so that a request held open for long costs little: the start
/// (reading the body, building the store, spawning the guest) runs in its own
/// heap allocation, freed once the guest is running; what stays alive while
/// the guest works is only the small state that waits for its response.
pub async fn handle(
    route: &Route,
    request: http::Request<hyper::body::Incoming>,
    requests: &Requests,
) -> http::Response<Body> {
    let pre = match &route.handler {
        Handler::P2(pre) => pre,
        Handler::P3(service) => {
            return Box::pin(crate::p3::handle(route, service, request, requests)).await
        }
    };
    match Box::pin(start(route, pre, request, requests)).await {
        Ok(running) => running.respond(&route.name).await,
        Err(response) => response,
    }
}

/// A request with its body read in full (within the route's limit and the
/// server's deadline), and its record.
pub(crate) struct Received {
    pub(crate) record: Arc<Record>,
    pub(crate) request: http::Request<Body>,
    pub(crate) start: Instant,
}

/// Reads the request's body, within the route's limit and the server's
/// deadline. No instance is taken until it is in: a slow client holds a
/// connection, never a slot of the pool.
pub(crate) async fn receive(
    route: &Route,
    request: http::Request<hyper::body::Incoming>,
    requests: &Requests,
) -> Result<Received, http::Response<Body>> {
    let start = Instant::now();
    let metrics = &requests.metrics;
    let path = request
        .uri()
        .path_and_query()
        .map(|p| p.to_string())
        .unwrap_or_else(|| "/".into());
    let record = Record::new(
        route.name.clone(),
        request.method().as_str(),
        &path,
        start,
        metrics.clone(),
    );
    let spec = &route.spec;
    let declared = request
        .headers()
        .get(http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    let too_large = || format!("request body larger than {} bytes", spec.max_body);
    if declared.is_some_and(|n| n > spec.max_body) {
        return Err(refuse(&record, metrics, "body-too-large", 413, too_large()));
    }
    let (parts, body) = request.into_parts();
    let read = Limited::new(body, spec.max_body as usize).collect();
    let body = match tokio::time::timeout(requests.body_timeout, read).await {
        Ok(Ok(b)) => b.to_bytes(),
        Ok(Err(e)) if e.is::<http_body_util::LengthLimitError>() => {
            return Err(refuse(&record, metrics, "body-too-large", 413, too_large()));
        }
        Ok(Err(e)) => {
            return Err(refuse(
                &record,
                metrics,
                "bad-body",
                400,
                format!("cannot read the request body: {e}"),
            ));
        }
        Err(_) => {
            return Err(refuse(
                &record,
                metrics,
                "body-timeout",
                408,
                format!(
                    "request body not received within {}",
                    wasmlayer_core::limits::format_duration(requests.body_timeout)
                ),
            ));
        }
    };
    record.with(|i| i.bytes_in = body.len() as u64);
    let request = http::Request::from_parts(
        parts,
        Full::new(body)
            .map_err(
                |never: std::convert::Infallible| -> wasmtime_wasi_http::Error { match never {} },
            )
            .boxed_unsync(),
    );
    Ok(Received {
        record,
        request,
        start,
    })
}

/// 503 when every instance of the pool is busy.
pub(crate) fn at_capacity(
    route: &Route,
    record: &Record,
    metrics: &Metrics,
) -> http::Response<Body> {
    tracing::warn!(route = %route.name, "at capacity: every instance is busy");
    refuse(
        record,
        metrics,
        "at-capacity",
        503,
        "at capacity, retry shortly".into(),
    )
}

/// A guest running one request.
struct Running {
    record: Arc<Record>,
    task: tokio::task::JoinHandle<Result<(), Failure>>,
    response: tokio::sync::oneshot::Receiver<Result<http::Response<HyperOutgoingBody>, ErrorCode>>,
    deadline: Instant,
    timeout: Duration,
}

async fn start(
    route: &Route,
    pre: &ProxyPre<ComponentState>,
    request: http::Request<hyper::body::Incoming>,
    requests: &Requests,
) -> Result<Running, http::Response<Body>> {
    let metrics = &requests.metrics;
    let Received {
        record,
        request,
        start,
    } = receive(route, request, requests).await?;
    let Ok(permit) = requests.pool.clone().try_acquire_owned() else {
        return Err(at_capacity(route, &record, metrics));
    };
    let host_failure = |e: Error| failure(&record, &route.name, Failure::guest(e));
    let (mut store, fuel) =
        new_store(&route.host, pre.engine(), &route.name, &route.grant).map_err(host_failure)?;
    let spec = &route.spec;
    let timeout = spec
        .limits
        .timeout
        .unwrap_or(crate::manifest::DEFAULT_TIMEOUT);
    let deadline = start + timeout;

    let (tx, rx) = tokio::sync::oneshot::channel();
    let req = http_view(store.data_mut()).new_incoming_request(Scheme::Http, request);
    let (req, out) = match req
        .and_then(|req| Ok((req, http_view(store.data_mut()).new_response_outparam(tx)?)))
    {
        Ok(v) => v,
        Err(e) => return Err(host_failure(Error::host(format!("{e:#}")))),
    };

    let pre = pre.clone();
    let limits = spec.limits.clone();
    let task_record = record.clone();
    let metrics = metrics.clone();
    metrics.in_flight.inc();
    let task = requests.guests.spawn(async move {
        // The deadline also ends a guest waiting in a host call (a sleep, a
        // slow upstream): the call is dropped and its instance freed.
        let call = async {
            let proxy = match pre.instantiate_async(&mut store).await {
                Ok(p) => p,
                Err(e) => return Err(instantiate_failure(e, &limits, &store)),
            };
            proxy
                .wasi_http_incoming_handler()
                .call_handle(&mut store, req, out)
                .await
                .map_err(|e| {
                    let hit = store.data().limiter().hit();
                    Failure::guest(wasmlayer_core::run::classify(e, &limits, hit))
                })
        };
        let result = until_deadline(deadline, call).await;
        let consumed = fuel - store.get_fuel().unwrap_or(fuel);
        let peak = store.data().limiter().peak();
        let nn = nn_metered(store.data_mut());
        task_record.with(|i| {
            i.fuel = Some(consumed);
            i.memory = Some(peak);
            i.nn = nn;
        });
        drop(store);
        metrics.in_flight.dec();
        drop(permit);
        match result {
            Some(r) => r,
            None => Err(Failure::guest(Error::Timeout(timeout))),
        }
    });

    Ok(Running {
        record,
        task,
        response: rx,
        deadline,
        timeout,
    })
}

/// Polls a guest's call until `deadline`; None once it has passed. Unlike
/// `tokio::time::timeout_at`, which polls the inner future first, the clock
/// is read before every poll: on a busy runtime the timer may fire late, and
/// a guest whose host call (a sleep, an upstream) completes after its
/// deadline must not be resumed, nor its late response served as a success.
pub(crate) async fn until_deadline<F: std::future::Future>(
    deadline: Instant,
    call: F,
) -> Option<F::Output> {
    use std::future::Future;
    let mut call = std::pin::pin!(call);
    let mut timer = std::pin::pin!(tokio::time::sleep_until(deadline.into()));
    std::future::poll_fn(|cx| {
        if Instant::now() >= deadline || timer.as_mut().poll(cx).is_ready() {
            return Poll::Ready(None);
        }
        call.as_mut().poll(cx).map(Some)
    })
    .await
}

/// An instance that could not be made: a trap or a limit in its start-up is
/// the guest's; anything else (the pool or the system out of memory or
/// mappings) is the server's lack of room, answered 503 so that the client
/// retries while the other requests go on.
fn instantiate_failure(
    e: wasmtime::Error,
    limits: &wasmlayer_core::Limits,
    store: &Store<ComponentState>,
) -> Failure {
    let hit = store.data().limiter().hit();
    if hit || e.downcast_ref::<wasmtime::Trap>().is_some() {
        return Failure::guest(wasmlayer_core::run::classify(e, limits, hit));
    }
    Failure {
        status: 503,
        error: Error::host(format!(
            "no instance available: {}",
            e.chain()
                .map(|c| c.to_string())
                .collect::<Vec<_>>()
                .join(": ")
        )),
    }
}

impl Running {
    /// Waits for the guest's response, at most until the deadline.
    async fn respond(self, route: &str) -> http::Response<Body> {
        let Running {
            record,
            task,
            response,
            deadline,
            timeout,
        } = self;
        let outcome = tokio::time::timeout_at(deadline.into(), response).await;
        match outcome {
            Ok(Ok(Ok(response))) => {
                record.status(response.status().as_u16());
                let record_for_body = record.clone();
                // If the guest fails after sending the head, the body ends early
                // and the failure is logged with the request.
                tokio::spawn(async move {
                    if let Ok(Err(f)) = task.await {
                        tracing::warn!(route = %record_for_body.route, cause = %f.error, "guest failed while sending its body");
                        record_for_body.error(f.error.to_string());
                    }
                });
                response.map(|inner| Counted { inner, record }.boxed_unsync())
            }
            Ok(Ok(Err(code))) => {
                let e = Error::Trap {
                    kind: format!("the guest answered with an error: {code:?}"),
                    backtrace: Vec::new(),
                };
                failure(&record, route, Failure::guest(e))
            }
            Ok(Err(_)) => {
                // The guest finished or failed without setting a response.
                let f = match task.await {
                    Ok(Err(f)) => f,
                    Ok(Ok(())) => Failure::guest(Error::Trap {
                        kind: "the guest returned without a response".into(),
                        backtrace: Vec::new(),
                    }),
                    Err(join) => {
                        Failure::guest(Error::host(format!("request task failed: {join}")))
                    }
                };
                failure(&record, route, f)
            }
            Err(_elapsed) => failure(&record, route, Failure::guest(Error::Timeout(timeout))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(flavor = "current_thread")]
    async fn a_call_ready_only_after_its_deadline_is_not_taken() {
        let deadline = Instant::now();
        std::thread::sleep(Duration::from_millis(2));
        // Polled first, a ready call wins over a deadline already past with
        // tokio's timeout_at; until_deadline reads the clock first.
        assert!(tokio::time::timeout_at(deadline.into(), async { 1 })
            .await
            .is_ok());
        assert_eq!(until_deadline(deadline, async { 1 }).await, None);
        let later = Instant::now() + Duration::from_secs(5);
        assert_eq!(until_deadline(later, async { 1 }).await, Some(1));
    }

    #[tokio::test(flavor = "current_thread")]
    async fn a_call_past_its_deadline_is_dropped() {
        let deadline = Instant::now() + Duration::from_millis(20);
        let slow = tokio::time::sleep(Duration::from_millis(500));
        let started = Instant::now();
        assert_eq!(until_deadline(deadline, slow).await, None);
        assert!(started.elapsed() < Duration::from_millis(400));
    }
}
