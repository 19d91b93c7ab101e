//! Capability grants decided by a policy: the package `wasmlayer.admission`
//! with the rules `allow`, `reasons` and `grant`. The same policy serves
//! `run`, `serve` and the shim; `input.context.command` tells them apart.
//!
//! The grant can only narrow what was requested: the host intersects it
//! with the request (see docs/policy.md).

use std::path::PathBuf;
use std::sync::Mutex;

use serde_json::{json, Value as Json};
use wasmlayer_core::limits::{parse_duration, parse_size};
use wasmlayer_core::{Admission, AdmissionRequest, Capabilities, Denied, Error, Grant, Limits};

use crate::Policy;

/// The package a capability policy decides in.
pub const PACKAGE: &str = "data.wasmlayer.admission";

fn origin(paths: &[PathBuf]) -> String {
    paths
        .iter()
        .map(|p| p.display().to_string())
        .collect::<Vec<_>>()
        .join(", ")
}

/// An [`Admission`] backed by a Rego policy (source, Wasm module or bundle).
pub struct PolicyAdmission {
    policy: Mutex<Policy>,
    origin: String,
}

impl std::fmt::Debug for PolicyAdmission {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PolicyAdmission")
            .field("origin", &self.origin)
            .finish()
    }
}

impl PolicyAdmission {
    /// Loads a policy that must define the package `wasmlayer.admission`.
    pub fn load(paths: &[PathBuf]) -> Result<PolicyAdmission, Error> {
        PolicyAdmission::new(Policy::load(paths, None)?, origin(paths))
    }

    /// Builds the admission from a policy read earlier (see
    /// [`crate::PolicySource`]); `paths` name it in errors.
    pub fn from_source(
        source: &crate::PolicySource,
        paths: &[PathBuf],
    ) -> Result<PolicyAdmission, Error> {
        PolicyAdmission::new(Policy::from_source(source)?, origin(paths))
    }

    pub fn new(policy: Policy, origin: String) -> Result<PolicyAdmission, Error> {
        let has = ["", ".allow", ".reasons", ".grant"]
            .iter()
            .any(|r| policy.has_entrypoint(&format!("{PACKAGE}{r}")));
        if !has {
            return Err(Error::policy(format!(
                "{origin}: not a capability policy: it has no package `wasmlayer.admission` (rules allow, reasons, grant)"
            )));
        }
        Ok(PolicyAdmission {
            policy: Mutex::new(policy),
            origin,
        })
    }

    /// The policy's decision document: `{allow, reasons, grant}`, each
    /// null when undefined. Rego source is evaluated on the policy's worker
    /// thread, all three rules in one hand-over (see
    /// [`Policy::isolated`]).
    pub fn decision(&self, input: &Json) -> Result<Json, Error> {
        let mut policy = self.policy.lock().unwrap_or_else(|p| p.into_inner());
        let input = input.clone();
        policy.isolated(move |p| decision_of(p, &input))?
    }

    /// Decides a request: a grant (never wider than the request) or every reason for a denial.
    ///
    /// A policy that fails denies. For `run`, a one-shot command, an
    /// evaluation past its memory or time limit ends the process instead,
    /// with the limit's own exit code (137, 124), as `policy eval` does:
    /// an [`Admission`] can only grant or deny.
    pub fn decide(&self, request: &AdmissionRequest<'_>) -> Result<Grant, Denied> {
        let input = input_document(request);
        let decision = match self.decision(&input) {
            Ok(d) => d,
            Err(e) => {
                let why = crate::native::describe(&e);
                if request.context.command == "run"
                    && matches!(e, Error::MemoryLimit(_) | Error::Timeout(_))
                {
                    eprintln!("error: policy {}: {why}", self.origin);
                    std::process::exit(e.exit_code());
                }
                return Err(Denied::because(format!(
                    "policy {} failed: {why}",
                    self.origin
                )));
            }
        };
        let reasons = reasons(&decision["reasons"]);
        let allowed = decision["allow"] == Json::Bool(true);
        if !allowed || !reasons.is_empty() {
            let reasons = if reasons.is_empty() {
                vec![format!(
                    "not allowed by policy {} (wasmlayer.admission.allow is not true)",
                    self.origin
                )]
            } else {
                reasons
            };
            return Err(Denied { reasons });
        }
        narrow(request.requested, request.limits, &decision["grant"])
            .map_err(|e| Denied::because(format!("policy {}: invalid grant: {e}", self.origin)))
    }
}

