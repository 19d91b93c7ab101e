//! The shim under a real containerd (Debian's, started here with its own
//! root, state and socket in a temporary directory), driven with `ctr` as
//! on a node: a Wasm container's output, args, env, files from its root
//! filesystem, exit status, SIGTERM of a looping guest, and an image with no
//! Wasm in it.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

const SHIM: &str = env!("CARGO_BIN_EXE_containerd-shim-wasmlayer-v1");

fn guest(name: &str) -> PathBuf {
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

struct Containerd {
    child: Child,
    dir: tempfile::TempDir,
}

impl Containerd {
    fn start() -> Containerd {
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
        std::fs::write(
            &config,
            format!(
                "version = 2\nroot = \"{root}\"\nstate = \"{state}\"\ndisabled_plugins = [\"io.containerd.grpc.v1.cri\"]\n[grpc]\n  address = \"{sock}\"\n[ttrpc]\n  address = \"{sock}.ttrpc\"\n",
                root = d.join("root").display(),
                state = d.join("state").display(),
                sock = d.join("containerd.sock").display(),
            ),
        )
        .unwrap();
        let shim_dir = Path::new(SHIM).parent().unwrap();
        let path = format!(
            "{}:{}",
            shim_dir.display(),
            std::env::var("PATH").unwrap_or_default()
        );
        let log = std::fs::File::create(d.join("containerd.log")).unwrap();
        let child = Command::new("containerd")
            .arg("--config")
            .arg(&config)
            .env("PATH", path)
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("start containerd");
        let c = Containerd { child, dir };
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

    /// A namespace of this run's own, removed when it ends.
    fn namespace(&self) -> String {
        format!("wasmlayer-test-{}", std::process::id())
    }

    fn sock(&self) -> PathBuf {
        self.dir.path().join("containerd.sock")
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("containerd.log")).unwrap_or_default()
    }

    fn ctr_cmd(&self, args: &[&str]) -> Command {
        let mut c = Command::new("ctr");
        c.arg("-a")
            .arg(self.sock())
            .args(["-n", &self.namespace()])
            .args(args)
            .stdin(Stdio::null());
        c
    }

    fn ctr(&self, args: &[&str]) -> Output {
        self.ctr_cmd(args).output().unwrap()
    }

    /// A root filesystem holding `files` (name, host file).
    fn rootfs(&self, name: &str, files: &[(&str, &Path)]) -> PathBuf {
        let root = self.dir.path().join(name);
        std::fs::create_dir_all(root.join("data")).unwrap();
        for (to, from) in files {
            std::fs::copy(from, root.join(to)).unwrap();
        }
        root
    }

    /// `ctr run --rm` of `rootfs` on the shim: (exit code, stdout, stderr).
    fn run(&self, id: &str, rootfs: &Path, extra: &[&str], cmd: &[&str]) -> (i32, String, String) {
        let mut args = vec!["run", "--rm", "--runtime", "io.containerd.wasmlayer.v1"];
        args.extend(extra);
        let root = rootfs.to_str().unwrap();
        args.extend(["--rootfs", root, id]);
        args.extend(cmd);
        let o = self.ctr(&args);
        (
            o.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&o.stdout).into_owned(),
            String::from_utf8_lossy(&o.stderr).into_owned(),
        )
    }
}

impl Drop for Containerd {
    fn drop(&mut self) {
        unsafe { libc_kill(self.child.id() as i32, 15) };
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
        // What containerd and the shim keep outside their root and state
        // directories: the shim's state of this namespace, and the (empty)
        // cgroups of the namespace.
        let ns = self.namespace();
        let _ = std::fs::remove_dir_all(Path::new("/run/containerd/wasmlayer").join(&ns));
        if let Ok(controllers) = std::fs::read_dir("/sys/fs/cgroup") {
            for c in controllers.flatten() {
                let _ = std::fs::remove_dir(c.path().join(&ns));
            }
        }
        let _ = std::fs::remove_dir(Path::new("/sys/fs/cgroup").join(&ns));
    }
}

