//! Kubernetes validating admission over HTTPS: `wasmlayer policy webhook`.
//! Reviews are decided by a [`Policy`] of `wasmlayer-policy`; connections
//! are accepted and drained by `wasmlayer-server`, and TLS is rustls's.
//!
//! The API server POSTs an `AdmissionReview` (`admission.k8s.io/v1`) and
//! gets one back whose `response` says whether the object is allowed.
//!
//! # Input
//!
//! The policy's `input` is the AdmissionReview itself, with the request
//! copied under `review` as well, so both common styles work:
//!
//! ```json
//! {"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview",
//!  "request": {"uid": "...", "kind": {...}, "operation": "CREATE", "object": {...}, ...},
//!  "review":  {"uid": "...", "kind": {...}, "operation": "CREATE", "object": {...}, ...}}
//! ```
//!
//! - `input.request.object` (OPA kube-mgmt style),
//! - `input.review.object` (Gatekeeper style).
//!
//! # Decision
//!
//! Read from rules of one package (default `data.kubernetes.admission`):
//!
//! - `deny`: a set of strings, each a reason;
//! - `violation`: a set of objects `{"msg": ...}` (Gatekeeper style), each
//!   `msg` a reason;
//! - `allow` (optional): when the package has it and it is not `true`, and
//!   there is no reason, the request is denied with "denied by policy".
//!
//! A rule the package does not have contributes nothing, but the package
//! must have at least one of the three. Any reason denies the request, with
//! every reason in `status.message`, joined with `"; "`, and status code 403.
//! An evaluation error denies too (fail closed), with code 500 and the
//! message `policy error: ...`; the webhook configuration's `failurePolicy`
//! decides what the API server makes of a webhook it cannot reach at all.
//!
//! # Decision log
//!
//! One JSON line per decision: `time` (RFC 3339, UTC), `uid`, `kind`,
//! `namespace`, `name`, `operation`, `input_sha256` (of the input document
//! as evaluated, serialised as compact JSON), `allowed`, `code`, `reasons`,
//! `latency_us`, and `error` when evaluation failed.

use std::convert::Infallible;
use std::io::{IoSlice, Write};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant, SystemTime};

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::server::conn::http1;
use serde_json::{json, Value as Json};
use sha2::{Digest, Sha256};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream};
use wasmlayer_core::Error;
use wasmlayer_policy::{Input, Policy};
use wasmlayer_server::Stop;

/// The package decisions are read from unless told otherwise.
pub const DEFAULT_PACKAGE: &str = "data.kubernetes.admission";

/// Where the webhook listens unless told otherwise.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:8443";

/// The largest request body accepted: the API server sends at most 3 MiB.
pub const MAX_BODY: usize = 3 * 1024 * 1024;

/// How long a client has to complete the TLS handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// How to serve.
#[derive(Debug, Clone)]
pub struct WebhookOptions {
    pub listen: SocketAddr,
    /// PEM certificate chain, the server's certificate first.
    pub tls_cert: PathBuf,
    /// PEM private key (PKCS#8, PKCS#1 or SEC1).
    pub tls_key: PathBuf,
    /// The package holding `deny`, `violation` and `allow`: `data.a.b`, `a.b` or `a/b`.
    pub package: String,
    /// Append decision-log lines to this file instead of standard output.
    pub decision_log: Option<PathBuf>,
    /// How long open connections may take to finish on shutdown.
    pub drain_timeout: Duration,
}

impl Default for WebhookOptions {
    fn default() -> Self {
        WebhookOptions {
            listen: DEFAULT_LISTEN.parse().expect("a valid address"),
            tls_cert: PathBuf::new(),
            tls_key: PathBuf::new(),
            package: DEFAULT_PACKAGE.to_string(),
            decision_log: None,
            drain_timeout: Duration::from_secs(10),
        }
    }
}

/// The decision rules a policy has, as full paths (`data.pkg.rule`).
#[derive(Debug, Clone)]
pub struct Rules {
    pub package: String,
    pub deny: Option<String>,
    pub violation: Option<String>,
    pub allow: Option<String>,
}

