//! Dual runtime, as a Kubernetes node runs it: one containerd (Debian's,
//! started here with its CRI plugin and two runtime handlers, `runc` and
//! `wasmlayer`) driven through the CRI API as the kubelet drives it
//! (RunPodSandbox, PullImage, CreateContainer, StartContainer,
//! ContainerStatus, logs, StopContainer, RemoveContainer). Images come
//! from a real registry on loopback: a pause image (a static C program
//! built here), busybox on runc, and Wasm modules in a plain image layer on
//! the shim (whose pod sandbox runs nothing: the pause container is not run).

mod common;

use common::registry::Registry;
use common::{guest, Containerd, Cri, Setup};
use hyper_util::rt::TokioIo;
use k8s_cri::v1::image_service_client::ImageServiceClient;
use k8s_cri::v1::runtime_service_client::RuntimeServiceClient;
use k8s_cri::v1::*;
use serde_json::json;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant, SystemTime};
use tonic::transport::{Channel, Endpoint, Uri};

type Runtime = RuntimeServiceClient<Channel>;

static CONTAINERD_LOG: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();

/// containerd's log (with the shims'), for failure messages.
fn containerd_log() -> String {
    CONTAINERD_LOG
        .get()
        .and_then(|p| std::fs::read_to_string(p).ok())
        .unwrap_or_default()
}

/// A file in an image layer: path, contents, mode (symlinks: target).
enum Entry {
    File(&'static str, Vec<u8>, u32),
    Link(&'static str, &'static str),
}

/// Builds a one-layer linux/amd64 image and pushes it as `repo:tag`;
/// returns its reference.
fn push_image(reg: &Registry, repo: &str, entries: &[Entry], entrypoint: &[&str]) -> String {
    let mut tar = tar::Builder::new(Vec::new());
    let mut dirs = std::collections::BTreeSet::new();
    for e in entries {
        let path = match e {
            Entry::File(p, ..) | Entry::Link(p, _) => *p,
        };
        let mut parent = Path::new(path).parent();
        while let Some(p) = parent.filter(|p| !p.as_os_str().is_empty()) {
            dirs.insert(p.to_path_buf());
            parent = p.parent();
        }
    }
    for d in &dirs {
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(tar::EntryType::Directory);
        h.set_mode(0o755);
        h.set_size(0);
        tar.append_data(&mut h, d, std::io::empty()).unwrap();
    }
    for e in entries {
        let mut h = tar::Header::new_gnu();
        match e {
            Entry::File(p, bytes, mode) => {
                h.set_mode(*mode);
                h.set_size(bytes.len() as u64);
                tar.append_data(&mut h, p, bytes.as_slice()).unwrap();
            }
            Entry::Link(p, target) => {
                h.set_entry_type(tar::EntryType::Symlink);
                h.set_mode(0o777);
                h.set_size(0);
                tar.append_link(&mut h, p, target).unwrap();
            }
        }
    }
    let layer = tar.into_inner().unwrap();
    let layer_digest = reg.put_blob(repo, &layer);
    let config = serde_json::to_vec(&json!({
        "architecture": "amd64",
        "os": "linux",
        "config": {"Entrypoint": entrypoint, "Env": ["PATH=/bin"]},
        "rootfs": {"type": "layers", "diff_ids": [layer_digest]},
    }))
    .unwrap();
    let config_digest = reg.put_blob(repo, &config);
    reg.put_manifest(
        repo,
        "1",
        &json!({
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                       "digest": config_digest, "size": config.len()},
            "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar",
                        "digest": layer_digest, "size": layer.len()}],
        }),
    );
    format!("{}/{repo}:1", reg.addr)
}

/// The pod sandbox's pause program: a static C binary that waits for a
/// signal, as Kubernetes' own.
fn pause_binary(dir: &Path) -> Vec<u8> {
    let src = dir.join("pause.c");
    std::fs::write(
        &src,
        "#include <signal.h>\n#include <unistd.h>\nstatic void die(int s) { (void)s; _exit(0); }\nint main(void) { signal(SIGINT, die); signal(SIGTERM, die); for (;;) pause(); }\n",
    )
    .unwrap();
    let out = dir.join("pause");
    let st = Command::new("cc")
        .args(["-static", "-Os", "-o"])
        .arg(&out)
        .arg(&src)
        .status()
        .expect("cc: scripts/setup.sh installs gcc and libc6-dev");
    assert!(st.success(), "building the static pause program");
    std::fs::read(out).unwrap()
}