impl Admission for PolicyAdmission {
    fn admit(&self, request: &AdmissionRequest<'_>) -> Result<Grant, Denied> {
        let start = std::time::Instant::now();
        let out = self.decide(request);
        tracing::debug!(
            policy = %self.origin,
            allowed = out.is_ok(),
            latency_us = start.elapsed().as_micros() as u64,
            "policy decision"
        );
        out
    }
}

/// The decision document of `policy` for `input`.
fn decision_of(policy: &mut Policy, input: &Json) -> Result<Json, Error> {
    let first = |rs: Json| {
        rs.get(0)
            .and_then(|r| r.get("result"))
            .cloned()
            .unwrap_or(Json::Null)
    };
    if policy.has_entrypoint(PACKAGE) {
        let doc = first(policy.eval(Some(PACKAGE), Some(input))?);
        return Ok(json!({
            "allow": doc.get("allow").cloned().unwrap_or(Json::Null),
            "reasons": doc.get("reasons").cloned().unwrap_or(Json::Null),
            "grant": doc.get("grant").cloned().unwrap_or(Json::Null),
        }));
    }
    let mut out = serde_json::Map::new();
    for rule in ["allow", "reasons", "grant"] {
        let ep = format!("{PACKAGE}.{rule}");
        let v = if policy.has_entrypoint(&ep) {
            first(policy.eval(Some(&ep), Some(input))?)
        } else {
            Json::Null
        };
        out.insert(rule.to_string(), v);
    }
    Ok(Json::Object(out))
}

/// The input document a capability policy sees: the serialised request
/// (see [`AdmissionRequest`]).
pub fn input_document(request: &AdmissionRequest<'_>) -> Json {
    serde_json::to_value(request).expect("an admission request serialises to JSON")
}

fn reasons(v: &Json) -> Vec<String> {
    let one = |r: &Json| match r {
        Json::String(s) => s.clone(),
        Json::Object(o) if o.get("msg").is_some_and(|m| m.is_string()) => {
            o["msg"].as_str().unwrap().to_string()
        }
        other => other.to_string(),
    };
    match v {
        Json::Null => Vec::new(),
        Json::Array(items) => items.iter().map(one).collect(),
        Json::String(s) => vec![s.clone()],
        other => vec![one(other)],
    }
}

