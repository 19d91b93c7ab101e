//! `wasmlayer serve` as the tests drive it: the server process with its
//! ports, access log and metrics, and a plain HTTP client.

use super::server::{Serving, Spawned};
use super::wasmlayer;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// A running `wasmlayer serve`, killed on drop.
pub struct Server {
    pub process: Spawned,
    pub port: u16,
    pub admin: u16,
}

impl Serving for Server {
    fn process(&self) -> &Spawned {
        &self.process
    }

    fn process_mut(&mut self) -> &mut Spawned {
        &mut self.process
    }
}

impl Server {
    pub fn start(args: &[&str]) -> Server {
        let mut all = vec!["--listen", "127.0.0.1:0", "--admin", "127.0.0.1:0"];
        all.extend_from_slice(args);
        Server::start_with(&all)
    }

    /// Starts `wasmlayer serve ARGS` as given (addresses from the flags or the manifest).
    pub fn start_with(args: &[&str]) -> Server {
        let mut cmd = wasmlayer();
        cmd.arg("serve").args(args);
        let mut process = Spawned::spawn(cmd, "server");
        let (port, admin) = process.started(|lines| {
            let port = |prefix: &str| {
                lines.iter().find_map(|l| {
                    l.strip_prefix(prefix)?
                        .split([' ', '/'])
                        .next()?
                        .rsplit(':')
                        .next()?
                        .parse::<u16>()
                        .ok()
                })
            };
            match (port("serving http://"), port("admin http://")) {
                (Some(p), Some(a)) => Some((p, a)),
                _ => None,
            }
        });
        Server {
            process,
            port,
            admin,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    /// Access-log lines (JSON) written so far.
    pub fn access_log(&self) -> Vec<serde_json::Value> {
        self.process
            .stdout()
            .iter()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect()
    }

    pub fn metrics(&self) -> String {
        get(&format!("http://127.0.0.1:{}/metrics", self.admin)).2
    }

    pub fn in_flight(&self) -> f64 {
        metric(&self.metrics(), "wasmlayer_instances_in_flight").unwrap_or(0.0)
    }
}

pub fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(30)))
        .build()
        .into()
}

/// GET: (status, headers as "name: value" lines, body).
pub fn get(url: &str) -> (u16, String, String) {
    let mut r = agent()
        .get(url)
        .call()
        .unwrap_or_else(|e| panic!("GET {url}: {e}"));
    let headers = r
        .headers()
        .iter()
        .map(|(k, v)| format!("{k}: {}", v.to_str().unwrap_or("")))
        .collect::<Vec<_>>()
        .join("\n");
    (
        r.status().as_u16(),
        headers,
        r.body_mut().read_to_string().unwrap_or_default(),
    )
}

pub fn post(url: &str, body: &[u8]) -> (u16, Vec<u8>) {
    let mut r = agent()
        .post(url)
        .send(body)
        .unwrap_or_else(|e| panic!("POST {url}: {e}"));
    (
        r.status().as_u16(),
        r.body_mut()
            .with_config()
            .limit(64 << 20)
            .read_to_vec()
            .unwrap_or_default(),
    )
}

pub fn metric(text: &str, name_and_labels: &str) -> Option<f64> {
    text.lines()
        .find_map(|l| l.strip_prefix(name_and_labels)?.trim().parse().ok())
}

pub fn write_manifest(dir: &Path, text: &str) -> PathBuf {
    let p = dir.join("wasmlayer.toml");
    std::fs::write(&p, text).unwrap();
    p
}
