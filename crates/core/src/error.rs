//! The one error type of the platform, with a stable kind and exit code.

use std::fmt;
use std::path::PathBuf;

/// The stable classification of an error. Each kind has one documented
/// process exit code (see the README's exit-code table).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum ErrorKind {
    /// Bad command-line usage or configuration (flags, capability file).
    Usage,
    /// The admission hook denied the requested capabilities.
    Denied,
    /// The guest ran past its wall-clock timeout.
    Timeout,
    /// Host-side failure: I/O, cache, engine setup.
    Host,
    /// The artifact is not runnable: malformed, truncated, wrong kind,
    /// missing entry point, untrusted precompiled code.
    InvalidArtifact,
    /// The artifact file does not exist.
    NotFound,
    /// The guest trapped (unreachable, out-of-bounds, stack overflow, ...).
    Trap,
    /// The guest exceeded its memory limit.
    MemoryLimit,
    /// The guest exhausted its fuel.
    FuelExhausted,
    /// A policy could not be parsed, compiled, loaded or evaluated.
    Policy,
    /// The host stopped the guest before it ended (an [`crate::Interrupt`]:
    /// a container's SIGTERM).
    Stopped,
}

impl ErrorKind {
    /// The process exit code for this kind.
    pub fn exit_code(self) -> i32 {
        match self {
            ErrorKind::Usage => 2,
            ErrorKind::Denied => 77,
            ErrorKind::Timeout => 124,
            ErrorKind::Host => 125,
            ErrorKind::InvalidArtifact => 126,
            ErrorKind::NotFound => 127,
            ErrorKind::Trap => 134,
            ErrorKind::MemoryLimit => 137,
            ErrorKind::FuelExhausted => 152,
            ErrorKind::Policy => 65,
            ErrorKind::Stopped => 143,
        }
    }

    /// Every kind, for documentation and tests.
    pub const ALL: [ErrorKind; 11] = [
        ErrorKind::Usage,
        ErrorKind::Denied,
        ErrorKind::Timeout,
        ErrorKind::Host,
        ErrorKind::InvalidArtifact,
        ErrorKind::NotFound,
        ErrorKind::Trap,
        ErrorKind::MemoryLimit,
        ErrorKind::FuelExhausted,
        ErrorKind::Policy,
        ErrorKind::Stopped,
    ];
}

/// One frame of a guest backtrace.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Frame {
    pub module: Option<String>,
    pub func_index: u32,
    pub func_name: Option<String>,
    pub offset: Option<usize>,
    pub location: Option<String>,
}

impl fmt::Display for Frame {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(o) = self.offset {
            write!(f, "{o:#8x} - ")?;
        }
        if let Some(m) = &self.module {
            write!(f, "{m}!")?;
        }
        match &self.func_name {
            Some(n) => write!(f, "{n}")?,
            None => write!(f, "<wasm function {}>", self.func_index)?,
        }
        if let Some(l) = &self.location {
            write!(f, "\n                at {l}")?;
        }
        Ok(())
    }
}

/// The platform's error.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{0}")]
    Usage(String),
    #[error("admission denied: {}", reasons.join("; "))]
    Denied { reasons: Vec<String> },
    #[error("guest exceeded its wall-clock timeout ({})", crate::limits::format_duration(*.0))]
    Timeout(std::time::Duration),
    /// Loading (compiling, on a cache miss) outlasted the run's timeout.
    #[error(
        "compiling the guest took longer than its wall-clock timeout ({})",
        crate::limits::format_duration(*.0)
    )]
    CompileTimeout(std::time::Duration),
    #[error("guest exceeded its memory limit ({})", crate::limits::format_size(*.0))]
    MemoryLimit(u64),
    #[error(
        "guest needs {} of memory to start, above its memory limit ({})",
        crate::limits::format_size(*.needed),
        crate::limits::format_size(*.limit)
    )]
    MemoryBelowInitial { needed: u64, limit: u64 },
    #[error("guest exhausted its fuel ({0} units)")]
    FuelExhausted(u64),
    #[error("guest trapped: {kind}")]
    Trap { kind: String, backtrace: Vec<Frame> },
    #[error("{path}: file not found")]
    NotFound { path: PathBuf },
    #[error("{0}")]
    InvalidArtifact(String),
    #[error("{0}")]
    Host(String),
    #[error("{0}")]
    Policy(String),
    #[error("guest stopped by its host")]
    Stopped,
}

impl Error {
    pub fn kind(&self) -> ErrorKind {
        match self {
            Error::Usage(_) => ErrorKind::Usage,
            Error::Denied { .. } => ErrorKind::Denied,
            Error::Timeout(_) | Error::CompileTimeout(_) => ErrorKind::Timeout,
            Error::MemoryLimit(_) | Error::MemoryBelowInitial { .. } => ErrorKind::MemoryLimit,
            Error::FuelExhausted(_) => ErrorKind::FuelExhausted,
            Error::Trap { .. } => ErrorKind::Trap,
            Error::NotFound { .. } => ErrorKind::NotFound,
            Error::InvalidArtifact(_) => ErrorKind::InvalidArtifact,
            Error::Host(_) => ErrorKind::Host,
            Error::Policy(_) => ErrorKind::Policy,
            Error::Stopped => ErrorKind::Stopped,
        }
    }

    pub fn exit_code(&self) -> i32 {
        self.kind().exit_code()
    }

    pub fn usage(msg: impl Into<String>) -> Self {
        Error::Usage(msg.into())
    }

    pub fn invalid(msg: impl Into<String>) -> Self {
        Error::InvalidArtifact(msg.into())
    }

    pub fn host(msg: impl Into<String>) -> Self {
        Error::Host(msg.into())
    }

    pub fn policy(msg: impl Into<String>) -> Self {
        Error::Policy(msg.into())
    }

    /// Wraps an I/O error on `path`, mapping "not found" to its own kind.
    pub fn io(path: &std::path::Path, err: std::io::Error) -> Self {
        if err.kind() == std::io::ErrorKind::NotFound {
            Error::NotFound {
                path: path.to_owned(),
            }
        } else {
            Error::Host(format!("{}: {err}", path.display()))
        }
    }

    /// The guest backtrace, for traps.
    pub fn backtrace(&self) -> &[Frame] {
        match self {
            Error::Trap { backtrace, .. } => backtrace,
            _ => &[],
        }
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