impl Rules {
    /// Finds `deny`, `violation` and `allow` in `package`; an error when it
    /// has none of them.
    pub fn find(policy: &Policy, package: &str) -> Result<Rules, Error> {
        let package = wasmlayer_policy::native::normalize_entrypoint(package);
        let rule = |name: &str| {
            let path = format!("{package}.{name}");
            policy.has_entrypoint(&path).then_some(path)
        };
        let rules = Rules {
            deny: rule("deny"),
            violation: rule("violation"),
            allow: rule("allow"),
            package: package.clone(),
        };
        if rules.names().is_empty() {
            let known = match policy {
                Policy::Native(p) => format!("its packages: {}", p.packages().join(", ")),
                Policy::Wasm(p) => format!(
                    "its entrypoints: {}",
                    p.entrypoints()
                        .keys()
                        .cloned()
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            };
            return Err(Error::policy(format!(
                "the policy has no deny, violation or allow rule in package {package} ({known}); \
                 choose the package with --package"
            )));
        }
        Ok(rules)
    }

    /// The rules found, by name.
    pub fn names(&self) -> Vec<&'static str> {
        let mut out = Vec::new();
        if self.deny.is_some() {
            out.push("deny");
        }
        if self.violation.is_some() {
            out.push("violation");
        }
        if self.allow.is_some() {
            out.push("allow");
        }
        out
    }
}

/// The outcome of one review.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    pub allowed: bool,
    /// Why not, in the policy's words.
    pub reasons: Vec<String>,
    /// The evaluation error, when the policy failed (the request is denied).
    pub error: Option<String>,
}

impl Decision {
    /// A denial for an evaluation that failed with `error`.
    pub fn failed(error: String) -> Decision {
        Decision {
            allowed: false,
            reasons: Vec::new(),
            error: Some(error),
        }
    }

    /// The status code of a denial: 403 for the policy's, 500 for an error.
    pub fn code(&self) -> u16 {
        if self.error.is_some() {
            500
        } else if self.allowed {
            200
        } else {
            403
        }
    }

    /// The status message of a denial.
    pub fn message(&self) -> String {
        match &self.error {
            // On one line: the API server shows it to the user as is.
            Some(e) => format!(
                "policy error: {}",
                e.lines()
                    .map(str::trim)
                    .filter(|l| !l.is_empty())
                    .collect::<Vec<_>>()
                    .join(" ")
            ),
            None => self.reasons.join("; "),
        }
    }
}

/// Checks that `body` is an AdmissionReview v1 with a request and a uid;
/// the error says what is wrong, for an HTTP 400.
pub fn parse_review(body: &[u8]) -> Result<Json, String> {
    let review: Json =
        serde_json::from_slice(body).map_err(|e| format!("the body is not valid JSON: {e}"))?;
    let Some(obj) = review.as_object() else {
        return Err("not an AdmissionReview: the body is not a JSON object".into());
    };
    match obj.get("kind") {
        Some(Json::String(k)) if k == "AdmissionReview" => {}
        Some(other) => {
            return Err(format!(
                "not an AdmissionReview: kind is {other}, expected \"AdmissionReview\""
            ))
        }
        None => return Err("not an AdmissionReview: no kind".into()),
    }
    match obj.get("apiVersion") {
        Some(Json::String(v)) if v == "admission.k8s.io/v1" => {}
        Some(other) => {
            return Err(format!(
            "not an AdmissionReview v1: apiVersion is {other}, expected \"admission.k8s.io/v1\" \
                 (set admissionReviewVersions: [\"v1\"] in the webhook configuration)"
        ))
        }
        None => return Err("not an AdmissionReview v1: no apiVersion".into()),
    }
    let Some(request) = obj.get("request").and_then(Json::as_object) else {
        return Err("the AdmissionReview has no request object".into());
    };
    match request.get("uid") {
        Some(Json::String(uid)) if !uid.is_empty() => {}
        _ => return Err("the AdmissionReview request has no uid".into()),
    }
    Ok(review)
}

/// The policy's input: the AdmissionReview, with its request also under
/// `review`.
pub fn input_document(review: &Json) -> Json {
    let mut input = review.clone();
    if let Some(obj) = input.as_object_mut() {
        let request = obj.get("request").cloned().unwrap_or(Json::Null);
        obj.insert("review".to_string(), request);
    }
    input
}

