//! The HTTP server: listener, admission of requests into the instance pool,
//! the admin endpoints, hot reload and draining.

use crate::app::{handle, plain, App, Body, Record};
use crate::manifest::{Manifest, ServerSettings};
use crate::metrics::{Metrics, ResultLabel};
use hyper::server::conn::http1;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant, SystemTime};
use tokio::net::TcpListener;
use tokio::sync::{watch, Semaphore};
use wasmlayer_core::runtime::{EngineOptions, PoolingOptions};
use wasmlayer_core::{Error, Result, Runtime};
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
}

/// Epoch tick: the granularity of timeouts and of yielding to other requests.
const TICK: Duration = Duration::from_millis(10);

struct Shared {
    app: RwLock<Arc<App>>,
    pool: Arc<Semaphore>,
    metrics: Arc<Metrics>,
    draining: AtomicBool,
    engines: Mutex<Vec<wasmtime::Engine>>,
}

impl Shared {
    fn app(&self) -> Arc<App> {
        self.app.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    fn set_app(&self, app: App) {
        let mut engines = self.engines.lock().unwrap_or_else(|p| p.into_inner());
        for e in app.engines() {
            if !engines.iter().any(|x| wasmtime::Engine::same(x, &e)) {
                engines.push(e);
            }
        }
        *self.app.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(app);
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

fn runtime(settings: &ServerSettings, opts: &ServeOptions) -> Result<Runtime> {
    let pooling = PoolingOptions {
        total_instances: settings.pool_size,
        max_memory_size: settings.max_instance_memory as usize,
        slots_per_instance: 4,
        compact_memory: true,
    };
    Runtime::builder()
        .engine_options(EngineOptions {
            fuel: true,
            pooling: Some(pooling),
        })
        .cache_dir(opts.cache_dir.clone())
        .cache(opts.cache)
        .admission(opts.admission.clone())
        .build()
}

/// Runs the server until SIGTERM or SIGINT; returns the exit code.
pub fn serve(opts: ServeOptions) -> Result<i32> {
    let manifest = load_manifest(&opts.source)?;
    let settings = manifest.server.clone();
    let runtime = Arc::new(runtime(&settings, &opts)?);
    let app = App::build(&runtime, &manifest)?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| Error::host(format!("cannot start the async runtime: {e}")))?;
    rt.block_on(run(opts, manifest, settings, runtime, app))
}

async fn run(
    opts: ServeOptions,
    manifest: Manifest,
    settings: ServerSettings,
    runtime: Arc<Runtime>,
    app: App,
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
    let shared = Arc::new(Shared {
        app: RwLock::new(Arc::new(App { routes: Vec::new() })),
        pool: Arc::new(Semaphore::new(settings.pool_size as usize)),
        metrics: Arc::new(Metrics::new()),
        draining: AtomicBool::new(false),
        engines: Mutex::new(Vec::new()),
    });
    shared.set_app(app);

    let local = listener
        .local_addr()
        .map_err(|e| Error::host(e.to_string()))?;
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

    // Epoch ticks for deadlines and fair scheduling, for the process's life.
    let ticking = shared.clone();
    std::thread::spawn(move || loop {
        std::thread::sleep(TICK);
        for e in ticking
            .engines
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
        {
            e.increment_epoch();
        }
    });

    if let Some(admin) = admin {
        tokio::spawn(admin_loop(admin, shared.clone()));
    }
    tokio::spawn(reload_loop(
        opts.clone(),
        settings.clone(),
        runtime,
        shared.clone(),
        watched(&opts.source, &manifest),
    ));

    let (stop_tx, stop_rx) = watch::channel(false);
    let mut connections = tokio::task::JoinSet::new();
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .map_err(|e| Error::host(format!("cannot handle SIGTERM: {e}")))?;
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let stream = match accepted {
                    Ok((stream, _)) => stream,
                    Err(e) => {
                        // Out of file descriptors, most likely: back off
                        // instead of spinning, and keep serving open ones.
                        tracing::warn!("cannot accept a connection: {e}");
                        tokio::time::sleep(Duration::from_millis(20)).await;
                        continue;
                    }
                };
                let _ = stream.set_nodelay(true);
                connections.spawn(connection(stream, shared.clone(), stop_rx.clone()));
            }
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
            _ = term.recv() => break,
            _ = tokio::signal::ctrl_c() => break,
        }
    }

    // Drain: no new connections, open ones finish their in-flight requests.
    shared.draining.store(true, Ordering::SeqCst);
    drop(listener);
    let in_flight = connections.len();
    eprintln!(
        "draining {in_flight} connection(s) (up to {:?})",
        opts.drain_timeout
    );
    let _ = stop_tx.send(true);
    let drained = tokio::time::timeout(opts.drain_timeout, async {
        while connections.join_next().await.is_some() {}
    })
    .await;
    match drained {
        Ok(()) => eprintln!("drained; exiting"),
        Err(_) => {
            eprintln!(
                "drain deadline passed with {} connection(s) open; exiting",
                connections.len()
            );
            connections.abort_all();
        }
    }
    Ok(0)
}

