//! The HTTP server: listener, admission of requests into the instance pool,
//! the admin endpoints, hot reload and draining.

use crate::app::{handle, plain, refuse, App, Body, Record, Requests};
use crate::manifest::{Manifest, ServerSettings};
use crate::metrics::{Metrics, ResultLabel};
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::server::conn::http1;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant, SystemTime};
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use wasmlayer_core::runtime::{EngineOptions, PoolingOptions};
use wasmlayer_core::{Error, Result, Runtime};
use wasmlayer_server::{Stop, TokioTimer};
use wasmtime_wasi_http::io::TokioIo;

/// Where the app comes from.
#[derive(Debug, Clone)]
pub enum Source {
    /// A manifest file, re-read on reload.
    Manifest(PathBuf),
    /// One component, configured by flags.
    Single(Box<Manifest>),
}

/// How to serve.
#[derive(Clone)]
pub struct ServeOptions {
    /// Decides each route's grants, as for `run`.
    pub admission: Arc<dyn wasmlayer_core::Admission>,
    /// Loads the policy a manifest names (`policy = ...`), at start and on
    /// every reload; it judges each route after `admission`. None: a
    /// manifest that names a policy is refused.
    pub policy: Option<crate::PolicyLoader>,
    pub source: Source,
    /// Overrides the manifest's `server.listen` (default 127.0.0.1:8080).
    pub listen: Option<SocketAddr>,
    /// Overrides the manifest's `server.admin`.
    pub admin: Option<SocketAddr>,
    /// How long in-flight requests may take to finish on shutdown.
    pub drain_timeout: Duration,
    /// How often files are checked for changes (reload).
    pub watch_interval: Duration,
    pub cache_dir: Option<PathBuf>,
    pub cache: bool,
    /// Confine the process before serving ([`wasmlayer_core::sandbox`]):
    /// the routes' grants, their components and the manifest (for
    /// reloads), the compile cache; sockets, but outbound TCP only when a
    /// route may make outbound requests.
    pub host_sandbox: bool,
}

struct Shared {
    app: RwLock<Arc<App>>,
    requests: Requests,
    metrics: Arc<Metrics>,
    draining: AtomicBool,
    header_timeout: Duration,
    /// The authority of a request that names none (HTTP/1.0 without `Host`).
    local: http::HeaderValue,
}

impl Shared {
    fn app(&self) -> Arc<App> {
        self.app.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    fn set_app(&self, app: App) {
        *self.app.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(app);
    }
}

/// Draining, as `/readyz` and the log tell it.
impl wasmlayer_server::Events for Shared {
    fn stopping(&self) {
        self.draining.store(true, Ordering::SeqCst);
    }

    fn draining(&self, open: usize, timeout: Duration) {
        eprintln!("draining {open} connection(s) (up to {timeout:?})");
    }

    fn drained(&self) {
        eprintln!("drained; exiting");
    }