/// Hex SHA-256 of the input document as evaluated (compact JSON).
pub fn input_sha256(input: &Input) -> String {
    hex::encode(Sha256::digest(input.text()))
}

/// Evaluates the decision rules on `input`. Never fails: an evaluation
/// error is a denial carrying the error. The input is serialised once, for
/// every rule (see [`Input`]).
pub fn decide(policy: &mut Policy, rules: &Rules, input: &Input) -> Decision {
    match try_decide(policy, rules, input) {
        Ok(d) => d,
        Err(e) => Decision::failed(e),
    }
}

/// [`decide`], with Rego source on the policy's worker thread: an
/// evaluation past the memory limit denies the request (with the error)
/// and the server goes on. The rules are evaluated in one hand-over.
pub fn decide_isolated(policy: &mut Policy, rules: &Rules, input: Arc<Input>) -> Decision {
    let rules = rules.clone();
    policy
        .isolated(move |p| decide(p, &rules, &input))
        .unwrap_or_else(|e| Decision::failed(wasmlayer_policy::native::describe(&e)))
}

fn try_decide(policy: &mut Policy, rules: &Rules, input: &Input) -> Result<Decision, String> {
    let mut eval = |rule: &str| -> Result<Option<Json>, String> {
        let set = policy
            .eval_input(Some(rule), Some(input))
            .map_err(|e| wasmlayer_policy::native::describe(&e))?;
        Ok(set.get(0).and_then(|r| r.get("result")).cloned())
    };
    let mut reasons = Vec::new();
    for rule in [&rules.deny, &rules.violation].into_iter().flatten() {
        if let Some(value) = eval(rule)? {
            collect_reasons(rule, &value, &mut reasons)?;
        }
    }
    let mut dedup = Vec::with_capacity(reasons.len());
    for r in reasons {
        if !dedup.contains(&r) {
            dedup.push(r);
        }
    }
    let reasons = dedup;
    if !reasons.is_empty() {
        return Ok(Decision {
            allowed: false,
            reasons,
            error: None,
        });
    }
    if let Some(allow) = &rules.allow {
        if eval(allow)? != Some(Json::Bool(true)) {
            return Ok(Decision {
                allowed: false,
                reasons: vec!["denied by policy".to_string()],
                error: None,
            });
        }
    }
    Ok(Decision {
        allowed: true,
        reasons: Vec::new(),
        error: None,
    })
}

/// Reasons from the value of `deny` or `violation`.
fn collect_reasons(rule: &str, value: &Json, out: &mut Vec<String>) -> Result<(), String> {
    let one = |item: &Json| -> Result<String, String> {
        match item {
            Json::String(s) => Ok(s.clone()),
            Json::Object(o) => match o.get("msg") {
                Some(Json::String(s)) => Ok(s.clone()),
                Some(other) => Ok(other.to_string()),
                None => Ok(item.to_string()),
            },
            other => Ok(other.to_string()),
        }
    };
    match value {
        Json::Array(items) => {
            for item in items {
                out.push(one(item)?);
            }
        }
        Json::String(_) => out.push(one(value)?),
        Json::Object(o) if o.contains_key("msg") => out.push(one(value)?),
        Json::Bool(true) => out.push(format!("denied by policy ({rule})")),
        Json::Bool(false) | Json::Null => {}
        other => {
            return Err(format!(
                "{rule} must be a set of strings or of {{\"msg\": ...}} objects, not {other}"
            ))
        }
    }
    Ok(())
}

/// The AdmissionReview answering the request `uid`.
pub fn response(uid: &str, decision: &Decision) -> Json {
    let mut resp = json!({ "uid": uid, "allowed": decision.allowed });
    if !decision.allowed {
        resp["status"] = json!({ "code": decision.code(), "message": decision.message() });
    }
    json!({
        "apiVersion": "admission.k8s.io/v1",
        "kind": "AdmissionReview",
        "response": resp,
    })
}

