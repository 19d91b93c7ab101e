//! The app manifest (`wasmlayer.toml`): routes mapped to components, each
//! with its own capabilities and limits.
//!
//! ```toml
//! [server]
//! listen = "127.0.0.1:8080"    # unless --listen is given
//! admin = "127.0.0.1:9090"     # unless --admin is given
//! pool_size = 1000            # instances alive at once (default 1000)
//! max_instance_memory = "64MiB"
//!
//! [[route]]
//! path = "/hello"              # path prefix; the longest match wins
//! component = "hello.wasm"     # relative to this file
//! # Grants: the keys of a capability file (`run --caps`), one schema.
//! env = { GREETING = "Hi" }
//! inherit_env = ["HOME"]       # the host's values, when set
//! dirs_ro = ["static::/static"]
//! dirs = ["scratch::/tmp"]     # read-write (HOST::GUEST:ro is read-only)
//! dir = [{ host = "data", guest = "/data", read_only = true }]
//! allow_http = ["127.0.0.1:9000", "api.example.com"]
//! # Limits and serving:
//! max_memory = "32MiB"
//! fuel = 100000000
//! timeout = "2s"
//! max_body = "1MiB"
//! reuse = 1                    # WASI 0.3 only: requests per instance (default 1)
//! concurrent_reuse = 1         # WASI 0.3 only: requests one instance takes at once
//! ```

use serde::Deserialize;
use std::path::{Path, PathBuf};
use std::time::Duration;
use wasmlayer_core::limits::{parse_duration, parse_size};
use wasmlayer_core::{Capabilities, Error, Limits, Result};

/// Default cap on a request body.
pub const DEFAULT_MAX_BODY: u64 = 10 << 20;
/// Default per-request wall-clock limit.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);
/// Default number of instances alive at once.
pub const DEFAULT_POOL_SIZE: u32 = 1000;
/// Default largest linear memory of one instance.
pub const DEFAULT_INSTANCE_MEMORY: u64 = 64 << 20;
/// Default time a client has to send a request's headers (also how long an
/// idle keep-alive connection stays open).
pub const DEFAULT_HEADER_TIMEOUT: Duration = Duration::from_secs(10);
/// Default time a client has to send a request's body, from its headers on.
pub const DEFAULT_BODY_TIMEOUT: Duration = Duration::from_secs(30);

/// Server-wide settings, fixed when the server starts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerSettings {
    pub pool_size: u32,
    pub max_instance_memory: u64,
    /// Where to serve, when no `--listen` is given.
    pub listen: Option<std::net::SocketAddr>,
    /// Where to serve metrics and health, when no `--admin` is given.
    pub admin: Option<std::net::SocketAddr>,
    /// Time to receive a request's headers; past it: 408 and the connection closes.
    pub header_timeout: Duration,
    /// Time to receive a request's body; past it: 408. No instance is taken
    /// before the body is in.
    pub body_timeout: Duration,
}

impl Default for ServerSettings {
    fn default() -> Self {
        ServerSettings {
            pool_size: DEFAULT_POOL_SIZE,
            max_instance_memory: DEFAULT_INSTANCE_MEMORY,
            listen: None,
            admin: None,
            header_timeout: DEFAULT_HEADER_TIMEOUT,
            body_timeout: DEFAULT_BODY_TIMEOUT,
        }
    }
}

/// One route: which component answers which paths, with what.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouteSpec {
    /// Path prefix, starting with `/`.
    pub path: String,
    pub component: PathBuf,
    /// The route's grants, outbound HTTP allowlist included.
    pub caps: Capabilities,
    pub limits: Limits,
    pub max_body: u64,
    /// Requests one instance serves before it is dropped (WASI 0.3
    /// components only; 1: a fresh instance per request).
    pub reuse: u32,
    /// Requests one instance serves at once (WASI 0.3 components only).
    pub concurrent_reuse: u32,
}