    fn deadline_passed(&self, open: usize) {
        eprintln!("drain deadline passed with {open} connection(s) open; exiting");
    }
}

fn load_manifest(source: &Source) -> Result<Manifest> {
    match source {
        Source::Manifest(path) => Manifest::from_file(path),
        Source::Single(m) => Ok((**m).clone()),
    }
}

/// Files whose change triggers a reload, with their modification times.
fn watched(source: &Source, manifest: &Manifest) -> Vec<(PathBuf, Option<SystemTime>)> {
    let mut files: Vec<PathBuf> = manifest
        .routes
        .iter()
        .map(|r| r.component.clone())
        .collect();
    if let Source::Manifest(p) = source {
        files.push(p.clone());
    }
    files
        .into_iter()
        .map(|f| {
            (
                f.clone(),
                std::fs::metadata(&f).and_then(|m| m.modified()).ok(),
            )
        })
        .collect()
}

/// Core instances, memories and tables one component instance may use.
const SLOTS_PER_INSTANCE: u32 = 4;
/// Linear memories the pool holds per instance: the usual toolchains make
/// components with one. A component with more takes the slots of others; when
/// none is left its request gets 503.
const MEMORIES_PER_INSTANCE: u32 = 1;

/// Sizes the pool to what the kernel allows (see [`crate::pool`]): a pool
/// that does not fit is made smaller, with a warning that names the setting
/// to raise; one that cannot hold a single instance is refused.
fn fit_pool(settings: &mut ServerSettings) -> Result<()> {
    use crate::pool::{fit, Fit, PoolShape, SystemLimits};
    let shape = PoolShape {
        instances: settings.pool_size,
        memories_per_instance: MEMORIES_PER_INSTANCE,
        memory_slot_bytes: settings.max_instance_memory + MEMORY_GUARD,
        stack_bytes: (2 << 20) + 4096,
    };
    match fit(&shape, &SystemLimits::read()) {
        Fit::Fits => Ok(()),
        Fit::Reduced { instances, why } => {
            eprintln!(
                "warning: serving with a pool of {instances} instead of {}: {why}",
                settings.pool_size
            );
            settings.pool_size = instances;
            Ok(())
        }
        Fit::Impossible(why) => Err(Error::host(format!(
            "the instance pool does not fit this system: {why}"
        ))),
    }
}

/// Guard behind each linear memory of the pool.
const MEMORY_GUARD: u64 = 64 << 10;

fn runtime(settings: &ServerSettings, opts: &ServeOptions) -> Result<Runtime> {
    let pooling = PoolingOptions {
        total_instances: settings.pool_size,
        max_memory_size: settings.max_instance_memory as usize,
        slots_per_instance: SLOTS_PER_INSTANCE,
        memories_per_instance: MEMORIES_PER_INSTANCE,
        compact_memory: true,
    };
    Runtime::builder()
        .engine_options(EngineOptions {
            fuel: true,
            pooling: Some(pooling),
            without_p3: false,
        })
        .cache_dir(opts.cache_dir.clone())
        .cache(opts.cache)
        .admission(opts.admission.clone())
        .build()
}

/// Runs the server until SIGTERM or SIGINT; returns the exit code.
pub fn serve(opts: ServeOptions) -> Result<i32> {
    let manifest = load_manifest(&opts.source)?;
    let mut settings = manifest.server.clone();
    fit_pool(&mut settings)?;
    let runtime = Arc::new(runtime(&settings, &opts)?);
    let app = App::build(&runtime, &manifest, opts.policy.as_ref())?;
    if opts.host_sandbox {
        // Before any worker thread starts: they all inherit it.
        let plan = sandbox_plan(&opts, &manifest, &runtime, &app)?;
        tracing::info!("host sandbox: {}", wasmlayer_core::sandbox::confine(&plan));
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| Error::host(format!("cannot start the async runtime: {e}")))?;
    let guests = tokio::runtime::Builder::new_multi_thread()
        .thread_name("guest")
        .enable_all()
        .build()
        .map_err(|e| Error::host(format!("cannot start the guest runtime: {e}")))?;
    let code = rt.block_on(run(
        opts,
        manifest,
        settings,
        runtime,
        app,
        guests.handle().clone(),
    ));
    // Guests still running past the drain deadline are dropped with it.
    guests.shutdown_background();
    code
}

/// What the server may reach once confined.
fn sandbox_plan(
    opts: &ServeOptions,
    manifest: &Manifest,
    runtime: &Runtime,
    app: &App,
) -> Result<wasmlayer_core::sandbox::Plan> {
    use wasmlayer_core::sandbox::Plan;
    let cache = runtime.cache().map(|c| c.dir());
    let mut plan = Plan {
        // A server listens even when no guest may connect out.
        sockets: true,
        ..Plan::default()
    };
    for route in &app.routes {
        let extra = route.host.before_lockdown(&route.grant)?;
        plan.merge(Plan::for_grant(&route.grant, cache, extra));
    }
    // Reloads read the manifest and the components again.
    let mut reread: Vec<PathBuf> = manifest
        .routes
        .iter()
        .map(|r| r.component.clone())
        .chain(manifest.policy.iter().cloned())
        .collect();
    // The pool reads the process's limits when instances run out.
    reread.push("/proc/self".into());
    reread.push("/proc/sys/vm/max_map_count".into());
    if let Source::Manifest(path) = &opts.source {
        reread.push(
            path.parent()
                .unwrap_or(std::path::Path::new("."))
                .to_path_buf(),
        );
    }
    plan.read_only.extend(
        reread
            .into_iter()
            .map(|p| std::fs::canonicalize(&p).unwrap_or(p)),
    );
    Ok(plan)
}

async fn run(
    opts: ServeOptions,
    manifest: Manifest,
    settings: ServerSettings,
    runtime: Arc<Runtime>,
    app: App,
    guests: tokio::runtime::Handle,
) -> Result<i32> {
    let listen = opts
        .listen
        .or(settings.listen)
        .unwrap_or(SocketAddr::from(([127, 0, 0, 1], 8080)));
    let listener = TcpListener::bind(listen)
        .await
        .map_err(|e| Error::host(format!("cannot listen on {listen}: {e}")))?;
    let admin = match opts.admin.or(settings.admin) {
        Some(a) => Some(
            TcpListener::bind(a)
                .await
                .map_err(|e| Error::host(format!("cannot listen on {a}: {e}")))?,
        ),
        None => None,
    };
    let local = listener
        .local_addr()
        .map_err(|e| Error::host(e.to_string()))?;
    let metrics = Arc::new(Metrics::new());
    let shared = Arc::new(Shared {
        app: RwLock::new(Arc::new(app)),
        requests: Requests {
            pool: Arc::new(Semaphore::new(settings.pool_size as usize)),
            pool_size: settings.pool_size as usize,
            metrics: metrics.clone(),
            guests,
            body_timeout: settings.body_timeout,
        },
        metrics,
        draining: AtomicBool::new(false),
        header_timeout: settings.header_timeout,
        local: http::HeaderValue::from_str(&local.to_string())
            .map_err(|e| Error::host(e.to_string()))?,
    });

    eprintln!(
        "serving http://{local} ({} route(s), pool of {})",
        manifest.routes.len(),
        settings.pool_size
    );
    for r in &manifest.routes {
        eprintln!("  {} -> {}", r.path, r.component.display());
    }
    if let Some(a) = &admin {
        eprintln!(
            "admin http://{} (/metrics, /healthz, /readyz)",
            a.local_addr().map_err(|e| Error::host(e.to_string()))?
        );
    }

    if let Some(admin) = admin {
        tokio::spawn(admin_loop(admin, shared.clone()));
    }
    tokio::spawn(reload_loop(
        opts.clone(),
        manifest.server.clone(),
        runtime,
        shared.clone(),
        watched(&opts.source, &manifest),
    ));

    let shutdown = wasmlayer_server::shutdown_signal()
        .map_err(|e| Error::host(format!("cannot handle SIGTERM: {e}")))?;
    wasmlayer_server::serve(
        listener,
        shutdown,
        opts.drain_timeout,
        &*shared,
        |stream, stop| connection(stream, shared.clone(), stop),
    )
    .await;
    Ok(0)
}

async fn connection(stream: tokio::net::TcpStream, shared: Arc<Shared>, mut stop: Stop) {
    let conflicts = crate::framing::Conflicts::new();
    let service = {
        let shared = shared.clone();
        let conflicts = conflicts.clone();
        hyper::service::service_fn(move |req| {
            let framed_twice = conflicts.take_next();
            dispatch(req, framed_twice, shared.clone())
        })
    };
    let stream = crate::framing::Watched::new(stream, conflicts);
    // Half-close allowed: hyper does not read ahead on a connection whose
    // request is in flight (to notice the client leaving), which would pin a
    // second read buffer per held request. The guest runs to its response or
    // deadline either way.
    let mut conn = http1::Builder::new()
        .keep_alive(true)
        .half_close(true)
        .timer(TokioTimer)
        .header_read_timeout(shared.header_timeout)
        .serve_connection(TokioIo::new(stream), service);
    let ended = tokio::select! {
        r = &mut conn => r,
        () = stop.requested() => {
            std::pin::Pin::new(&mut conn).graceful_shutdown();
            (&mut conn).await
        }
    };
    match ended {
        Err(e) if e.is_timeout() => header_timeout(conn.into_parts(), &shared).await,
        Err(e) => tracing::debug!("connection ended: {e}"),
        Ok(()) => {}
    }
}

/// The header deadline passed. A connection that was idle between requests
/// is simply closed; one with part of a request received is answered 408.
async fn header_timeout<T: hyper::rt::Write + Unpin, S>(
    parts: hyper::server::conn::http1::Parts<T, S>,
    shared: &Shared,
) {
    if parts.read_buf.is_empty() {
        return;
    }
    let text = format!(
        "request headers not received within {}",
        wasmlayer_core::limits::format_duration(shared.header_timeout)
    );
    let record = Record::new("-".into(), "-", "-", Instant::now(), shared.metrics.clone());
    drop(refuse(
        &record,
        &shared.metrics,
        "header-timeout",
        408,
        text.clone(),
    ));
    let response = format!(
        "HTTP/1.1 408 Request Timeout\r\ncontent-type: text/plain; charset=utf-8\r\nconnection: close\r\ncontent-length: {}\r\n\r\n{text}\n",
        text.len() + 1
    );
    let mut io = parts.io;
    let _ = tokio::time::timeout(Duration::from_secs(1), async {
        use std::pin::Pin;
        let mut rest = response.as_bytes();
        while !rest.is_empty() {
            match std::future::poll_fn(|cx| Pin::new(&mut io).poll_write(cx, rest)).await {
                Ok(n) if n > 0 => rest = &rest[n..],
                _ => return,
            }
        }
        let _ = std::future::poll_fn(|cx| Pin::new(&mut io).poll_shutdown(cx)).await;
    })
    .await;
}

/// A request the HTTP layer accepts but no guest should see.
fn malformed(
    req: &http::Request<hyper::body::Incoming>,
    framed_twice: bool,
) -> Option<&'static str> {
    // hyper frames such a request by Transfer-Encoding alone and drops
    // Content-Length (RFC 9112, 6.3); the stream's own watch tells.
    if framed_twice {
        return Some("Transfer-Encoding together with Content-Length");
    }
    match req.headers().get(http::header::HOST) {
        Some(host) if host.to_str().is_err() => Some("invalid Host header"),
        None if req.uri().authority().is_none() && req.version() >= http::Version::HTTP_11 => {
            Some("missing Host header")
        }
        _ => None,
    }
}

