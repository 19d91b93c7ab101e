//! The admission hook: requested capabilities plus facts about the artifact
//! go in; a grant (possibly narrowed) or a denial with reasons comes out.

use crate::artifact::ArtifactFacts;
use crate::caps::Capabilities;
use crate::limits::Limits;
use serde::Serialize;

/// What the host is about to do with the artifact.
#[derive(Debug, Clone, Default, Serialize)]
pub struct AdmissionContext {
    /// `run`, `serve`, `shim`, ...
    pub command: String,
    /// For `serve`: the route's path prefix.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub route: Option<String>,
    /// For `serve`: the route's outbound HTTP allowlist (`HOST:PORT`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub allow_http: Option<Vec<String>>,
}

/// The request put to an admission.
#[derive(Debug, Clone, Serialize)]
pub struct AdmissionRequest<'a> {
    pub artifact: &'a ArtifactFacts,
    pub requested: &'a Capabilities,
    pub limits: &'a Limits,
    pub context: &'a AdmissionContext,
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