/// Loads the certificate chain and key into a server configuration
/// (HTTP/1.1, TLS 1.2 and 1.3, the ring provider).
pub fn tls_config(cert: &Path, key: &Path) -> Result<Arc<rustls::ServerConfig>, Error> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};

    let read = |path: &Path, what: &str| {
        std::fs::read(path)
            .map_err(|e| Error::usage(format!("TLS {what} {}: cannot read: {e}", path.display())))
    };
    let cert_pem = read(cert, "certificate")?;
    let certs = CertificateDer::pem_slice_iter(&cert_pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| {
            Error::usage(format!(
                "TLS certificate {}: not valid PEM: {e}",
                cert.display()
            ))
        })?;
    if certs.is_empty() {
        return Err(Error::usage(format!(
            "TLS certificate {}: no PEM certificate (-----BEGIN CERTIFICATE-----) in the file",
            cert.display()
        )));
    }
    let key_pem = read(key, "key")?;
    let key_der = PrivateKeyDer::from_pem_slice(&key_pem).map_err(|e| match e {
        rustls::pki_types::pem::Error::NoItemsFound => Error::usage(format!(
            "TLS key {}: no PEM private key (PKCS#8, PKCS#1 or SEC1) in the file",
            key.display()
        )),
        e => Error::usage(format!("TLS key {}: not valid PEM: {e}", key.display())),
    })?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| Error::host(format!("TLS setup: {e}")))?
        .with_no_client_auth()
        .with_single_cert(certs, key_der)
        .map_err(|e| match e {
            rustls::Error::InconsistentKeys(_) => Error::usage(format!(
                "TLS key {} does not belong to the certificate {}",
                key.display(),
                cert.display()
            )),
            e => Error::usage(format!(
                "TLS certificate {} and key {}: {e}",
                cert.display(),
                key.display()
            )),
        })?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// Where decision-log lines go.
struct DecisionLog {
    out: Mutex<Box<dyn Write + Send>>,
    what: String,
}

impl DecisionLog {
    fn open(path: Option<&Path>) -> Result<DecisionLog, Error> {
        match path {
            None => Ok(DecisionLog {
                out: Mutex::new(Box::new(std::io::stdout())),
                what: "standard output".into(),
            }),
            Some(p) if p == Path::new("-") => DecisionLog::open(None),
            Some(p) => {
                let file = std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(p)
                    .map_err(|e| {
                        Error::usage(format!("decision log {}: cannot open: {e}", p.display()))
                    })?;
                Ok(DecisionLog {
                    out: Mutex::new(Box::new(file)),
                    what: p.display().to_string(),
                })
            }
        }
    }

    fn write(&self, line: &Json) {
        let mut text = serde_json::to_string(line).expect("JSON values serialise");
        text.push('\n');
        let mut out = self.out.lock().unwrap_or_else(|p| p.into_inner());
        if let Err(e) = out.write_all(text.as_bytes()).and_then(|()| out.flush()) {
            eprintln!(
                "webhook: cannot write the decision log ({}): {e}",
                self.what
            );
        }
    }
}

struct State {
    policy: Mutex<Policy>,
    rules: Rules,
    log: DecisionLog,
}

/// Serves until SIGTERM or SIGINT; returns the exit code. Everything that
/// can be wrong with the configuration (policy rules, certificate, key,
/// decision log, address) is reported before listening.
pub fn serve(policy: Policy, opts: WebhookOptions) -> Result<i32, Error> {
    let rules = Rules::find(&policy, &opts.package)?;
    let tls = tls_config(&opts.tls_cert, &opts.tls_key)?;
    let log = DecisionLog::open(opts.decision_log.as_deref())?;
    let state = Arc::new(State {
        policy: Mutex::new(policy),
        rules,
        log,
    });
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| Error::host(format!("cannot start the async runtime: {e}")))?;
    rt.block_on(run(state, tls, opts))
}

