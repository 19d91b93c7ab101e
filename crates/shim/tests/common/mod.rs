//! A real containerd for the shim's tests: Debian's, started with its own
//! root, state and sockets in a temporary directory, the shim on its PATH,
//! and stopped (with what it leaves outside those directories removed) on
//! drop. With `cri`, its CRI plugin serves the kubelet's API with two
//! runtime handlers, `runc` and `wasmlayer`.

#![allow(dead_code)]

#[path = "../../../../tests/common/registry.rs"]
pub mod registry;
#[path = "../../../../tests/common/server.rs"]
pub mod server;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

/// The shim under test: this build's, or (for the benchmark) the one
/// `WASMLAYER_BENCH_SHIM` names, e.g. the release build.
pub fn shim() -> PathBuf {
    std::env::var_os("WASMLAYER_BENCH_SHIM")
        .map(PathBuf::from)
        .unwrap_or_else(|| env!("CARGO_BIN_EXE_containerd-shim-wasmlayer-v1").into())
}

/// A guest built by scripts/build-guests.sh.
pub fn guest(name: &str) -> PathBuf {
    let p = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../target/guests")
        .join(name);
    assert!(
        p.exists(),
        "{} is missing: run scripts/build-guests.sh",
        p.display()
    );
    p
}

/// How to start containerd.
#[derive(Default)]
pub struct Setup {
    /// Serve CRI (namespace `k8s.io`), pulling from `registry` over plain
    /// HTTP, with the pod sandbox image `sandbox_image`.
    pub cri: Option<Cri>,
    /// More of the shim's configuration (TOML), which the harness writes
    /// with a compile cache in the temporary directory.
    pub shim_config: String,
    /// More CRI runtime handlers: (handler, runtime type), with the
    /// directories their shims are in.
    pub runtimes: Vec<(String, String)>,
    pub path: Vec<PathBuf>,
    /// More environment for containerd, which passes it to its shims.
    pub env: Vec<(String, String)>,
}

pub struct Cri {
    pub registry: String,
    pub sandbox_image: String,
}

pub struct Containerd {
    child: Child,
    pub dir: tempfile::TempDir,
    cri: bool,
}