async fn connect(sock: PathBuf) -> Channel {
    Endpoint::try_from("http://[::]:50051")
        .unwrap()
        .connect_with_connector(tower::service_fn(move |_: Uri| {
            let sock = sock.clone();
            async move {
                Ok::<_, std::io::Error>(TokioIo::new(tokio::net::UnixStream::connect(sock).await?))
            }
        }))
        .await
        .expect("connect to containerd's CRI socket")
}

/// The kubelet's namespaces for a pod without `shareProcessNamespace`,
/// on the node's network (so no CNI plugin is needed).
fn namespaces() -> NamespaceOption {
    NamespaceOption {
        network: NamespaceMode::Node as i32,
        pid: NamespaceMode::Container as i32,
        ipc: NamespaceMode::Pod as i32,
        ..Default::default()
    }
}

fn tokio_runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

/// CRI's runtime and image services of `c` (whose log failure messages
/// then show).
async fn clients(c: &Containerd) -> (Runtime, ImageServiceClient<Channel>) {
    CONTAINERD_LOG.get_or_init(|| c.dir.path().join("containerd.log"));
    let channel = connect(c.sock()).await;
    (
        RuntimeServiceClient::new(channel.clone()),
        ImageServiceClient::new(channel),
    )
}

fn pod_config(name: &str, logs: &Path) -> PodSandboxConfig {
    PodSandboxConfig {
        metadata: Some(PodSandboxMetadata {
            name: name.into(),
            uid: format!("uid-{name}"),
            namespace: "default".into(),
            attempt: 0,
        }),
        log_directory: logs.join(name).display().to_string(),
        linux: Some(LinuxPodSandboxConfig {
            security_context: Some(LinuxSandboxSecurityContext {
                namespace_options: Some(namespaces()),
                ..Default::default()
            }),
            ..Default::default()
        }),
        ..Default::default()
    }
}

struct Pod {
    id: String,
    config: PodSandboxConfig,
}

async fn run_pod(rt: &mut Runtime, name: &str, handler: &str, logs: &Path) -> Pod {
    let config = pod_config(name, logs);
    std::fs::create_dir_all(&config.log_directory).unwrap();
    let id = rt
        .run_pod_sandbox(RunPodSandboxRequest {
            config: Some(config.clone()),
            runtime_handler: handler.into(),
        })
        .await
        .unwrap_or_else(|e| panic!("RunPodSandbox {name} on {handler}: {e}"))
        .into_inner()
        .pod_sandbox_id;
    Pod { id, config }
}

/// What a container is made with.
#[derive(Default)]
struct Spec<'a> {
    image: &'a str,
    command: &'a [&'a str],
    args: &'a [&'a str],
    env: &'a [(&'a str, &'a str)],
    mounts: Vec<Mount>,
    memory: i64,
}

async fn create(rt: &mut Runtime, pod: &Pod, name: &str, spec: Spec<'_>) -> String {
    let strings = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    let config = ContainerConfig {
        metadata: Some(ContainerMetadata {
            name: name.into(),
            attempt: 0,
        }),
        image: Some(ImageSpec {
            image: spec.image.into(),
            ..Default::default()
        }),
        command: strings(spec.command),
        args: strings(spec.args),
        envs: spec
            .env
            .iter()
            .map(|(k, v)| KeyValue {
                key: k.to_string(),
                value: v.to_string(),
            })
            .collect(),
        mounts: spec.mounts,
        log_path: format!("{name}.log"),
        linux: Some(LinuxContainerConfig {
            resources: Some(LinuxContainerResources {
                memory_limit_in_bytes: spec.memory,
                ..Default::default()
            }),
            security_context: Some(LinuxContainerSecurityContext {
                namespace_options: Some(namespaces()),
                ..Default::default()
            }),
            ..Default::default()
        }),
        ..Default::default()
    };
    rt.create_container(CreateContainerRequest {
        pod_sandbox_id: pod.id.clone(),
        config: Some(config),
        sandbox_config: Some(pod.config.clone()),
    })
    .await
    .unwrap_or_else(|e| panic!("CreateContainer {name}: {e}"))
    .into_inner()
    .container_id
}

async fn start(rt: &mut Runtime, id: &str) -> Result<(), tonic::Status> {
    rt.start_container(StartContainerRequest {
        container_id: id.into(),
    })
    .await
    .map(|_| ())
}

