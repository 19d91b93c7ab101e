//! What a container is, from its OCI runtime spec: the pod's sandbox or a
//! guest; the guest's args, env, directories, memory limit and where its
//! termination message goes. The guest runs in the shim's process, so the
//! spec's root and mounts are granted by their host paths rather than
//! mounted into namespaces of its own.

use oci_spec::runtime::Spec;
use std::collections::BTreeMap;
use std::ffi::CString;
use std::fs::File;
use std::os::fd::{AsRawFd, FromRawFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use wasmlayer_core::DirGrant;

/// Where Kubernetes mounts the file whose text becomes the container's
/// termination message.
pub const TERMINATION_LOG: &str = "/dev/termination-log";

/// Top-level directories of a container's root that are the kernel's:
/// never granted (a guest must not reach the shim's `/proc/self/mem`).
const KERNEL: [&str; 3] = ["/proc", "/sys", "/dev"];

/// A guest container, as its spec describes it.
#[derive(Debug, Default, PartialEq)]
pub struct Guest {
    /// The host path of the container's root filesystem.
    pub root: PathBuf,
    pub args: Vec<String>,
    pub env: BTreeMap<String, String>,
    pub dirs: Vec<DirGrant>,
    /// `linux.resources.memory.limit`.
    pub memory_limit: Option<u64>,
    /// The host file mounted at [`TERMINATION_LOG`].
    pub termination_log: Option<PathBuf>,
}

/// A container of the spec: the pod's sandbox (its `pause` container,
/// which holds nothing a Wasm pod needs) or a guest.
#[derive(Debug, PartialEq)]
pub enum Container {
    Sandbox,
    Guest(Guest),
}

/// Reads a spec whose root path is already absolute.
pub fn read(spec: &Spec) -> Result<Container, String> {
    let annotations = spec.annotations().clone().unwrap_or_default();
    let sandbox = [
        "io.kubernetes.cri.container-type",
        "io.kubernetes.cri-o.ContainerType",
    ]
    .iter()
    .any(|k| annotations.get(*k).is_some_and(|v| v == "sandbox"));
    if sandbox {
        return Ok(Container::Sandbox);
    }
    let root = spec
        .root()
        .as_ref()
        .ok_or("the spec has no root filesystem")?;
    let root_ro = root.readonly().unwrap_or(false);
    let root = root.path().clone();
    let process = spec.process().as_ref().ok_or("the spec has no process")?;
    let args = process.args().clone().unwrap_or_default();
    let env = process
        .env()
        .iter()
        .flatten()
        .filter_map(|kv| kv.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    let top = std::fs::read_dir(&root)
        .map_err(|e| format!("the container's root {}: {e}", root.display()))?
        .flatten()
        // Symbolic links are not followed: only real directories.
        .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
        .map(|e| format!("/{}", e.file_name().to_string_lossy()))
        .filter(|d| !KERNEL.contains(&d.as_str()))
        .collect::<Vec<_>>();
    let mut dirs: Vec<DirGrant> = top
        .iter()
        .map(|d| DirGrant {
            host: root.join(&d[1..]),
            guest: d.into(),
            read_only: root_ro,
        })
        .collect();
    let mut termination_log = None;
    for m in spec.mounts().iter().flatten() {
        let options = m.options().clone().unwrap_or_default();
        let bind = m.typ().as_deref() == Some("bind")
            || options.iter().any(|o| o == "bind" || o == "rbind");
        if !bind {
            // proc, sysfs, tmpfs, devpts, mqueue, cgroup: the kernel's.
            continue;
        }
        let guest = m.destination().to_string_lossy().into_owned();
        let Some(source) = m.source() else { continue };
        let meta = std::fs::metadata(source).map_err(|e| {
            format!(
                "mount {guest}: its source {} cannot be used: {e}",
                source.display()
            )
        })?;
        if guest == TERMINATION_LOG {
            termination_log = Some(source.clone());
            continue;
        }
        let kernel = KERNEL
            .iter()
            .any(|k| guest == *k || guest.starts_with(&format!("{k}/")));
        // Files (/etc/hosts, /etc/resolv.conf) cannot be preopened.
        if kernel || !meta.is_dir() {
            continue;
        }
        dirs.retain(|d| d.guest != guest);
        dirs.push(DirGrant {
            host: source.clone(),
            guest,
            read_only: options.iter().any(|o| o == "ro"),
        });
    }
    dirs.sort_by(|a, b| a.guest.cmp(&b.guest));
    let memory_limit = spec
        .linux()
        .as_ref()
        .and_then(|l| l.resources().as_ref())
        .and_then(|r| r.memory().as_ref())
        .and_then(|m| m.limit())
        .filter(|l| *l > 0)
        .map(|l| l as u64);
    Ok(Container::Guest(Guest {
        root,
        args,
        env,
        dirs,
        memory_limit,
        termination_log,
    }))
}

/// Opens `path` inside `root` as if `root` were `/`: `..` and symbolic
/// links (absolute ones too) cannot leave it (`openat2`'s
/// `RESOLVE_IN_ROOT`).
pub fn open_in_root(root: &Path, path: &str) -> std::io::Result<File> {
    let dir = File::open(root)?;
    let name = CString::new(Path::new(path).as_os_str().as_bytes())
        .map_err(|_| std::io::Error::from(std::io::ErrorKind::InvalidInput))?;
    // SAFETY: `open_how` is plain data; all zeroes is a valid value.
    let mut how: libc::open_how = unsafe { std::mem::zeroed() };
    how.flags = (libc::O_RDONLY | libc::O_CLOEXEC) as u64;
    how.resolve = libc::RESOLVE_IN_ROOT;
    // SAFETY: valid descriptor, NUL-terminated path and a complete
    // `open_how` of the size passed.
    let fd = unsafe {
        libc::syscall(
            libc::SYS_openat2,
            dir.as_raw_fd(),
            name.as_ptr(),
            &how as *const libc::open_how,
            std::mem::size_of::<libc::open_how>(),
        )
    };
    if fd < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: a descriptor the kernel just gave us, owned by nothing else.
    Ok(unsafe { File::from_raw_fd(fd as i32) })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    fn spec(json: serde_json::Value) -> Spec {
        serde_json::from_value(json).unwrap()
    }

    #[test]
    fn a_guest_gets_the_roots_directories_and_bind_mounts_never_the_kernels() {
        let d = tempfile::tempdir().unwrap();
        let root = d.path().join("rootfs");
        for sub in ["bin", "etc", "proc", "sys", "dev", "data", "tmp"] {
            std::fs::create_dir_all(root.join(sub)).unwrap();
        }
        std::fs::write(root.join("app.wasm"), b"\0asm").unwrap();
        std::os::unix::fs::symlink("/etc", root.join("hostetc")).unwrap();
        let (ro, rw, log) = (
            d.path().join("ro"),
            d.path().join("rw"),
            d.path().join("log"),
        );
        std::fs::create_dir(&ro).unwrap();
        std::fs::create_dir(&rw).unwrap();
        std::fs::write(&log, "").unwrap();
        let s = spec(serde_json::json!({
            "ociVersion": "1.0.2",
            "root": {"path": root, "readonly": false},
            "process": {"args": ["/app.wasm", "x"], "env": ["A=1", "B=two=2"], "cwd": "/", "user": {"uid": 0, "gid": 0}},
            "mounts": [
                {"destination": "/proc", "type": "proc", "source": "proc"},
                {"destination": "/dev", "type": "tmpfs", "source": "tmpfs"},
                {"destination": "/data", "type": "bind", "source": ro, "options": ["rbind", "ro"]},
                {"destination": "/out", "source": rw, "options": ["rbind", "rw"]},
                {"destination": "/dev/termination-log", "type": "bind", "source": log, "options": ["rbind"]},
                {"destination": "/etc/hosts", "type": "bind", "source": log, "options": ["rbind", "ro"]},
            ],
            "linux": {"resources": {"memory": {"limit": 67108864}}},
        }));
        let Container::Guest(g) = read(&s).unwrap() else {
            panic!("not a guest")
        };
        assert_eq!(g.args, ["/app.wasm", "x"]);
        assert_eq!(g.env["A"], "1");
        assert_eq!(g.env["B"], "two=2");
        assert_eq!(g.memory_limit, Some(64 << 20));
        assert_eq!(g.termination_log, Some(log.clone()));
        let got: Vec<(String, PathBuf, bool)> = g
            .dirs
            .iter()
            .map(|d| (d.guest.clone(), d.host.clone(), d.read_only))
            .collect();
        let want = vec![
            ("/bin".to_string(), root.join("bin"), false),
            ("/data".into(), ro.clone(), true),
            ("/etc".into(), root.join("etc"), false),
            ("/out".into(), rw.clone(), false),
            ("/tmp".into(), root.join("tmp"), false),
        ];
        assert_eq!(got, want);

        // A read-only root is granted read-only.
        let mut s2 = s.clone();
        let mut r = s2.root().clone().unwrap();
        r.set_readonly(Some(true));
        s2.set_root(Some(r));
        let Container::Guest(g) = read(&s2).unwrap() else {
            panic!()
        };
        assert!(g.dirs.iter().find(|d| d.guest == "/bin").unwrap().read_only);

        // A bind mount whose source is missing: a clear error.
        let mut s3 = s.clone();
        let mut mounts = s3.mounts().clone().unwrap();
        mounts[2].set_source(Some("/nonexistent/wasmlayer".into()));
        s3.set_mounts(Some(mounts));
        let e = read(&s3).unwrap_err();
        assert!(
            e.starts_with("mount /data: its source /nonexistent/wasmlayer cannot be used"),
            "{e}"
        );

        // The pod's sandbox.
        let sandbox = spec(serde_json::json!({
            "ociVersion": "1.0.2",
            "root": {"path": root},
            "process": {"args": ["/pause"], "cwd": "/", "user": {"uid": 0, "gid": 0}},
            "annotations": {"io.kubernetes.cri.container-type": "sandbox"},
        }));
        assert_eq!(read(&sandbox).unwrap(), Container::Sandbox);

        // Files are opened inside the root, symbolic links too.
        let mut f = open_in_root(&root, "/app.wasm").unwrap();
        let mut b = Vec::new();
        f.read_to_end(&mut b).unwrap();
        assert_eq!(b, b"\0asm");
        let e = open_in_root(&root, "/hostetc/passwd").unwrap_err();
        assert_eq!(e.kind(), std::io::ErrorKind::NotFound, "{e}");
        let e = open_in_root(&root, "/../../../../etc/passwd").unwrap_err();
        assert_eq!(e.kind(), std::io::ErrorKind::NotFound, "{e}");
    }
}