async fn dispatch(
    mut req: http::Request<hyper::body::Incoming>,
    framed_twice: bool,
    shared: Arc<Shared>,
) -> Result<http::Response<Body>, std::convert::Infallible> {
    let app = shared.app();
    let path = req
        .uri()
        .path_and_query()
        .map(|p| p.as_str())
        .unwrap_or("/")
        .to_string();
    // Refusals before any instance is involved still get an access-log line.
    let refused = |route: &str, reason: &str, status: u16, text: String| {
        let record = Record::new(
            route.into(),
            req.method().as_str(),
            &path,
            Instant::now(),
            shared.metrics.clone(),
        );
        refuse(&record, &shared.metrics, reason, status, text)
    };
    if let Some(why) = malformed(&req, framed_twice) {
        let mut r = refused("-", "bad-request", 400, format!("bad request: {why}"));
        r.headers_mut().insert(
            http::header::CONNECTION,
            http::HeaderValue::from_static("close"),
        );
        return Ok(r);
    }
    let Some(route) = app.route_for(req.uri().path()) else {
        let text = format!("no route for {}", req.uri().path());
        return Ok(refused("-", "no-route", 404, text));
    };
    if req.uri().authority().is_none() && !req.headers().contains_key(http::header::HOST) {
        // HTTP/1.0 may leave out `Host`: the request is for this server.
        req.headers_mut()
            .insert(http::header::HOST, shared.local.clone());
    }
    Ok(handle(route, req, &shared.requests).await)
}