async fn status(rt: &mut Runtime, id: &str) -> ContainerStatus {
    rt.container_status(ContainerStatusRequest {
        container_id: id.into(),
        verbose: false,
    })
    .await
    .unwrap()
    .into_inner()
    .status
    .unwrap()
}

/// Waits for the container to exit: its status.
async fn exited(rt: &mut Runtime, id: &str, limit: Duration) -> ContainerStatus {
    let deadline = Instant::now() + limit;
    loop {
        let st = status(rt, id).await;
        if st.state == ContainerState::ContainerExited as i32 {
            return st;
        }
        assert!(Instant::now() < deadline, "{id} did not exit: {st:?}");
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}

async fn running(rt: &mut Runtime, id: &str) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while status(rt, id).await.state != ContainerState::ContainerRunning as i32 {
        assert!(Instant::now() < deadline, "{id} never ran");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The text of a container's CRI log (`<time> <stream> <tag> <text>` lines).
fn log_text(st: &ContainerStatus) -> String {
    std::fs::read_to_string(&st.log_path)
        .unwrap_or_default()
        .lines()
        .map(|l| l.splitn(4, ' ').nth(3).unwrap_or(""))
        .collect::<Vec<_>>()
        .join("\n")
}

/// Creates, starts and waits for a container that runs to its end.
async fn run_to_end(
    rt: &mut Runtime,
    pod: &Pod,
    name: &str,
    spec: Spec<'_>,
) -> (ContainerStatus, String) {
    let id = create(rt, pod, name, spec).await;
    start(rt, &id)
        .await
        .unwrap_or_else(|e| panic!("StartContainer {name}: {e}\n{}", containerd_log()));
    let st = exited(rt, &id, Duration::from_secs(60)).await;
    let log = log_text(&st);
    remove(rt, &id).await;
    (st, log)
}

/// Runs a container that must end with `code` and give `reason` in its
/// log and in its termination message (a file in `dir` mounted at
/// `/dev/termination-log`, as the kubelet does).
#[allow(clippy::too_many_arguments)]
async fn ends_with_reason(
    rt: &mut Runtime,
    pod: &Pod,
    name: &str,
    mut spec: Spec<'_>,
    dir: &Path,
    code: i32,
    reason: &str,
) {
    let file = dir.join(format!("{name}.termination-log"));
    std::fs::write(&file, "").unwrap();
    spec.mounts.push(Mount {
        container_path: "/dev/termination-log".into(),
        host_path: file.display().to_string(),
        ..Default::default()
    });
    let (st, log) = run_to_end(rt, pod, name, spec).await;
    assert_eq!(st.exit_code, code, "{name}: {st:?}\n{log}");
    assert!(log.contains(reason), "{name}: {log}");
    assert!(
        std::fs::read_to_string(&file).unwrap().contains(reason),
        "{name}: termination message"
    );
}

/// Creates a container that cannot run: StartContainer fails with
/// `reason`, and the container's status says so (containerd's
/// `StartError`, the reason in its message), as Kubernetes shows it.
async fn refused_with_reason(
    rt: &mut Runtime,
    pod: &Pod,
    name: &str,
    spec: Spec<'_>,
    reason: &str,
) {
    let id = create(rt, pod, name, spec).await;
    let e = start(rt, &id).await.expect_err("the container started");
    assert!(e.message().contains(reason), "{name}: {e}");
    let st = status(rt, &id).await;
    assert_eq!(
        st.state,
        ContainerState::ContainerExited as i32,
        "{name}: {st:?}"
    );
    assert_eq!(st.reason, "StartError", "{name}: {st:?}");
    assert!(st.message.contains(reason), "{name}: {st:?}");
    remove(rt, &id).await;
}

async fn remove(rt: &mut Runtime, id: &str) {
    rt.remove_container(RemoveContainerRequest {
        container_id: id.into(),
    })
    .await
    .unwrap_or_else(|e| panic!("RemoveContainer {id}: {e}"));
}

/// Starts a looping guest and stops it with `timeout` (0: SIGKILL at
/// once): its status and how long the stop took.
async fn stop_loop(
    rt: &mut Runtime,
    pod: &Pod,
    image: &str,
    name: &str,
    timeout: i64,
) -> (ContainerStatus, Duration) {
    let id = create(
        rt,
        pod,
        name,
        Spec {
            image,
            command: &["/hostile.wasm", "loop"],
            ..Default::default()
        },
    )
    .await;
    start(rt, &id).await.unwrap();
    running(rt, &id).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let t = Instant::now();
    rt.stop_container(StopContainerRequest {
        container_id: id.clone(),
        timeout,
    })
    .await
    .unwrap();
    let st = exited(rt, &id, Duration::from_secs(30)).await;
    let took = t.elapsed();
    remove(rt, &id).await;
    (st, took)
}

/// Every file in the compile cache, with its modification time.
fn cache_files(dir: &Path) -> BTreeMap<PathBuf, SystemTime> {
    let mut out = BTreeMap::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            let m = e.metadata().unwrap();
            if m.is_dir() {
                stack.push(e.path());
            } else {
                out.insert(e.path(), m.modified().unwrap());
            }
        }
    }
    out
}

