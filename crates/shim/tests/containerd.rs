//! The shim under a real containerd (Debian's, started here with its own
//! root, state and socket in a temporary directory), driven with `ctr` as
//! on a node: a Wasm container's output, args, env, files from its root
//! filesystem, read-only mounts, exit status, the configured timeout,
//! SIGTERM of a looping guest, its memory limit, and bad input (no Wasm, a
//! mount that does not exist).

mod common;
use common::registry::Registry;
use common::{guest, Containerd, Setup};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

trait CtrRun {
    fn rootfs(&self, name: &str, files: &[(&str, &Path)]) -> PathBuf;
    fn run(&self, id: &str, rootfs: &Path, extra: &[&str], cmd: &[&str]) -> (i32, String, String);
}

impl CtrRun for Containerd {
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

#[test]
fn wasm_containers_run_on_containerd() {
    // The node's default limits come from the shim's configuration.
    let c = Containerd::start(Setup {
        shim_config: "[limits]\ntimeout = \"2s\"\n".into(),
        ..Default::default()
    });
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

    // The configured timeout ends a guest that loops and is not stopped.
    let (code, out, err) = c.run("timeout", &root, &[], &["/hostile.wasm", "loop"]);
    assert_eq!(code, 124, "{out}{err}");
    assert!(
        err.contains("guest exceeded its wall-clock timeout"),
        "{out}{err}"
    );

    // Only the env the spec lists (ctr adds PATH): the host's is not there.
    let (code, out, _) = c.run("env", &root, &[], &["/hostile.wasm", "envall"]);
    assert_eq!(code, 0);
    assert!(!out.contains("HOME="), "{out}");

    // The kernel's directories are not the guest's: it cannot read the
    // host process's environment or write to its memory through /proc.
    for cmd in [
        &["/hostile.wasm", "read", "/proc/self/environ"][..],
        &["/hostile.wasm", "write", "/proc/self/comm", "x"][..],
        &["/hostile.wasm", "ls", "/sys"][..],
    ] {
        let (code, out, err) = c.run("kernel", &root, &[], cmd);
        assert_ne!(code, 0, "{cmd:?}: {out}{err}");
        assert!(!out.contains("PATH="), "{out}");
    }

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

    // The container's memory cgroup limit is the guest's: a memory bomb
    // ends with 137 and the reason.
    let (code, out, err) = c.run(
        "membomb",
        &root,
        &["--memory-limit", "67108864"],
        &["/hostile.wasm", "membomb"],
    );
    assert_eq!(code, 137, "{out}{err}");
    assert!(
        err.contains("guest exceeded its memory limit (64 MiB)"),
        "{out}{err}"
    );

    // A read-only mount stays read-only: the guest reads it but cannot
    // write to it.
    let input = c.dir.path().join("ro");
    std::fs::create_dir_all(&input).unwrap();
    std::fs::write(input.join("input.txt"), "ro").unwrap();
    let root = c.rootfs("hello-ro", &[("hello.wasm", &hello)]);
    let mount = format!(
        "type=bind,src={},dst=/data,options=rbind:ro",
        input.display()
    );
    let (code, out, err) = c.run("ro", &root, &["--mount", &mount], &["/hello.wasm"]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(err.contains("cannot write /data/output.txt"), "{out}{err}");
    assert!(!input.join("output.txt").exists());
    // ... and a read-write one is written through.
    let mount = format!(
        "type=bind,src={},dst=/data,options=rbind:rw",
        input.display()
    );
    let (code, out, err) = c.run("rw", &root, &["--mount", &mount], &["/hello.wasm"]);
    assert_eq!(code, 0, "{out}{err}");
    assert_eq!(
        std::fs::read_to_string(input.join("output.txt")).unwrap(),
        "RO"
    );

    // A mount whose source does not exist: the task is not created, and
    // the reason says which (CRI creates a missing host directory before
    // it gets here, as the kubelet expects). Nothing is left.
    let mount = "type=bind,src=/nonexistent/wasmlayer,dst=/data,options=rbind:ro";
    let (code, out, err) = c.run("nomount", &root, &["--mount", mount], &["/hello.wasm"]);
    assert_ne!(code, 0, "{out}{err}");
    assert!(
        err.contains("mount /data: its source /nonexistent/wasmlayer cannot be used"),
        "{out}{err}"
    );

    // No Wasm where the args point: a clear failure at once, not a hang.
    let empty = c.rootfs("empty", &[]);
    let start = Instant::now();
    let (code, out, err) = c.run("nowasm", &empty, &[], &["/missing.wasm"]);
    assert_ne!(code, 0, "{out}{err}");
    assert!(
        err.contains("the image holds no Wasm: /missing.wasm does not exist"),
        "{out}{err}"
    );
    std::fs::write(empty.join("app.txt"), "text").unwrap();
    let (code, out, err) = c.run("notwasm", &empty, &[], &["/app.txt"]);
    assert_ne!(code, 0, "{out}{err}");
    assert!(
        err.contains("the image holds no Wasm: /app.txt is not a Wasm module or component"),
        "{out}{err}"
    );
    assert!(start.elapsed() < Duration::from_secs(30));

    // Nothing is left behind.
    let left = c.ctr(&["containers", "ls", "-q"]);
    let left = String::from_utf8_lossy(&left.stdout);
    for id in ["nomount", "nowasm", "notwasm"] {
        if left.lines().any(|l| l == id) {
            // `ctr run --rm` removes a container only when its task ran.
            assert!(c.ctr(&["containers", "rm", id]).status.success());
        }
    }
}

/// A CNCF Wasm OCI artifact (config `application/vnd.wasm.config.v0+json`,
/// one `application/wasm` layer) from a registry on loopback: fetched into
/// containerd's content store (`ctr content fetch`; containerd 1.6.20 does
/// not unpack such images into a snapshot), a container of that image
/// created through containerd's API, and its task started with `ctr`. The
/// shim reads the layer from the content store, checked against its
/// digest, and runs it.
#[test]
fn a_wasm_artifact_runs_from_containerds_content_store() {
    let reg = Registry::start();
    let module = std::fs::read(guest("hello-p1.wasm")).unwrap();
    let layer = reg.put_blob("hello", &module);
    let config = br#"{"created":"2026-01-01T00:00:00Z","architecture":"wasm","os":"wasip1","layerDigests":[]}"#;
    let config_digest = reg.put_blob("hello", config);
    reg.put_manifest(
        "hello",
        "artifact",
        &serde_json::json!({
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "artifactType": "application/vnd.wasm.config.v0+json",
            "config": {"mediaType": "application/vnd.wasm.config.v0+json", "digest": config_digest, "size": config.len()},
            "layers": [{"mediaType": "application/wasm", "digest": layer, "size": module.len()}],
        }),
    );
    let c = Containerd::start(Setup::default());
    let image = format!("{}/hello:artifact", reg.addr);
    let o = c.ctr(&[
        "content",
        "fetch",
        "--plain-http",
        "--all-platforms",
        &image,
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));

    // The container record, as a client of containerd makes it: the
    // image, our runtime, a spec whose args name no file of the (empty)
    // root.
    let spec = serde_json::json!({
        "ociVersion": "1.0.2",
        "process": {"args": ["/hello.wasm", "artifact"], "cwd": "/", "user": {"uid": 0, "gid": 0}, "env": []},
        "root": {"path": "rootfs"},
        "linux": {},
    });
    create_container(&c, "artifact", &image, &spec);
    let o = c.ctr(&["task", "start", "artifact"]);
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(
        o.status.success(),
        "{out}{}\n{}",
        String::from_utf8_lossy(&o.stderr),
        c.log()
    );
    assert!(out.contains("Hello, artifact!"), "{out}");
    // `ctr task start` deleted the task when it ended.
    assert!(c.ctr(&["containers", "rm", "artifact"]).status.success());
}

/// Each guest's thread in the shim is confined (Landlock, seccomp) while
/// the shim's other threads go on serving containerd: through the test-only
/// probe of debug builds (`WASMLAYER_SANDBOX_PROBE`, passed by containerd to
/// its shims), right where a guest starts, the shim tries to read a file
/// outside the container's grant, run a program and open a socket. Each
/// is refused, and each is allowed with `host_sandbox = false`. Containers
/// started after a confined one still start (the shim itself is not).
#[test]
fn each_guests_thread_in_the_shim_is_confined() {
    for sandbox in [true, false] {
        let secret = tempfile::NamedTempFile::new().unwrap();
        std::fs::write(secret.path(), "outside").unwrap();
        let c = Containerd::start(Setup {
            shim_config: format!("host_sandbox = {sandbox}\n"),
            env: vec![(
                "WASMLAYER_SANDBOX_PROBE".into(),
                secret.path().display().to_string(),
            )],
            ..Default::default()
        });
        let hello = guest("hello-p1.wasm");
        let root = c.rootfs("hello", &[("hello.wasm", &hello)]);
        // The probe writes to the container's stderr.
        for id in ["first", "second"] {
            let (code, out, err) = c.run(id, &root, &[], &["/hello.wasm", id]);
            assert_eq!(code, 0, "{out}\n{err}\n{}", c.log());
            assert!(out.contains(&format!("Hello, {id}!")), "{out}");
            let probes: Vec<&str> = err
                .lines()
                .filter(|l| l.contains("sandbox probe:"))
                .collect();
            assert_eq!(probes.len(), 3, "{id}: {err}\n{}", c.log());
            for p in &probes {
                match sandbox {
                    true => assert!(p.contains("denied"), "{id}: {p}\n{err}"),
                    false => assert!(p.contains("allowed"), "{id}: {p}"),
                }
            }
        }
    }
}

/// Creates a container record through containerd's API (the Containers
/// service), with no snapshot.
fn create_container(c: &Containerd, id: &str, image: &str, spec: &serde_json::Value) {
    use containerd_client::services::v1::container::Runtime;
    use containerd_client::services::v1::containers_client::ContainersClient;
    use containerd_client::services::v1::{Container, CreateContainerRequest};
    use containerd_client::tonic::Request;
    use containerd_client::with_namespace;
    let namespace = c.namespace();
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(async {
            let channel = containerd_client::connect(c.sock()).await.unwrap();
            let container = Container {
                id: id.into(),
                image: image.into(),
                runtime: Some(Runtime {
                    name: "io.containerd.wasmlayer.v1".into(),
                    options: None,
                }),
                spec: Some(prost_types::Any {
                    type_url: "types.containerd.io/opencontainers/runtime-spec/1/Spec".into(),
                    value: serde_json::to_vec(spec).unwrap(),
                }),
                ..Default::default()
            };
            let req = with_namespace!(
                CreateContainerRequest {
                    container: Some(container)
                },
                namespace
            );
            ContainersClient::new(channel)
                .create(req)
                .await
                .unwrap_or_else(|e| panic!("create container {id}: {e}"));
        });
}