async fn run(
    state: Arc<State>,
    tls: Arc<rustls::ServerConfig>,
    opts: WebhookOptions,
) -> Result<i32, Error> {
    let listener = TcpListener::bind(opts.listen)
        .await
        .map_err(|e| Error::host(format!("cannot listen on {}: {e}", opts.listen)))?;
    let local = listener
        .local_addr()
        .map_err(|e| Error::host(e.to_string()))?;
    let acceptor = tokio_rustls::TlsAcceptor::from(tls);
    let shutdown = wasmlayer_server::shutdown_signal()
        .map_err(|e| Error::host(format!("cannot handle SIGTERM: {e}")))?;
    eprintln!(
        "webhook policy: {} ({})",
        state.rules.package,
        state.rules.names().join(", ")
    );
    eprintln!("webhook listening on https://{local}");

    wasmlayer_server::serve(
        listener,
        shutdown,
        opts.drain_timeout,
        &Draining,
        |stream, stop| connection(stream, acceptor.clone(), state.clone(), stop),
    )
    .await;
    eprintln!("webhook stopped");
    Ok(0)
}

/// The log lines of a drain.
struct Draining;

impl wasmlayer_server::Events for Draining {
    fn draining(&self, open: usize, timeout: Duration) {
        eprintln!("webhook stopping: draining {open} connection(s) (up to {timeout:?})");
    }

    fn deadline_passed(&self, open: usize) {
        eprintln!("webhook: drain deadline passed with {open} connection(s) open");
    }
}

/// A plain-HTTP client on the HTTPS port gets a readable answer instead
/// of TLS garbage.
const PLAIN_HTTP_ANSWER: &[u8] = b"HTTP/1.1 400 Bad Request\r\nContent-Type: text/plain\r\n\
Connection: close\r\nContent-Length: 50\r\n\r\nthis port speaks HTTPS; send the request over TLS\n";

async fn connection(
    stream: TcpStream,
    acceptor: tokio_rustls::TlsAcceptor,
    state: Arc<State>,
    mut stop: Stop,
) {
    // A TLS connection starts with a handshake record (0x16).
    let mut first = [0u8; 1];
    match tokio::time::timeout(HANDSHAKE_TIMEOUT, stream.peek(&mut first)).await {
        Ok(Ok(1)) if first[0] != 0x16 => {
            use tokio::io::AsyncWriteExt;
            let mut stream = stream;
            let _ = stream.write_all(PLAIN_HTTP_ANSWER).await;
            let _ = stream.shutdown().await;
            return;
        }
        Ok(Ok(1)) => {}
        _ => return,
    }
    let tls = match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await {
        Ok(Ok(tls)) => tls,
        Ok(Err(e)) => {
            tracing::debug!("TLS handshake failed: {e}");
            return;
        }
        Err(_) => {
            tracing::debug!("TLS handshake timed out");
            return;
        }
    };
    let service = hyper::service::service_fn(move |req| handle(req, state.clone()));
    let conn = http1::Builder::new()
        .keep_alive(true)
        .serve_connection(Io(tls), service);
    tokio::pin!(conn);
    tokio::select! {
        r = conn.as_mut() => {
            if let Err(e) = r {
                tracing::debug!("connection ended: {e}");
            }
        }
        () = stop.requested() => {
            conn.as_mut().graceful_shutdown();
            let _ = conn.await;
        }
    }
}

type Response = http::Response<Full<Bytes>>;

fn plain(status: u16, text: impl Into<String>) -> Response {
    let mut text = text.into();
    if !text.ends_with('\n') {
        text.push('\n');
    }
    http::Response::builder()
        .status(status)
        .header(http::header::CONTENT_TYPE, "text/plain; charset=utf-8")
        .body(Full::new(Bytes::from(text)))
        .expect("a valid response")
}

async fn handle(
    req: http::Request<hyper::body::Incoming>,
    state: Arc<State>,
) -> Result<Response, Infallible> {
    let start = Instant::now();
    let path = req.uri().path();
    let method = req.method();
    let health = path == "/healthz" || path == "/readyz";
    if health && (method == http::Method::GET || method == http::Method::HEAD) {
        // Evaluations stopped past their limits hold their threads; once
        // too many do, no more are started and the server asks to be
        // restarted (a liveness probe on /healthz does it).
        if let Some(reason) = wasmlayer_policy::memory::saturated() {
            return Ok(plain(503, reason));
        }
        return Ok(plain(200, "ok"));
    }
    if method != http::Method::POST {
        let mut r = plain(
            405,
            "method not allowed: POST an AdmissionReview (GET /healthz for health)",
        );
        r.headers_mut().insert(
            http::header::ALLOW,
            http::HeaderValue::from_static(if health { "GET, HEAD" } else { "POST" }),
        );
        return Ok(r);
    }
    Ok(review(req, state, start).await)
}