const POLICY: &str = r#"package wasmlayer.admission

default allow := false

allow if count(reasons) == 0

reasons contains "workloads marked TIER=untrusted may not run on this node" if {
	input.requested.env.TIER == "untrusted"
}

grant := {"max_memory": 65536} if input.requested.env.SMALL == "1"
"#;

/// The images both the test and the benchmark use: (pause, busybox, Wasm).
fn push_images(reg: &Registry, w: &Path) -> (String, String, String) {
    let pause = push_image(
        reg,
        "pause",
        &[Entry::File("pause", pause_binary(w), 0o755)],
        &["/pause"],
    );
    let busybox = std::fs::read("/bin/busybox")
        .expect("/bin/busybox: scripts/setup.sh installs Debian's busybox-static");
    let busybox = push_image(
        reg,
        "busybox",
        &[
            Entry::File("bin/busybox", busybox, 0o755),
            Entry::Link("bin/sh", "busybox"),
            Entry::Link("bin/echo", "busybox"),
        ],
        &["/bin/sh"],
    );
    let wasm = push_image(
        reg,
        "wasm",
        &[
            Entry::File(
                "hello.wasm",
                std::fs::read(guest("hello-p1.wasm")).unwrap(),
                0o644,
            ),
            Entry::File(
                "hostile.wasm",
                std::fs::read(guest("hostile-p1.wasm")).unwrap(),
                0o644,
            ),
        ],
        &["/hello.wasm"],
    );
    (pause, busybox, wasm)
}

async fn pull(images: &mut ImageServiceClient<Channel>, image: &str) {
    images
        .pull_image(PullImageRequest {
            image: Some(ImageSpec {
                image: image.to_string(),
                ..Default::default()
            }),
            ..Default::default()
        })
        .await
        .unwrap_or_else(|e| panic!("PullImage {image}: {e}"));
}

async fn remove_pods(rt: &mut Runtime, pods: Vec<Pod>) {
    for p in pods {
        rt.stop_pod_sandbox(StopPodSandboxRequest {
            pod_sandbox_id: p.id.clone(),
        })
        .await
        .unwrap();
        rt.remove_pod_sandbox(RemovePodSandboxRequest {
            pod_sandbox_id: p.id.clone(),
        })
        .await
        .unwrap();
    }
}