/// Applies `grant` to the request, keeping only what both allow.
pub fn narrow(caps: &Capabilities, limits: &Limits, grant: &Json) -> Result<Grant, String> {
    let mut caps = caps.clone();
    let mut limits = limits.clone();
    let grant = match grant {
        Json::Null => {
            return Ok(Grant {
                capabilities: caps,
                limits,
            })
        }
        Json::Object(g) => g,
        other => return Err(format!("`grant` must be an object, not {other}")),
    };
    for key in grant.keys() {
        if ![
            "dirs",
            "env",
            "inherit_env",
            "allow_net",
            "allow_http",
            "args",
            "max_memory",
            "fuel",
            "timeout",
            "inherit_stdio",
            "nn_graphs",
            "nn_dir",
        ]
        .contains(&key.as_str())
        {
            return Err(format!("unknown key `{key}` (expected dirs, env, inherit_env, allow_net, allow_http, args, max_memory, fuel, timeout, inherit_stdio, nn_graphs, nn_dir)"));
        }
    }
    if let Some(dirs) = grant.get("dirs") {
        let dirs = dirs.as_array().ok_or("`dirs` must be a list")?;
        let mut kept = Vec::new();
        for d in dirs {
            let guest = match d {
                Json::String(g) => g.as_str(),
                Json::Object(o) => o
                    .get("guest")
                    .and_then(Json::as_str)
                    .ok_or("each of `dirs` needs a `guest` path")?,
                _ => return Err("each of `dirs` is a guest path or {guest, read_only}".into()),
            };
            // A grant names requested directories; it cannot add one.
            if let Some(req) = caps.dirs.iter().find(|r| r.guest == guest) {
                let mut g = req.clone();
                if d.get("read_only") == Some(&Json::Bool(true)) {
                    g.read_only = true;
                }
                if !kept
                    .iter()
                    .any(|k: &wasmlayer_core::DirGrant| k.guest == g.guest)
                {
                    kept.push(g);
                }
            }
        }
        caps.dirs = kept;
    }
    if let Some(env) = grant.get("env") {
        let keys: Vec<String> = match env {
            Json::Object(o) => o.keys().cloned().collect(),
            Json::Array(a) => a
                .iter()
                .filter_map(|k| k.as_str().map(str::to_string))
                .collect(),
            _ => return Err("`env` must be an object or a list of names".into()),
        };
        caps.env.retain(|k, _| keys.contains(k));
    }
    if let Some(names) = grant.get("inherit_env") {
        let names = string_list(names, "inherit_env")?;
        caps.inherit_env.retain(|k| names.contains(k));
    }
    if let Some(nets) = grant.get("allow_net") {
        let nets = string_list(nets, "allow_net")?;
        caps.allow_net.retain(|n| nets.contains(&n.to_string()));
    }
    if let Some(hosts) = grant.get("allow_http") {
        // Entries as the input shows them (`HOST:PORT`, `HOST:*`), or as
        // written in a manifest (`HOST` for any port).
        let hosts = string_list(hosts, "allow_http")?
            .iter()
            .map(|h| wasmlayer_core::NetPattern::parse_http(h))
            .collect::<Result<Vec<_>, _>>()?;
        caps.allow_http.retain(|n| hosts.contains(n));
    }
    if let Some(args) = grant.get("args") {
        // Arguments are data, not authority: a grant may only clear them.
        if string_list(args, "args")?.is_empty() {
            caps.args.clear();
        }
    }
    if grant.get("inherit_stdio") == Some(&Json::Bool(false)) {
        caps.inherit_stdio = false;
    }
    if let Some(names) = grant.get("nn_graphs") {
        // The named wasi-nn graphs kept (by name).
        let names = string_list(names, "nn_graphs")?;
        caps.nn_graphs.retain(|k, _| names.contains(k));
    }
    match grant.get("nn_dir") {
        None | Some(Json::Bool(true)) => {}
        Some(Json::Bool(false)) => caps.nn_dir = None,
        Some(_) => return Err("`nn_dir` must be true or false".into()),
    }
    if let Some(m) = grant.get("max_memory") {
        let m = match m {
            Json::Number(n) => n
                .as_u64()
                .ok_or("`max_memory` must be a whole number of bytes")?,
            Json::String(s) => parse_size(s)?,
            _ => return Err("`max_memory` must be bytes or a size like \"128MiB\"".into()),
        };
        limits.max_memory = Some(limits.max_memory.map_or(m, |r| r.min(m)));
    }
    if let Some(f) = grant.get("fuel") {
        let f = f.as_u64().ok_or("`fuel` must be a whole number")?;
        limits.fuel = Some(limits.fuel.map_or(f, |r| r.min(f)));
    }
    if let Some(t) = grant.get("timeout") {
        let t = match t {
            Json::String(s) => parse_duration(s)?,
            Json::Number(n) => {
                std::time::Duration::from_millis(n.as_u64().ok_or("`timeout` in ms must be whole")?)
            }
            _ => return Err("`timeout` must be a duration like \"5s\" or milliseconds".into()),
        };
        limits.timeout = Some(limits.timeout.map_or(t, |r| r.min(t)));
    }
    Ok(Grant {
        capabilities: caps,
        limits,
    })
}