impl Containerd {
    pub fn start(setup: Setup) -> Containerd {
        for tool in ["containerd", "ctr"] {
            assert!(
                Command::new(tool).arg("--version").output().is_ok(),
                "{tool} is missing: scripts/setup.sh installs Debian's containerd"
            );
        }
        let dir = tempfile::Builder::new()
            .prefix("wasmlayer-ctrd")
            .tempdir()
            .unwrap();
        let d = dir.path();
        let config = d.join("config.toml");
        let mut toml = format!(
            "version = 2\nroot = \"{root}\"\nstate = \"{state}\"\n[grpc]\n  address = \"{sock}\"\n[ttrpc]\n  address = \"{sock}.ttrpc\"\n",
            root = d.join("root").display(),
            state = d.join("state").display(),
            sock = d.join("containerd.sock").display(),
        );
        match &setup.cri {
            None => toml.insert_str(
                "version = 2\n".len(),
                "disabled_plugins = [\"io.containerd.grpc.v1.cri\"]\n",
            ),
            Some(cri) => toml.push_str(&format!(
                r#"[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "{sandbox}"
  # Lowering oom_score_adj (CRI asks -998 for the pause container) needs
  # privileges a nested machine may not have.
  restrict_oom_score_adj = true
  stream_server_address = "127.0.0.1"
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.wasmlayer]
      runtime_type = "io.containerd.wasmlayer.v1"
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "{cni}/bin"
    conf_dir = "{cni}/net.d"
  [plugins."io.containerd.grpc.v1.cri".registry.mirrors."{registry}"]
    endpoint = ["http://{registry}"]
"#,
                sandbox = cri.sandbox_image,
                cni = d.join("cni").display(),
                registry = cri.registry,
            )),
        }
        for (handler, runtime_type) in &setup.runtimes {
            toml.push_str(&format!(
                "[plugins.\"io.containerd.grpc.v1.cri\".containerd.runtimes.{handler}]\n  runtime_type = \"{runtime_type}\"\n"
            ));
        }
        std::fs::write(&config, toml).unwrap();
        let shim_config = d.join("shim.toml");
        std::fs::write(
            &shim_config,
            format!(
                "cache_dir = \"{}\"\n{}",
                d.join("cache").display(),
                setup.shim_config
            ),
        )
        .unwrap();
        let mut dirs: Vec<PathBuf> = vec![shim().parent().unwrap().to_path_buf()];
        dirs.extend(setup.path.iter().cloned());
        let mut path = std::env::join_paths(dirs).unwrap().into_string().unwrap();
        path.push(':');
        path.push_str(&std::env::var("PATH").unwrap_or_default());
        let log = std::fs::File::create(d.join("containerd.log")).unwrap();
        let child = Command::new("containerd")
            .arg("--config")
            .arg(&config)
            .env("PATH", path)
            .env("WASMLAYER_SHIM_CONFIG", &shim_config)
            .envs(setup.env.iter().map(|(k, v)| (k, v)))
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("start containerd");
        let c = Containerd {
            child,
            dir,
            cri: setup.cri.is_some(),
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        while !c.ctr(&["version"]).status.success() {
            assert!(
                Instant::now() < deadline,
                "containerd did not start: {}",
                c.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        c
    }

    /// The namespace this run's containers live in: CRI's `k8s.io`, or one
    /// of this run's own.
    pub fn namespace(&self) -> String {
        if self.cri {
            "k8s.io".into()
        } else {
            format!("wasmlayer-test-{}", std::process::id())
        }
    }

    pub fn sock(&self) -> PathBuf {
        self.dir.path().join("containerd.sock")
    }

    /// The shim's compile cache.
    pub fn cache(&self) -> PathBuf {
        self.dir.path().join("cache")
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("containerd.log")).unwrap_or_default()
    }

    pub fn ctr_cmd(&self, args: &[&str]) -> Command {
        let mut c = Command::new("ctr");
        c.arg("-a")
            .arg(self.sock())
            .args(["-n", &self.namespace()])
            .args(args)
            .stdin(Stdio::null());
        c
    }

    pub fn ctr(&self, args: &[&str]) -> Output {
        self.ctr_cmd(args).output().unwrap()
    }
}

impl Containerd {
    /// What containerd and the shims keep outside their root and state
    /// directories, removed even when a test failed half-way: the shims
    /// and container processes still running, their mounts, their cgroups,
    /// and the shims' state of the namespace.
    fn clean_up(&self) {
        let dir = self.dir.path().to_string_lossy().into_owned();
        let ns = self.namespace();
        // Shims were started with this containerd's socket address.
        for p in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
            let Ok(pid) = p.file_name().to_string_lossy().parse::<i32>() else {
                continue;
            };
            let cmdline = std::fs::read(p.path().join("cmdline")).unwrap_or_default();
            if String::from_utf8_lossy(&cmdline).contains(&dir) {
                unsafe { libc::kill(pid, libc::SIGKILL) };
            }
        }
        // Containers: this namespace's cgroups (CRI's `k8s.io`: those of
        // this containerd's sandboxes and containers).
        let mut ids: Vec<String> = Vec::new();
        if self.cri {
            for kind in ["sandboxes", "containers"] {
                let d = self
                    .dir
                    .path()
                    .join("root/io.containerd.grpc.v1.cri")
                    .join(kind);
                for e in std::fs::read_dir(d).into_iter().flatten().flatten() {
                    ids.push(e.file_name().to_string_lossy().into_owned());
                }
            }
        }
        let mut roots = vec![PathBuf::from("/sys/fs/cgroup")];
        for c in std::fs::read_dir("/sys/fs/cgroup")
            .into_iter()
            .flatten()
            .flatten()
        {
            roots.push(c.path());
        }
        let mut cgroups = Vec::new();
        for root in &roots {
            let ns_dir = root.join(&ns);
            for e in std::fs::read_dir(&ns_dir).into_iter().flatten().flatten() {
                let id = e.file_name().to_string_lossy().into_owned();
                if e.path().is_dir() && (!self.cri || ids.contains(&id)) {
                    cgroups.push(e.path());
                }
            }
        }
        for cg in &cgroups {
            let procs = std::fs::read_to_string(cg.join("cgroup.procs")).unwrap_or_default();
            for pid in procs.lines().filter_map(|l| l.trim().parse::<i32>().ok()) {
                unsafe { libc::kill(pid, libc::SIGKILL) };
            }
        }
        // Mounts under the temporary directory, innermost first.
        let mountinfo = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
        let mut mounts: Vec<&str> = mountinfo
            .lines()
            .filter_map(|l| l.split(' ').nth(4))
            .filter(|m| m.starts_with(&dir))
            .collect();
        mounts.reverse();
        for m in mounts {
            let _ = Command::new("umount")
                .arg("-l")
                .arg(m)
                .stderr(Stdio::null())
                .status();
        }
        let deadline = Instant::now() + Duration::from_secs(5);
        for cg in &cgroups {
            while std::fs::remove_dir(cg).is_err() && cg.exists() && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        for root in &roots {
            let _ = std::fs::remove_dir(root.join(&ns));
        }
        let _ = std::fs::remove_dir_all(Path::new("/run/containerd/wasmlayer").join(&ns));
        for id in &ids {
            let _ = std::fs::remove_dir_all(Path::new("/run/containerd/runc").join(&ns).join(id));
        }
    }
}

impl Drop for Containerd {
    fn drop(&mut self) {
        unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
        let deadline = Instant::now() + Duration::from_secs(10);
        let mut ended = false;
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                ended = true;
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        if !ended {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
        self.clean_up();
    }
}