#[test]
fn a_wasm_pod_runs_beside_a_runc_pod_on_one_containerd() {
    let reg = Registry::start();
    let work = tempfile::Builder::new()
        .prefix("wasmlayer-cri")
        .tempdir()
        .unwrap();
    let w = work.path();

    // The images, in the registry.
    let (pause, busybox, wasm) = push_images(&reg, w);
    let not_wasm = push_image(
        &reg,
        "notwasm",
        &[Entry::File("app.txt", b"not a module\n".to_vec(), 0o644)],
        &["/app.txt"],
    );

    std::fs::write(w.join("admission.rego"), POLICY).unwrap();
    let c = Containerd::start(Setup {
        cri: Some(Cri {
            registry: reg.addr.clone(),
            sandbox_image: pause.clone(),
        }),
        shim_config: format!("policy = \"{}\"\n", w.join("admission.rego").display()),
        ..Default::default()
    });

    tokio_runtime().block_on(async {
        let (mut rt, mut images) = clients(&c).await;
        let v = rt
            .version(VersionRequest::default())
            .await
            .expect("CRI Version")
            .into_inner();
        assert_eq!(v.runtime_name, "containerd");

        for image in [&busybox, &wasm, &not_wasm] {
            pull(&mut images, image).await;
        }
        // An unknown reference: a clear error.
        let e = images
            .pull_image(PullImageRequest {
                image: Some(ImageSpec {
                    image: format!("{}/nothing:1", reg.addr),
                    ..Default::default()
                }),
                ..Default::default()
            })
            .await
            .unwrap_err();
        assert!(e.message().contains("not found"), "{e}");

        let logs = w.join("logs");

        // busybox on runc.
        let runc_pod = run_pod(&mut rt, "runc-pod", "runc", &logs).await;
        let (st, log) = run_to_end(
            &mut rt,
            &runc_pod,
            "echo",
            Spec {
                image: &busybox,
                command: &["/bin/echo", "hello from runc"],
                ..Default::default()
            },
        )
        .await;
        assert_eq!(st.exit_code, 0, "{st:?}\n{log}");
        assert_eq!(log.trim(), "hello from runc");

        // Wasm on the shim, in a pod of its own.
        let pod = run_pod(&mut rt, "wasm-pod", "wasmlayer", &logs).await;
        let data = w.join("data");
        std::fs::create_dir_all(&data).unwrap();
        std::fs::write(data.join("input.txt"), "from the node").unwrap();
        let ro = || Mount {
            container_path: "/data".into(),
            host_path: data.display().to_string(),
            readonly: true,
            ..Default::default()
        };
        let hello = || Spec {
            image: &wasm,
            args: &["pod"],
            env: &[("NAME", "cri")],
            mounts: vec![ro()],
            ..Default::default()
        };
        let (st, log) = run_to_end(&mut rt, &pod, "hello", hello()).await;
        assert_eq!(st.exit_code, 0, "{st:?}\n{log}\n{}", c.log());
        assert!(log.contains("Hello, pod!"), "{log}");
        assert!(log.contains("env NAME=cri"), "{log}");
        // The read-only mount stays so.
        assert!(log.contains("cannot write /data/output.txt"), "{log}");
        assert!(!data.join("output.txt").exists());

        // The module was compiled once, into the shim's cache; a second
        // container of the same image compiles nothing.
        let cached = cache_files(&c.cache());
        assert!(!cached.is_empty(), "nothing in the compile cache");
        let (st, log) = run_to_end(&mut rt, &pod, "hello-again", hello()).await;
        assert_eq!(st.exit_code, 0, "{st:?}\n{log}");
        assert_eq!(
            cache_files(&c.cache()),
            cached,
            "the second container compiled"
        );

        // The guest's exit status is the container's.
        let (st, log) = run_to_end(
            &mut rt,
            &pod,
            "exit7",
            Spec {
                image: &wasm,
                command: &["/hostile.wasm", "exit", "7"],
                ..Default::default()
            },
        )
        .await;
        assert_eq!(st.exit_code, 7, "{st:?}\n{log}");

        // The container's memory limit is the guest's: a memory bomb
        // ends with 137 and says why, in its log and its termination
        // message.
        ends_with_reason(
            &mut rt,
            &pod,
            "membomb",
            Spec {
                image: &wasm,
                command: &["/hostile.wasm", "membomb"],
                memory: 64 << 20,
                ..Default::default()
            },
            w,
            137,
            "guest exceeded its memory limit (64 MiB)",
        )
        .await;

        // The node's admission policy: a denial, with its reason in the
        // container's status.
        refused_with_reason(
            &mut rt,
            &pod,
            "denied",
            Spec {
                image: &wasm,
                env: &[("TIER", "untrusted")],
                ..Default::default()
            },
            "admission denied: workloads marked TIER=untrusted may not run on this node",
        )
        .await;
        // ... and a grant that narrows the memory limit below what the
        // module declares.
        let (st, log) = run_to_end(
            &mut rt,
            &pod,
            "small",
            Spec {
                image: &wasm,
                env: &[("SMALL", "1")],
                ..Default::default()
            },
        )
        .await;
        assert_eq!(st.exit_code, 137, "{st:?}\n{log}");
        assert!(
            log.contains("of memory to start, above its memory limit (64 KiB)"),
            "{log}"
        );

        // A looping guest: StopContainer's SIGTERM ends it at once
        // (143), and so does SIGKILL (137) with no grace period.
        let (st, took) = stop_loop(&mut rt, &pod, &wasm, "loop-term", 10).await;
        assert_eq!(st.exit_code, 143, "{st:?}");
        assert!(took < Duration::from_secs(1), "SIGTERM took {took:?}");
        let (st, took) = stop_loop(&mut rt, &pod, &wasm, "loop-kill", 0).await;
        assert_eq!(st.exit_code, 137, "{st:?}");
        assert!(took < Duration::from_secs(1), "SIGKILL took {took:?}");

        // An image with no Wasm in it: refused at once, with the reason in
        // its status.
        refused_with_reason(
            &mut rt,
            &pod,
            "notwasm",
            Spec {
                image: &not_wasm,
                ..Default::default()
            },
            "the image holds no Wasm: /app.txt is not a Wasm module or component",
        )
        .await;

        remove_pods(&mut rt, vec![pod, runc_pod]).await;
        let left = rt
            .list_containers(ListContainersRequest::default())
            .await
            .unwrap()
            .into_inner()
            .containers;
        assert!(left.is_empty(), "{left:?}");
    });
}