async fn connection(
    stream: tokio::net::TcpStream,
    shared: Arc<Shared>,
    mut stop: watch::Receiver<bool>,
) {
    let service = hyper::service::service_fn(move |req| dispatch(req, shared.clone()));
    // Half-close allowed: hyper does not read ahead on a connection whose
    // request is in flight (to notice the client leaving), which would pin a
    // second read buffer per held request. The guest runs to its response or
    // deadline either way.
    let conn = http1::Builder::new()
        .keep_alive(true)
        .half_close(true)
        .serve_connection(TokioIo::new(stream), service);
    tokio::pin!(conn);
    tokio::select! {
        r = conn.as_mut() => {
            if let Err(e) = r {
                tracing::debug!("connection ended: {e}");
            }
        }
        _ = stop.changed() => {
            conn.as_mut().graceful_shutdown();
            let _ = conn.await;
        }
    }
}

async fn dispatch(
    req: http::Request<hyper::body::Incoming>,
    shared: Arc<Shared>,
) -> Result<http::Response<Body>, std::convert::Infallible> {
    let app = shared.app();
    // Refusals before any instance is involved still get an access-log line.
    let refuse = |route: &str, reason: &str, status: u16| {
        shared
            .metrics
            .rejected
            .get_or_create(&ResultLabel {
                result: reason.into(),
            })
            .inc();
        let path = req
            .uri()
            .path_and_query()
            .map(|p| p.as_str())
            .unwrap_or("/");
        let record = Record::new(
            route.into(),
            req.method(),
            path,
            Instant::now(),
            shared.metrics.clone(),
        );
        record.status(status);
        record.error(reason.to_string());
    };
    let Some(route) = app.route_for(req.uri().path()) else {
        refuse("-", "no-route", 404);
        return Ok(plain(404, format!("no route for {}", req.uri().path())));
    };
    let Ok(permit) = shared.pool.clone().try_acquire_owned() else {
        tracing::warn!(route = %route.name, "at capacity: every instance is busy");
        refuse(&route.name, "at-capacity", 503);
        let mut r = plain(503, "at capacity, retry shortly");
        r.headers_mut().insert(
            http::header::RETRY_AFTER,
            http::HeaderValue::from_static("1"),
        );
        return Ok(r);
    };
    Ok(handle(route, req, permit, shared.metrics.clone()).await)
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
                                let mut r = plain(200, shared.metrics.encode());
                                r.headers_mut().insert(
                                http::header::CONTENT_TYPE,
                                http::HeaderValue::from_static("application/openmetrics-text; version=1.0.0; charset=utf-8"),
                            );
                                r
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
    let Ok(mut hup) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()) else {
        tracing::warn!("cannot handle SIGHUP; reload on file change only");
        return;
    };
    let mut interval = tokio::time::interval(opts.watch_interval);
    loop {
        let why = tokio::select! {
            _ = hup.recv() => "SIGHUP",
            _ = interval.tick() => {
                let now: Vec<_> = seen.iter().map(|(p, _)| (p.clone(), std::fs::metadata(p).and_then(|m| m.modified()).ok())).collect();
                if now == seen {
                    continue;
                }
                seen = now;
                "a file changed"
            }
        };
        let (source, runtime2) = (opts.source.clone(), runtime.clone());
        let built = tokio::task::spawn_blocking(move || {
            let manifest = load_manifest(&source)?;
            let app = App::build(&runtime2, &manifest)?;
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
