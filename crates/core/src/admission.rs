//! The admission hook: requested capabilities plus facts about the artifact
//! go in; a grant (possibly narrowed) or a denial with reasons comes out.

use crate::artifact::ArtifactFacts;
use crate::caps::Capabilities;
use crate::limits::Limits;
use serde::{Serialize, Serializer};
use std::sync::Arc;

/// What the host is about to do with the artifact.
#[derive(Debug, Clone, Default, Serialize)]
pub struct AdmissionContext {
    /// `run`, `serve`, `shim`, ...
    pub command: String,
    /// For `serve`: the route's path prefix.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub route: Option<String>,
}

/// The request put to an admission. Serialised, it is the input document
/// a policy sees (docs/policy.md):
///
/// ```json
/// {"artifact": {"sha256", "size", "kind", "imports", "capabilities"},
///  "requested": {"dirs", "env", "inherit_env", "args", "allow_net",
///                "allow_http", "inherit_stdio",
///                "limits": {"max_memory", "fuel", "timeout_ms"}},
///  "context": {"command", "route"}}
/// ```
#[derive(Debug, Clone)]
pub struct AdmissionRequest<'a> {
    pub artifact: &'a ArtifactFacts,
    pub requested: &'a Capabilities,
    pub limits: &'a Limits,
    pub context: &'a AdmissionContext,
}

impl Serialize for AdmissionRequest<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        #[derive(Serialize)]
        struct Artifact<'a> {
            sha256: &'a str,
            size: u64,
            kind: String,
            imports: &'a [String],
            capabilities: Vec<&'static str>,
        }
        #[derive(Serialize)]
        struct Dir<'a> {
            host: std::borrow::Cow<'a, str>,
            guest: &'a str,
            read_only: bool,
        }
        #[derive(Serialize)]
        struct RequestLimits {
            max_memory: Option<u64>,
            fuel: Option<u64>,
            timeout_ms: Option<u64>,
        }
        #[derive(Serialize)]
        struct Requested<'a> {
            dirs: Vec<Dir<'a>>,
            env: &'a std::collections::BTreeMap<String, String>,
            inherit_env: &'a [String],
            args: &'a [String],
            allow_net: Vec<String>,
            allow_http: Vec<String>,
            inherit_stdio: bool,
            nn_graphs: Vec<Graph>,
            nn_dir: Option<std::borrow::Cow<'a, str>>,
            limits: RequestLimits,
        }
        /// A wasi-nn model the guest may load, with its digest (null when
        /// the file cannot be read).
        #[derive(Serialize)]
        struct Graph {
            name: String,
            path: String,
            sha256: Option<String>,
            size: Option<u64>,
        }
        #[derive(Serialize)]
        struct Document<'a> {
            artifact: Artifact<'a>,
            requested: Requested<'a>,
            context: &'a AdmissionContext,
        }
        let (a, caps, limits) = (self.artifact, self.requested, self.limits);
        let strings = |ps: &[crate::caps::NetPattern]| ps.iter().map(|p| p.to_string()).collect();
        Document {
            artifact: Artifact {
                sha256: &a.sha256,
                size: a.size,
                kind: a.kind.to_string(),
                imports: &a.imports,
                capabilities: a.capabilities(),
            },
            requested: Requested {
                dirs: caps
                    .dirs
                    .iter()
                    .map(|d| Dir {
                        host: d.host.to_string_lossy(),
                        guest: &d.guest,
                        read_only: d.read_only,
                    })
                    .collect(),
                env: &caps.env,
                inherit_env: &caps.inherit_env,
                args: &caps.args,
                allow_net: strings(&caps.allow_net),
                allow_http: strings(&caps.allow_http),
                inherit_stdio: caps.inherit_stdio,
                nn_graphs: crate::models::granted(&caps.nn_graphs, caps.nn_dir.as_deref())
                    .into_iter()
                    .map(|m| Graph {
                        sha256: crate::models::sha256_file(&m.path).ok(),
                        size: std::fs::metadata(&m.path).ok().map(|m| m.len()),
                        name: m.name,
                        path: m.path.to_string_lossy().into_owned(),
                    })
                    .collect(),
                nn_dir: caps.nn_dir.as_ref().map(|d| d.to_string_lossy()),
                limits: RequestLimits {
                    max_memory: limits.max_memory,
                    fuel: limits.fuel,
                    timeout_ms: limits.timeout.map(|t| t.as_millis() as u64),
                },
            },
            context: self.context,
        }
        .serialize(s)
    }
}