async fn admin_loop(listener: TcpListener, shared: Arc<Shared>) {
    loop {
        let stream = match listener.accept().await {
            Ok((stream, _)) => stream,
            Err(_) => {
                tokio::time::sleep(Duration::from_millis(20)).await;
                continue;
            }
        };
        let shared = shared.clone();
        tokio::spawn(async move {
            let service = hyper::service::service_fn(
                move |req: http::Request<hyper::body::Incoming>| {
                    let shared = shared.clone();
                    async move {
                        let response = match req.uri().path() {
                            "/metrics" => {
                                // OpenMetrics for whoever asks for it (Prometheus
                                // does), the classic text format otherwise; the
                                // body is exactly the exposition (OpenMetrics
                                // allows nothing after `# EOF`).
                                let open =
                                    req.headers().get_all(http::header::ACCEPT).iter().any(|v| {
                                        v.to_str().is_ok_and(|v| {
                                            v.contains("application/openmetrics-text")
                                        })
                                    });
                                let (body, content_type) = if open {
                                    (shared.metrics.encode(), "application/openmetrics-text; version=1.0.0; charset=utf-8")
                                } else {
                                    (
                                        crate::metrics::to_classic_text(&shared.metrics.encode()),
                                        "text/plain; version=0.0.4; charset=utf-8",
                                    )
                                };
                                http::Response::builder()
                                    .header(http::header::CONTENT_TYPE, content_type)
                                    .body(
                                        Full::new(Bytes::from(body))
                                            .map_err(|never| match never {})
                                            .boxed_unsync(),
                                    )
                                    .expect("a valid response")
                            }
                            "/healthz" => plain(200, "ok"),
                            "/readyz" if shared.draining.load(Ordering::SeqCst) => {
                                plain(503, "draining")
                            }
                            "/readyz" => plain(200, "ready"),
                            other => plain(404, format!("no admin endpoint {other}")),
                        };
                        Ok::<_, std::convert::Infallible>(response)
                    }
                },
            );
            let _ = http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}

/// The next SIGHUP; never, when it could not be handled (reload then goes
/// on for file changes alone).
async fn hangup(hup: &mut Option<tokio::signal::unix::Signal>) {
    match hup {
        Some(h) => {
            if h.recv().await.is_none() {
                // The signal stream ended: no more SIGHUPs will come.
                *hup = None;
                std::future::pending::<()>().await;
            }
        }
        None => std::future::pending().await,
    }
}

/// Reloads on SIGHUP or when a watched file changes: the new version is
/// built in the background and swapped in whole; a broken one is rejected
/// and the running version keeps serving.
async fn reload_loop(
    opts: ServeOptions,
    settings: ServerSettings,
    runtime: Arc<Runtime>,
    shared: Arc<Shared>,
    mut seen: Vec<(PathBuf, Option<SystemTime>)>,
) {
    let mut hup = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())
        .map_err(|e| tracing::warn!("cannot handle SIGHUP ({e}); reload on file change only"))
        .ok();
    let mut interval = tokio::time::interval(opts.watch_interval);
    loop {
        let why = tokio::select! {
            _ = hangup(&mut hup) => "SIGHUP",
            _ = interval.tick() => {
                let now: Vec<_> = seen.iter().map(|(p, _)| (p.clone(), std::fs::metadata(p).and_then(|m| m.modified()).ok())).collect();
                if now == seen {
                    continue;
                }
                seen = now;
                "a file changed"
            }
        };
        let (source, runtime2, policy) =
            (opts.source.clone(), runtime.clone(), opts.policy.clone());
        let built = tokio::task::spawn_blocking(move || {
            let manifest = load_manifest(&source)?;
            let app = App::build(&runtime2, &manifest, policy.as_ref())?;
            Ok::<_, Error>((manifest, app))
        })
        .await
        .unwrap_or_else(|e| Err(Error::host(format!("reload task failed: {e}"))));
        match built {
            Ok((manifest, app)) => {
                if manifest.server != settings {
                    eprintln!(
                        "reload: [server] settings change only on restart; keeping pool_size {}",
                        settings.pool_size
                    );
                }
                seen = watched(&opts.source, &manifest);
                shared.set_app(app);
                shared
                    .metrics
                    .reloads
                    .get_or_create(&ResultLabel {
                        result: "ok".into(),
                    })
                    .inc();
                eprintln!("reloaded ({why}): {} route(s)", manifest.routes.len());
            }
            Err(e) => {
                shared
                    .metrics
                    .reloads
                    .get_or_create(&ResultLabel {
                        result: "rejected".into(),
                    })
                    .inc();
                eprintln!("reload rejected ({why}), still serving the previous version: {e}");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(flavor = "current_thread")]
    async fn without_sighup_the_reload_loop_waits_for_file_changes() {
        // No SIGHUP handler: `hangup` never fires, so the loop's other
        // branch (file changes) keeps running instead of the loop ending.
        let mut none = None;
        let waited = tokio::time::timeout(Duration::from_millis(50), hangup(&mut none)).await;
        assert!(
            waited.is_err(),
            "hangup() must never resolve without a handler"
        );
    }
}
