//! `wasmlayer policy webhook`: Kubernetes validating admission over HTTPS.

use clap::Args;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;
use wasmlayer_core::Error;
use wasmlayer_policy::Policy;
use wasmlayer_webhook::{self as webhook, WebhookOptions};

#[derive(Args, Debug)]
pub(crate) struct WebhookArgs {
    /// The policy: .rego files and directories (with .json data), or one .wasm / .tar.gz; repeatable.
    #[arg(long, required = true, value_name = "POLICY")]
    policy: Vec<PathBuf>,
    /// A data document (JSON or YAML) merged into `data`.
    #[arg(short, long, value_name = "FILE")]
    data: Option<PathBuf>,
    /// Address to listen on (port 0: any free port).
    #[arg(long, value_name = "ADDR", default_value = webhook::DEFAULT_LISTEN)]
    listen: SocketAddr,
    /// The server certificate chain (PEM).
    #[arg(long, required = true, value_name = "FILE")]
    tls_cert: PathBuf,
    /// The server's private key (PEM: PKCS#8, PKCS#1 or SEC1).
    #[arg(long, required = true, value_name = "FILE")]
    tls_key: PathBuf,
    /// The package whose `deny`, `violation` and `allow` rules decide.
    #[arg(long, value_name = "PKG", default_value = webhook::DEFAULT_PACKAGE)]
    package: String,
    /// Append the decision log (JSON lines) to this file [default: standard output].
    #[arg(long, value_name = "FILE")]
    decision_log: Option<PathBuf>,
    /// How long open connections may take to finish after SIGTERM or SIGINT, in seconds.
    #[arg(long, value_name = "SECONDS", default_value_t = 10)]
    drain_timeout: u64,
    #[command(flatten)]
    syntax: crate::policy::RegoSyntax,
}

pub(crate) fn run(args: WebhookArgs) -> Result<i32, Error> {
    let data = args
        .data
        .as_deref()
        .map(|p| crate::policy::read_document(p, "data"))
        .transpose()?;
    let policy = Policy::from_source(&args.syntax.read(&args.policy, data)?)?;
    webhook::serve(
        policy,
        WebhookOptions {
            listen: args.listen,
            tls_cert: args.tls_cert,
            tls_key: args.tls_key,
            package: args.package,
            decision_log: args.decision_log,
            drain_timeout: Duration::from_secs(args.drain_timeout),
        },
    )
}