async fn review(
    req: http::Request<hyper::body::Incoming>,
    state: Arc<State>,
    start: Instant,
) -> Response {
    if let Some(ct) = req.headers().get(http::header::CONTENT_TYPE) {
        let essence = ct
            .to_str()
            .unwrap_or("")
            .split(';')
            .next()
            .unwrap_or("")
            .trim()
            .to_ascii_lowercase();
        if essence != "application/json" {
            return plain(
                415,
                format!(
                    "unsupported content type {:?}: send the AdmissionReview as application/json",
                    ct.to_str().unwrap_or("?")
                ),
            );
        }
    }
    let declared = req
        .headers()
        .get(http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    let too_large = || {
        plain(
            413,
            format!("the request body is larger than {MAX_BODY} bytes"),
        )
    };
    if declared.is_some_and(|n| n > MAX_BODY as u64) {
        return too_large();
    }
    let body = match Limited::new(req.into_body(), MAX_BODY).collect().await {
        Ok(b) => b.to_bytes(),
        Err(e)
            if e.downcast_ref::<http_body_util::LengthLimitError>()
                .is_some() =>
        {
            return too_large()
        }
        Err(e) => return plain(400, format!("cannot read the request body: {e}")),
    };
    let review = match parse_review(&body) {
        Ok(r) => r,
        Err(msg) => {
            tracing::info!("rejected a malformed admission request: {msg}");
            return plain(400, msg);
        }
    };
    let input = Input::new(input_document(&review));
    let sha = input_sha256(&input);

    let worker = state.clone();
    let input = Arc::new(input);
    let evaluated = input.clone();
    let decision = tokio::task::spawn_blocking(move || {
        let mut policy = worker.policy.lock().unwrap_or_else(|p| p.into_inner());
        decide_isolated(&mut policy, &worker.rules, evaluated)
    })
    .await
    .unwrap_or_else(|e| Decision {
        allowed: false,
        reasons: Vec::new(),
        error: Some(format!("the evaluation did not complete: {e}")),
    });
    let latency = start.elapsed();

    let request = &review["request"];
    let uid = request["uid"].as_str().unwrap_or_default();
    let object = if request["object"].is_object() {
        &request["object"]
    } else {
        &request["oldObject"]
    };
    let text = |v: &Json| v.as_str().filter(|s| !s.is_empty()).map(str::to_string);
    let namespace = text(&request["namespace"]).or_else(|| text(&object["metadata"]["namespace"]));
    let name = text(&request["name"])
        .or_else(|| text(&object["metadata"]["name"]))
        .or_else(|| text(&object["metadata"]["generateName"]));
    let mut line = json!({
        "time": rfc3339(SystemTime::now()),
        "uid": uid,
        "kind": request["kind"]["kind"],
        "namespace": namespace,
        "name": name,
        "operation": request["operation"],
        "input_sha256": sha,
        "allowed": decision.allowed,
        "code": decision.code(),
        "reasons": decision.reasons,
        "latency_us": latency.as_micros() as u64,
    });
    if let Some(e) = &decision.error {
        line["error"] = Json::String(e.clone());
        eprintln!("webhook: policy error for request {uid} (denied): {e}");
    }
    state.log.write(&line);

    let body = serde_json::to_vec(&response(uid, &decision)).expect("JSON values serialise");
    http::Response::builder()
        .status(200)
        .header(http::header::CONTENT_TYPE, "application/json")
        .body(Full::new(Bytes::from(body)))
        .expect("a valid response")
}

/// `2024-05-01T12:34:56.789012Z`.
pub fn rfc3339(t: SystemTime) -> String {
    let d = t.duration_since(SystemTime::UNIX_EPOCH).unwrap_or_default();
    let secs = d.as_secs() as i64;
    let (days, sod) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    let (y, m, day) = civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{day:02}T{:02}:{:02}:{:02}.{:06}Z",
        sod / 3600,
        sod % 3600 / 60,
        sod % 60,
        d.subsec_micros()
    )
}