/// Resident and proportional set size (KB) of a process.
fn rss_pss(pid: i32) -> (u64, u64) {
    let text = std::fs::read_to_string(format!("/proc/{pid}/smaps_rollup")).unwrap_or_default();
    let field = |name: &str| {
        text.lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|n| n.parse::<u64>().ok())
            .unwrap_or(0)
    };
    (field("Rss:"), field("Pss:"))
}

/// The processes of a container (those in its cgroup, v1 or v2).
fn container_pids(id: &str) -> Vec<i32> {
    let mut dirs = vec![PathBuf::from("/sys/fs/cgroup/k8s.io").join(id)];
    dirs.push(PathBuf::from("/sys/fs/cgroup/memory/k8s.io").join(id));
    dirs.iter()
        .find_map(|d| std::fs::read_to_string(d.join("cgroup.procs")).ok())
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.trim().parse().ok())
        .collect()
}

/// Shim processes of this containerd whose binary name contains `shim`.
fn shim_pids(dir: &Path, shim: &str) -> Vec<i32> {
    let dir = dir.to_string_lossy();
    std::fs::read_dir("/proc")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|p| {
            let pid = p.file_name().to_string_lossy().parse::<i32>().ok()?;
            let cmd = std::fs::read(p.path().join("cmdline")).ok()?;
            let cmd = String::from_utf8_lossy(&cmd);
            (cmd.contains(&*dir) && cmd.split('\0').next()?.contains(shim)).then_some(pid)
        })
        .collect()
}

fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// The measurements `benches/shim.sh` reports (it asserts nothing about
/// speed): through CRI on one containerd, create-to-exit of a hello
/// container in a running pod on runc (busybox `echo`), on this shim and,
/// when `WASMLAYER_BENCH_WASMTIME_SHIM` names runwasi's
/// `containerd-shim-wasmtime-v1`, on that one (the same `hello-p1.wasm`);
/// and the memory of `WASMLAYER_BENCH_LIVE` sleeping Wasm containers of one
/// pod (their processes and the pod's shim, less the pod alone). Writes
/// JSON to `WASMLAYER_BENCH_OUT`.
#[test]
#[ignore = "a benchmark, which benches/shim.sh runs"]
fn bench_cri_create_to_exit() {
    let runs: usize = env_or("WASMLAYER_BENCH_RUNS", 30);
    let live: usize = env_or("WASMLAYER_BENCH_LIVE", 10);
    let wasmtime = std::env::var_os("WASMLAYER_BENCH_WASMTIME_SHIM").map(PathBuf::from);
    let out = std::env::var_os("WASMLAYER_BENCH_OUT").map(PathBuf::from);
    let reg = Registry::start();
    let work = tempfile::Builder::new()
        .prefix("wasmlayer-cri-bench")
        .tempdir()
        .unwrap();
    let (pause, busybox, wasm) = push_images(&reg, work.path());
    let mut setup = Setup {
        cri: Some(Cri {
            registry: reg.addr.clone(),
            sandbox_image: pause,
        }),
        ..Default::default()
    };
    let mut handlers = vec![
        ("runc", "busybox echo", "runc"),
        ("wasmlayer", "hello-p1.wasm", "wasmlayer"),
    ];
    if let Some(shim) = &wasmtime {
        setup
            .runtimes
            .push(("wasmtime".into(), "io.containerd.wasmtime.v1".into()));
        setup.path.push(shim.parent().unwrap().to_path_buf());
        handlers.push(("wasmtime", "hello-p1.wasm", "wasmtime"));
    }
    let c = Containerd::start(setup);
    let logs = work.path().join("logs");
    let report = tokio_runtime().block_on(async {
            let (mut rt, mut images) = clients(&c).await;
            pull(&mut images, &busybox).await;
            pull(&mut images, &wasm).await;
            let mut report = serde_json::Map::new();
            for (handler, workload, shim) in handlers {
                let pod = run_pod(&mut rt, &format!("bench-{handler}"), handler, &logs).await;
                let hello = || Spec {
                    image: if handler == "runc" { &busybox } else { &wasm },
                    command: if handler == "runc" {
                        &["/bin/echo", "Hello, world!"]
                    } else {
                        &["/hello.wasm"]
                    },
                    ..Default::default()
                };
                let mut times = Vec::new();
                // Two first runs (the compile cache, the page cache) are left out.
                for i in 0..runs + 2 {
                    let t = Instant::now();
                    let id = create(&mut rt, &pod, &format!("hello-{i}"), hello()).await;
                    start(&mut rt, &id).await.unwrap();
                    let st = exited(&mut rt, &id, Duration::from_secs(60)).await;
                    let took = t.elapsed();
                    assert_eq!(st.exit_code, 0, "{handler}: {st:?}\n{}", log_text(&st));
                    if i >= 2 {
                        times.push(took.as_secs_f64() * 1e3);
                    }
                    remove(&mut rt, &id).await;
                }
                times.sort_by(|a, b| a.partial_cmp(b).unwrap());
                let median = times[times.len() / 2];
                eprintln!(
                    "{handler:>10}: create to exit of {workload}: median {median:.1} ms (min {:.1}, max {:.1}, {runs} runs)",
                    times[0],
                    times[times.len() - 1]
                );
                let mut entry = json!({
                    "workload": workload,
                    "median_ms": median,
                    "min_ms": times[0],
                    "max_ms": times[times.len() - 1],
                    "runs": runs,
                });
                if handler != "runc" {
                    // Memory of `live` sleeping containers in this pod.
                    let pod_pids = || {
                        let mut p = shim_pids(c.dir.path(), &format!("containerd-shim-{shim}"));
                        p.extend(container_pids(&pod.id));
                        p
                    };
                    let sum = |pids: &[i32]| {
                        pids.iter().map(|p| rss_pss(*p)).fold((0, 0), |a, b| (a.0 + b.0, a.1 + b.1))
                    };
                    let base = sum(&pod_pids());
                    let mut ids = Vec::new();
                    for i in 0..live {
                        let id = create(
                            &mut rt,
                            &pod,
                            &format!("sleep-{i}"),
                            Spec {
                                image: &wasm,
                                command: &["/hostile.wasm", "sleep", "600"],
                                ..Default::default()
                            },
                        )
                        .await;
                        start(&mut rt, &id).await.unwrap();
                        ids.push(id);
                    }
                    for id in &ids {
                        running(&mut rt, id).await;
                    }
                    tokio::time::sleep(Duration::from_millis(500)).await;
                    let mut pids = pod_pids();
                    for id in &ids {
                        pids.extend(container_pids(id));
                    }
                    let all = sum(&pids);
                    let per = |a: u64, b: u64| (a.saturating_sub(b)) as f64 / live as f64;
                    let (rss, pss) = (per(all.0, base.0), per(all.1, base.1));
                    eprintln!(
                        "{handler:>10}: {live} sleeping containers: {:.0} KB RSS, {:.0} KB PSS each (pod alone: {} KB RSS)",
                        rss, pss, base.0
                    );
                    entry["live"] = json!(live);
                    entry["rss_kb_per_container"] = json!(rss);
                    entry["pss_kb_per_container"] = json!(pss);
                    entry["pod_rss_kb"] = json!(base.0);
                    for id in &ids {
                        rt.stop_container(StopContainerRequest {
                            container_id: id.clone(),
                            timeout: 0,
                        })
                        .await
                        .unwrap();
                        remove(&mut rt, id).await;
                    }
                }
                report.insert(handler.to_string(), entry);
                remove_pods(&mut rt, vec![pod]).await;
            }
            serde_json::Value::Object(report)
        });
    let text = serde_json::to_string_pretty(&report).unwrap();
    match out {
        Some(path) => std::fs::write(path, text).unwrap(),
        None => println!("{text}"),
    }
}