fn string_list(v: &Json, what: &str) -> Result<Vec<String>, String> {
    v.as_array()
        .ok_or(format!("`{what}` must be a list of strings"))?
        .iter()
        .map(|s| {
            s.as_str()
                .map(str::to_string)
                .ok_or(format!("`{what}` must be a list of strings"))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use wasmlayer_core::{DirGrant, NetPattern};

    #[test]
    fn grants_only_narrow() {
        let mut caps = Capabilities::default();
        caps.dirs.push(DirGrant {
            host: "/tmp/a".into(),
            guest: "/a".into(),
            read_only: false,
        });
        caps.dirs.push(DirGrant {
            host: "/tmp/b".into(),
            guest: "/b".into(),
            read_only: true,
        });
        caps.allow_net
            .push("127.0.0.1:80".parse::<NetPattern>().unwrap());
        caps.allow_net
            .push("10.0.0.0/8:*".parse::<NetPattern>().unwrap());
        caps.env.insert("A".into(), "1".into());
        caps.env.insert("B".into(), "2".into());
        caps.allow_http
            .push(NetPattern::parse_http("api.example.com").unwrap());
        caps.allow_http
            .push(NetPattern::parse_http("127.0.0.1:9000").unwrap());
        let limits = Limits {
            max_memory: Some(512 << 20),
            ..Default::default()
        };
        let grant = json!({
            // /b stays read-only even though the grant says otherwise; /c was never requested.
            "dirs": [{"guest": "/a", "read_only": true}, {"guest": "/b", "read_only": false}, "/c"],
            "allow_net": ["127.0.0.1:80", "0.0.0.0/0:*"],
            "env": ["A"],
            "allow_http": ["api.example.com", "127.0.0.1:9001"],
            "max_memory": "128MiB",
            "fuel": 1000,
        });
        let g = narrow(&caps, &limits, &grant).unwrap();
        assert_eq!(g.capabilities.dirs.len(), 2);
        assert!(g.capabilities.dirs.iter().all(|d| d.read_only));
        assert_eq!(g.capabilities.allow_net.len(), 1);
        assert_eq!(g.capabilities.allow_http, caps.allow_http[..1]);
        assert_eq!(g.capabilities.env.keys().collect::<Vec<_>>(), vec!["A"]);
        assert_eq!(g.limits.max_memory, Some(128 << 20));
        assert_eq!(g.limits.fuel, Some(1000));
        // A larger cap than requested keeps the request.
        let g = narrow(&caps, &limits, &json!({"max_memory": "1GiB"})).unwrap();
        assert_eq!(g.limits.max_memory, Some(512 << 20));
        assert!(narrow(&caps, &limits, &json!({"widen": true})).is_err());
        // wasi-nn: named graphs kept by name, the directory dropped.
        let mut nn = Capabilities::default();
        nn.nn_graphs.insert("det".into(), "/m/det.onnx".into());
        nn.nn_graphs.insert("rec".into(), "/m/rec.onnx".into());
        nn.nn_dir = Some("/m".into());
        let g = narrow(
            &nn,
            &limits,
            &json!({"nn_graphs": ["rec", "other"], "nn_dir": false}),
        )
        .unwrap();
        assert_eq!(
            g.capabilities.nn_graphs.keys().collect::<Vec<_>>(),
            vec!["rec"]
        );
        assert_eq!(g.capabilities.nn_dir, None);
        assert!(narrow(&nn, &limits, &json!({"nn_dir": "/elsewhere"})).is_err());
        assert!(narrow(&caps, &limits, &json!("all")).is_err());
    }

    #[test]
    fn reasons_from_strings_and_objects() {
        assert_eq!(reasons(&json!(["a", {"msg": "b"}])), vec!["a", "b"]);
        assert!(reasons(&Json::Null).is_empty());
    }
}
