//! A real OCI registry for the tests: Debian's `docker-registry` (the CNCF
//! distribution registry), started on a free loopback port with its storage
//! in a temporary directory, and stopped on drop.

use super::server::Spawned;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

pub struct Registry {
    _process: Spawned,
    pub addr: String,
    /// Where it keeps blobs and manifests.
    pub storage: PathBuf,
    _dir: tempfile::TempDir,
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

impl Registry {
    pub fn start() -> Registry {
        Registry::start_with(None)
    }

    /// A registry that wants HTTP basic credentials `user:password`
    /// (htpasswd with bcrypt, hashed by Python's crypt).
    pub fn start_with_auth(user: &str, password: &str) -> Registry {
        Registry::start_with(Some((user, password)))
    }

    fn start_with(auth: Option<(&str, &str)>) -> Registry {
        let bin = ["/usr/bin/docker-registry", "/usr/bin/registry"]
            .into_iter()
            .find(|p| Path::new(p).exists())
            .expect(
                "docker-registry is missing: scripts/setup.sh installs Debian's docker-registry",
            );
        let dir = tempfile::Builder::new()
            .prefix("wasmlayer-registry")
            .tempdir()
            .unwrap();
        let storage = dir.path().join("storage");
        let port = free_port();
        let addr = format!("127.0.0.1:{port}");
        let config = dir.path().join("config.yml");
        let mut yaml = format!(
            "version: 0.1\nlog:\n  level: error\nstorage:\n  filesystem:\n    rootdirectory: {}\n  delete:\n    enabled: true\nhttp:\n  addr: {addr}\n",
            storage.display()
        );
        if let Some((user, password)) = auth {
            let hash = Command::new("python3")
                .args([
                    "-W",
                    "ignore",
                    "-c",
                    "import crypt, sys; print(crypt.crypt(sys.argv[1], crypt.mksalt(crypt.METHOD_BLOWFISH)))",
                    password,
                ])
                .output()
                .unwrap();
            assert!(hash.status.success(), "bcrypt with python3");
            let htpasswd = dir.path().join("htpasswd");
            std::fs::write(
                &htpasswd,
                format!("{user}:{}", String::from_utf8(hash.stdout).unwrap()),
            )
            .unwrap();
            yaml.push_str(&format!(
                "auth:\n  htpasswd:\n    realm: test\n    path: {}\n",
                htpasswd.display()
            ));
        }
        std::fs::write(&config, yaml).unwrap();
        let mut cmd = Command::new(bin);
        cmd.arg("serve").arg(&config);
        let process = Spawned::spawn(cmd, "registry");
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            // Up once it answers at all (401 with credentials required).
            let up = match ureq::get(&format!("http://{addr}/v2/")).call() {
                Ok(_) => true,
                Err(ureq::Error::StatusCode(401)) => true,
                Err(_) => false,
            };
            if up {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "the registry did not come up on {addr}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        Registry {
            _process: process,
            addr,
            storage,
            _dir: dir,
        }
    }

    /// The file the registry serves a blob from.
    pub fn blob_file(&self, digest: &str) -> PathBuf {
        let hex = digest.strip_prefix("sha256:").unwrap();
        self.storage
            .join("docker/registry/v2/blobs/sha256")
            .join(&hex[..2])
            .join(hex)
            .join("data")
    }

    /// Uploads a blob (monolithic) to repository `repo`.
    pub fn put_blob(&self, repo: &str, bytes: &[u8]) -> String {
        let digest = sha256(bytes);
        let r = ureq::post(&format!("http://{}/v2/{repo}/blobs/uploads/", self.addr))
            .send_empty()
            .unwrap();
        let location = r.headers()["location"].to_str().unwrap().to_string();
        let url = if location.starts_with("http") {
            location
        } else {
            format!("http://{}{location}", self.addr)
        };
        let sep = if url.contains('?') { '&' } else { '?' };
        ureq::put(&format!("{url}{sep}digest={digest}"))
            .header("content-type", "application/octet-stream")
            .send(bytes)
            .unwrap();
        digest
    }

    /// Uploads an image manifest under `repo:tag`.
    pub fn put_manifest(&self, repo: &str, tag: &str, manifest: &serde_json::Value) {
        ureq::put(&format!("http://{}/v2/{repo}/manifests/{tag}", self.addr))
            .header("content-type", "application/vnd.oci.image.manifest.v1+json")
            .send(serde_json::to_vec(manifest).unwrap().as_slice())
            .unwrap();
    }
}

pub fn sha256(bytes: &[u8]) -> String {
    use sha2::Digest;
    let d = sha2::Sha256::digest(bytes);
    format!(
        "sha256:{}",
        d.iter().map(|b| format!("{b:02x}")).collect::<String>()
    )
}