impl RouteSpec {
    /// A route for `component` at `/` with nothing granted and default limits.
    pub fn new(path: &str, component: PathBuf) -> Self {
        RouteSpec {
            path: path.to_string(),
            component,
            caps: Capabilities {
                inherit_stdio: false,
                ..Capabilities::default()
            },
            limits: Limits {
                timeout: Some(DEFAULT_TIMEOUT),
                ..Limits::default()
            },
            max_body: DEFAULT_MAX_BODY,
            reuse: 1,
            concurrent_reuse: 1,
        }
    }

    /// Whether this route serves `path`: equal, or a prefix ending at a `/`.
    pub fn matches(&self, path: &str) -> bool {
        let prefix = self.path.trim_end_matches('/');
        prefix.is_empty()
            || path == prefix
            || (path.starts_with(prefix) && path.as_bytes().get(prefix.len()) == Some(&b'/'))
    }
}

/// A parsed manifest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Manifest {
    pub server: ServerSettings,
    /// Capability policy (package `wasmlayer.admission`) every route's
    /// grants go through; empty: the server's own admission.
    pub policy: Vec<PathBuf>,
    /// Routes, longest prefix first.
    pub routes: Vec<RouteSpec>,
}

impl Manifest {
    /// One component on `/`.
    pub fn single(route: RouteSpec, server: ServerSettings) -> Self {
        Manifest {
            server,
            policy: Vec::new(),
            routes: vec![route],
        }
    }

    pub fn from_file(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(|e| match e.kind() {
            // A file that is not text is a bad manifest, not a host failure.
            std::io::ErrorKind::InvalidData => Error::usage(format!(
                "{}: not a manifest: the file is not UTF-8 text",
                path.display()
            )),
            _ => Error::io(path, e),
        })?;
        let base = path.parent().unwrap_or(Path::new("."));
        Self::from_str(&text, base).map_err(|e| Error::usage(format!("{}: {e}", path.display())))
    }

    /// Parses manifest text; relative paths are relative to `base`.
    pub fn from_str(text: &str, base: &Path) -> Result<Self, String> {
        let raw: RawManifest = toml::from_str(text).map_err(|e| e.to_string())?;
        let server = match raw.server {
            None => ServerSettings::default(),
            Some(s) => ServerSettings {
                pool_size: s.pool_size.unwrap_or(DEFAULT_POOL_SIZE),
                max_instance_memory: match s.max_instance_memory {
                    Some(m) => parse_size(&m)?,
                    None => DEFAULT_INSTANCE_MEMORY,
                },
                listen: s
                    .listen
                    .map(|a| a.parse().map_err(|e| format!("server.listen `{a}`: {e}")))
                    .transpose()?,
                admin: s
                    .admin
                    .map(|a| a.parse().map_err(|e| format!("server.admin `{a}`: {e}")))
                    .transpose()?,
                header_timeout: match s.header_timeout {
                    Some(t) => parse_timeout("server.header_timeout", &t)?,
                    None => DEFAULT_HEADER_TIMEOUT,
                },
                body_timeout: match s.body_timeout {
                    Some(t) => parse_timeout("server.body_timeout", &t)?,
                    None => DEFAULT_BODY_TIMEOUT,
                },
            },
        };
        if server.pool_size == 0 {
            return Err("server.pool_size must be at least 1".into());
        }
        if raw.route.is_empty() {
            return Err("the manifest has no [[route]]".into());
        }
        let mut routes = Vec::new();
        for r in raw.route {
            if !r.path.starts_with('/') {
                return Err(format!("route path `{}` must start with `/`", r.path));
            }
            if routes
                .iter()
                .any(|o: &RouteSpec| o.path.trim_end_matches('/') == r.path.trim_end_matches('/'))
            {
                return Err(format!("route path `{}` appears twice", r.path));
            }
            let mut spec = RouteSpec::new(&r.path, base.join(&r.component));
            if r.grants.contains_key("inherit_stdio") {
                return Err(format!(
                    "route `{}`: inherit_stdio does not apply to a route: its stdout and stderr go to the server's stderr, and it has no stdin",
                    r.path
                ));
            }
            let mut caps = Capabilities::from_toml_table(r.grants)
                .map_err(|e| format!("route `{}`: {e}", r.path))?;
            caps.inherit_stdio = false;
            caps.rebase_dirs(base);
            caps.resolve_dirs().map_err(|e| e.to_string())?;
            spec.caps = caps;
            if let Some(m) = &r.max_memory {
                spec.limits.max_memory = Some(parse_size(m)?);
            }
            spec.limits.fuel = r.fuel;
            if let Some(t) = &r.timeout {
                let t = parse_duration(t)?;
                wasmlayer_core::limits::check_timeout(t)
                    .map_err(|e| format!("route `{}`: timeout: {e}", r.path))?;
                spec.limits.timeout = Some(t);
            }
            if let Some(b) = &r.max_body {
                spec.max_body = parse_size(b)?;
            }
            spec.reuse = check_reuse(&r.path, "reuse", r.reuse)?;
            spec.concurrent_reuse = check_reuse(&r.path, "concurrent_reuse", r.concurrent_reuse)?;
            if spec
                .limits
                .max_memory
                .is_some_and(|m| m > server.max_instance_memory)
            {
                return Err(format!(
                    "route `{}`: max_memory is above server.max_instance_memory ({})",
                    r.path,
                    wasmlayer_core::limits::format_size(server.max_instance_memory)
                ));
            }
            routes.push(spec);
        }
        sort_routes(&mut routes);
        let policy = match raw.policy {
            None => Vec::new(),
            Some(OneOrMany::One(p)) => vec![base.join(p)],
            Some(OneOrMany::Many(ps)) => ps.into_iter().map(|p| base.join(p)).collect(),
        };
        Ok(Manifest {
            server,
            policy,
            routes,
        })
    }
}