extern "C" {
    #[link_name = "kill"]
    fn libc_kill(pid: i32, sig: i32) -> i32;
}

#[test]
fn wasm_containers_run_on_containerd() {
    let c = Containerd::start();
    let hello = guest("hello-p1.wasm");
    let input = c.dir.path().join("input.txt");
    std::fs::write(&input, "from the rootfs").unwrap();
    let root = c.rootfs(
        "hello",
        &[("hello.wasm", &hello), ("data/input.txt", &input)],
    );

    let (code, out, err) = c.run(
        "hello",
        &root,
        &["--env", "NAME=containerd"],
        &["/hello.wasm", "pod"],
    );
    assert_eq!(code, 0, "{out}\n{err}\n{}", c.log());
    assert!(out.contains("Hello, pod!"), "{out}");
    assert!(out.contains("env NAME=containerd"), "{out}");
    // The rootfs is the guest's `/`: it read /data/input.txt and wrote the
    // uppercased copy, which is in the rootfs on the host.
    assert_eq!(
        std::fs::read_to_string(root.join("data/output.txt")).unwrap(),
        "FROM THE ROOTFS"
    );

    // The guest's exit status is the container's.
    let hostile = guest("hostile-p1.wasm");
    let root = c.rootfs("hostile", &[("hostile.wasm", &hostile)]);
    let (code, _, err) = c.run("exit7", &root, &[], &["/hostile.wasm", "exit", "7"]);
    assert_eq!(code, 7, "{err}\n{}", c.log());

    // Only the env the spec lists (ctr adds PATH): the host's is not there.
    let (code, out, _) = c.run("env", &root, &[], &["/hostile.wasm", "envall"]);
    assert_eq!(code, 0);
    assert!(!out.contains("HOME="), "{out}");

    // A looping guest ends within a second of SIGTERM, with 143.
    let mut looping = c
        .ctr_cmd(&[
            "run",
            "--rm",
            "--runtime",
            "io.containerd.wasmlayer.v1",
            "--rootfs",
            root.to_str().unwrap(),
            "loop",
            "/hostile.wasm",
            "loop",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let o = c.ctr(&["task", "ls"]);
        if String::from_utf8_lossy(&o.stdout).contains("RUNNING") {
            break;
        }
        assert!(Instant::now() < deadline, "the looping task never ran");
        std::thread::sleep(Duration::from_millis(50));
    }
    std::thread::sleep(Duration::from_millis(300));
    let killed = Instant::now();
    assert!(c.ctr(&["task", "kill", "loop"]).status.success());
    let status = loop {
        if let Some(s) = looping.try_wait().unwrap() {
            break s;
        }
        assert!(
            killed.elapsed() < Duration::from_secs(10),
            "SIGTERM did not end the guest"
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(
        killed.elapsed() < Duration::from_secs(2),
        "{:?}",
        killed.elapsed()
    );
    assert_eq!(status.code(), Some(143));

    // The container's memory limit holds: a memory bomb ends with 137. (Under
    // `ctr` the container cannot read its cgroup, so the kernel's OOM kill
    // ends it; where /sys/fs/cgroup is mounted, as the kubelet does, the
    // shim makes the limit the guest's own and the guest gets the error.)
    let (code, out, err) = c.run(
        "membomb",
        &root,
        &["--memory-limit", "67108864"],
        &["/hostile.wasm", "membomb"],
    );
    assert_eq!(code, 137, "{out}{err}");

    // No Wasm where the args point: a clear failure, not a hang.
    let empty = c.rootfs("empty", &[]);
    let start = Instant::now();
    let (code, out, err) = c.run("nowasm", &empty, &[], &["/missing.wasm"]);
    assert_ne!(code, 0, "{out}{err}");
    assert!(start.elapsed() < Duration::from_secs(30));
}