/// What an admission grants: capabilities and limits, possibly narrower
/// than requested.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Grant {
    pub capabilities: Capabilities,
    pub limits: Limits,
}

/// A refusal, with every reason the admission gave.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Denied {
    pub reasons: Vec<String>,
}

impl Denied {
    pub fn because(reason: impl Into<String>) -> Self {
        Denied {
            reasons: vec![reason.into()],
        }
    }
}

/// Decides whether an artifact may run with what it asked for.
pub trait Admission: Send + Sync {
    fn admit(&self, request: &AdmissionRequest<'_>) -> Result<Grant, Denied>;
}

/// The default admission: grants exactly what was requested.
#[derive(Debug, Default, Clone, Copy)]
pub struct GrantRequested;

impl Admission for GrantRequested {
    fn admit(&self, request: &AdmissionRequest<'_>) -> Result<Grant, Denied> {
        Ok(Grant {
            capabilities: request.requested.clone(),
            limits: request.limits.clone(),
        })
    }
}

/// Admissions that must all allow: each judges what the one before it
/// granted (so each can narrow), and the first denial is the answer. An
/// embedder's admission and a policy are composed this way.
#[derive(Clone)]
pub struct AllOf(pub Vec<Arc<dyn Admission>>);

impl AllOf {
    /// `first`, then `then` when there is one.
    pub fn compose(
        first: Arc<dyn Admission>,
        then: Option<Arc<dyn Admission>>,
    ) -> Arc<dyn Admission> {
        match then {
            None => first,
            Some(then) => Arc::new(AllOf(vec![first, then])),
        }
    }
}

impl Admission for AllOf {
    fn admit(&self, request: &AdmissionRequest<'_>) -> Result<Grant, Denied> {
        let mut grant = Grant {
            capabilities: request.requested.clone(),
            limits: request.limits.clone(),
        };
        for admission in &self.0 {
            grant = admission.admit(&AdmissionRequest {
                artifact: request.artifact,
                requested: &grant.capabilities,
                limits: &grant.limits,
                context: request.context,
            })?;
        }
        Ok(grant)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::artifact::{ArtifactFacts, ArtifactKind, Format};

    /// Keeps only the environment variable it names, or denies.
    struct Keep(&'static str);

    impl Admission for Keep {
        fn admit(&self, r: &AdmissionRequest<'_>) -> Result<Grant, Denied> {
            if !r.requested.env.contains_key(self.0) {
                return Err(Denied::because(format!("{} was not requested", self.0)));
            }
            let mut capabilities = r.requested.clone();
            capabilities.env.retain(|k, _| k == self.0);
            Ok(Grant {
                capabilities,
                limits: r.limits.clone(),
            })
        }
    }

    #[test]
    fn composed_admissions_all_must_allow_and_each_narrows() {
        let facts = ArtifactFacts {
            sha256: "ab".into(),
            size: 1,
            kind: ArtifactKind::Module,
            format: Format::Wasm,
            imports: vec![],
        };
        let mut caps = Capabilities::default();
        caps.env.insert("A".into(), "1".into());
        caps.env.insert("B".into(), "2".into());
        caps.allow_http
            .push(crate::caps::NetPattern::parse_http("api.example.com").unwrap());
        let limits = Limits::default();
        let context = AdmissionContext {
            command: "serve".into(),
            route: Some("/x".into()),
        };
        let request = AdmissionRequest {
            artifact: &facts,
            requested: &caps,
            limits: &limits,
            context: &context,
        };
        let both = AllOf(vec![Arc::new(GrantRequested), Arc::new(Keep("A"))]);
        let g = both.admit(&request).unwrap();
        assert_eq!(g.capabilities.env.keys().collect::<Vec<_>>(), ["A"]);
        // The second judges the first's grant: B is gone by then.
        let denied = AllOf(vec![Arc::new(Keep("A")), Arc::new(Keep("B"))])
            .admit(&request)
            .unwrap_err();
        assert_eq!(denied.reasons, ["B was not requested"]);
        // The serialised request is the policy's input document.
        let doc = serde_json::to_value(&request).unwrap();
        assert_eq!(doc["requested"]["allow_http"][0], "api.example.com:*");
        assert_eq!(doc["requested"]["env"]["B"], "2");
        assert_eq!(doc["context"]["route"], "/x");
        assert_eq!(doc["artifact"]["kind"], "module");
        assert!(doc["requested"]["limits"]["timeout_ms"].is_null());
    }
}