/// A server-wide deadline: at least a millisecond, at most a day.
pub fn parse_timeout(what: &str, text: &str) -> Result<Duration, String> {
    let d = parse_duration(text).map_err(|e| format!("{what}: {e}"))?;
    if d < Duration::from_millis(1) || d > Duration::from_secs(86_400) {
        return Err(format!("{what}: `{text}` is out of range (1ms to 24h)"));
    }
    Ok(d)
}

/// Longest prefix first, so the first match is the longest.
pub fn sort_routes(routes: &mut [RouteSpec]) {
    routes.sort_by_key(|r| std::cmp::Reverse(r.path.trim_end_matches('/').len()));
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawManifest {
    server: Option<RawServer>,
    policy: Option<OneOrMany>,
    #[serde(default)]
    route: Vec<RawRoute>,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum OneOrMany {
    One(PathBuf),
    Many(Vec<PathBuf>),
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawServer {
    pool_size: Option<u32>,
    max_instance_memory: Option<String>,
    listen: Option<String>,
    admin: Option<String>,
    header_timeout: Option<String>,
    body_timeout: Option<String>,
}

#[derive(Deserialize)]
struct RawRoute {
    path: String,
    component: PathBuf,
    max_memory: Option<String>,
    fuel: Option<u64>,
    timeout: Option<String>,
    max_body: Option<String>,
    reuse: Option<u32>,
    concurrent_reuse: Option<u32>,
    /// Every other key is a grant, parsed as a capability file is.
    #[serde(flatten)]
    grants: toml::Table,
}

/// A reuse count: at least 1 (the default).
pub fn check_reuse(route: &str, key: &str, value: Option<u32>) -> Result<u32, String> {
    match value {
        None => Ok(1),
        Some(0) => Err(format!("route `{route}`: {key} must be at least 1")),
        Some(n) => Ok(n),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_routes_longest_first() {
        let m = Manifest::from_str(
            r#"
            [server]
            pool_size = 10
            listen = "127.0.0.1:9000"
            header_timeout = "2s"
            body_timeout = "500ms"
            [[route]]
            path = "/"
            component = "a.wasm"
            inherit_env = ["HOME"]
            dirs = ["/tmp::/scratch", "/tmp::/ro:ro"]
            dir = [{ host = "/tmp", guest = "/t", read_only = true }]
            [[route]]
            path = "/api/v1"
            component = "b.wasm"
            env = { K = "v" }
            allow_http = ["127.0.0.1:9000", "example.com"]
            max_memory = "16MiB"
            fuel = 1000
            timeout = "250ms"
            max_body = "1KiB"
            "#,
            Path::new("/srv"),
        )
        .unwrap();
        assert_eq!(m.server.pool_size, 10);
        assert_eq!(m.server.listen, Some("127.0.0.1:9000".parse().unwrap()));
        assert_eq!(m.server.header_timeout, Duration::from_secs(2));
        assert_eq!(m.server.body_timeout, Duration::from_millis(500));
        assert_eq!(m.routes[1].caps.inherit_env, ["HOME"]);
        let dirs: Vec<_> = m.routes[1]
            .caps
            .dirs
            .iter()
            .map(|d| (d.guest.as_str(), d.read_only))
            .collect();
        assert_eq!(dirs, [("/t", true), ("/scratch", false), ("/ro", true)]);
        assert_eq!(m.routes[0].path, "/api/v1");
        assert_eq!(m.routes[0].component, Path::new("/srv/b.wasm"));
        assert_eq!(m.routes[0].limits.max_memory, Some(16 << 20));
        assert_eq!(m.routes[0].limits.timeout, Some(Duration::from_millis(250)));
        assert_eq!(m.routes[0].max_body, 1024);
        assert!(m.routes[0].caps.allow_http[1].matches_authority("example.com", 8080));
        assert!(!m.routes[0].caps.allow_http[0].matches_authority("127.0.0.1", 9001));
        assert!(
            m.routes[0].matches("/api/v1/x")
                && m.routes[0].matches("/api/v1")
                && !m.routes[0].matches("/api/v10")
        );
        assert!(m.routes[1].matches("/anything"));
    }

    #[test]
    fn rejects_bad_manifests() {
        for (text, why) in [
            ("", "no [[route]]"),
            ("[[route]]\npath = \"x\"\ncomponent = \"a.wasm\"", "must start with"),
            ("[[route]]\npath = \"/\"\ncomponent = \"a.wasm\"\ntimeout = \"soon\"", "duration"),
            ("[[route]]\npath = \"/\"\ncomponent = \"a.wasm\"\ncolour = 1", "unknown field"),
            ("[[route]]\npath = \"/\"\ncomponent = \"a.wasm\"\nallow_http = [\"a b\"]", "bad host"),
            ("[[route]]\npath = \"/\"\ncomponent = \"a.wasm\"\ninherit_stdio = true", "inherit_stdio"),
            ("[[route]]\npath = \"/a\"\ncomponent = \"a.wasm\"\n[[route]]\npath = \"/a/\"\ncomponent = \"b.wasm\"", "twice"),
            ("[server]\npool_size = 0\n[[route]]\npath = \"/\"\ncomponent = \"a.wasm\"", "pool_size"),
            ("[server]\nlisten = \"nowhere\"\n[[route]]\npath = \"/\"\ncomponent = \"a.wasm\"", "server.listen"),
            ("[[route]]\npath = \"/\"\ncomponent = \"a.wasm\"\ntimeout = \"1ns\"", "from 1ms"),
            ("[server]\nbody_timeout = \"0s\"\n[[route]]\npath = \"/\"\ncomponent = \"a.wasm\"", "out of range"),
        ] {
            let e = Manifest::from_str(text, Path::new(".")).unwrap_err();
            assert!(e.contains(why), "{text}: {e}");
        }
    }
}