/// (year, month, day) of a day count since 1970-01-01, proleptic Gregorian.
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

/// A tokio stream as hyper's I/O.
struct Io<T>(T);

impl<T: AsyncRead + Unpin> hyper::rt::Read for Io<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        mut buf: hyper::rt::ReadBufCursor<'_>,
    ) -> Poll<std::io::Result<()>> {
        let mut chunk = [0u8; 16 * 1024];
        let n = buf.remaining().min(chunk.len());
        let mut read = tokio::io::ReadBuf::new(&mut chunk[..n]);
        match Pin::new(&mut self.0).poll_read(cx, &mut read) {
            Poll::Ready(Ok(())) => {
                buf.put_slice(read.filled());
                Poll::Ready(Ok(()))
            }
            other => other,
        }
    }
}

impl<T: AsyncWrite + Unpin> hyper::rt::Write for Io<T> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.0).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.0).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.0).poll_shutdown(cx)
    }

    fn is_write_vectored(&self) -> bool {
        self.0.is_write_vectored()
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.0).poll_write_vectored(cx, bufs)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates() {
        let at = |s: u64| rfc3339(SystemTime::UNIX_EPOCH + Duration::from_secs(s));
        assert_eq!(at(0), "1970-01-01T00:00:00.000000Z");
        assert_eq!(at(951_782_400), "2000-02-29T00:00:00.000000Z");
        assert_eq!(at(1_709_251_199), "2024-02-29T23:59:59.000000Z");
        assert_eq!(at(4_102_444_800), "2100-01-01T00:00:00.000000Z");
    }

    #[test]
    fn reviews() {
        assert!(parse_review(b"{").unwrap_err().contains("not valid JSON"));
        assert!(parse_review(b"[]")
            .unwrap_err()
            .contains("not a JSON object"));
        assert!(parse_review(br#"{"kind":"Pod"}"#)
            .unwrap_err()
            .contains("kind is \"Pod\""));
        let v1beta1 = br#"{"kind":"AdmissionReview","apiVersion":"admission.k8s.io/v1beta1","request":{"uid":"a"}}"#;
        assert!(parse_review(v1beta1).unwrap_err().contains("v1"));
        let no_uid =
            br#"{"kind":"AdmissionReview","apiVersion":"admission.k8s.io/v1","request":{}}"#;
        assert!(parse_review(no_uid).unwrap_err().contains("uid"));
        let ok = br#"{"kind":"AdmissionReview","apiVersion":"admission.k8s.io/v1","request":{"uid":"a","object":{"x":1}}}"#;
        let review = parse_review(ok).unwrap();
        let input = input_document(&review);
        assert_eq!(input["review"]["object"]["x"], 1);
        assert_eq!(input["request"]["object"]["x"], 1);
    }

    #[test]
    fn reasons() {
        let mut out = Vec::new();
        collect_reasons(
            "deny",
            &json!(["a", {"msg": "b"}, {"msg": "b2", "details": {}}]),
            &mut out,
        )
        .unwrap();
        collect_reasons("deny", &json!(false), &mut out).unwrap();
        assert_eq!(out, ["a", "b", "b2"]);
        assert!(collect_reasons("deny", &json!(3), &mut out).is_err());
    }

    #[test]
    fn responses() {
        let denied = Decision {
            allowed: false,
            reasons: vec!["x".into(), "y".into()],
            error: None,
        };
        let r = response("u", &denied);
        assert_eq!(r["response"]["uid"], "u");
        assert_eq!(r["response"]["status"]["code"], 403);
        assert_eq!(r["response"]["status"]["message"], "x; y");
        let failed = Decision {
            allowed: false,
            reasons: vec![],
            error: Some("boom".into()),
        };
        assert_eq!(response("u", &failed)["response"]["status"]["code"], 500);
        let allowed = Decision {
            allowed: true,
            reasons: vec![],
            error: None,
        };
        assert!(response("u", &allowed)["response"].get("status").is_none());
    }
}
