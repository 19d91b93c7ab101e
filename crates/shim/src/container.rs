//! What a container's process learns about itself from the kernel: its
//! mounts and its memory cgroup's limit. (runwasi hands the engine the
//! spec's args and env only; the rest of the spec is already applied to
//! the process by the time the guest starts.)

use std::fs::File;
use std::os::fd::AsRawFd;
use std::path::Path;
use std::sync::OnceLock;
use wasmlayer_core::DirGrant;

/// Where Kubernetes mounts the file whose text becomes the container's
/// termination message.
const TERMINATION_LOG: &str = "/dev/termination-log";

/// Top-level directories of a container's root that are the kernel's:
/// never granted, since the guest could otherwise write to the host
/// process's own memory (`/proc/self/mem`) or read its environment.
const KERNEL: [&str; 3] = ["/proc", "/sys", "/dev"];

/// The guest's preopened directories: each top-level directory of the
/// container's root but the kernel's, and each directory mounted into it,
/// read-only when mounted so (or when the root is). Files at the top of the
/// root (the module itself, mounted files) are not granted.
pub fn mounts() -> Vec<DirGrant> {
    let text = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    let top = std::fs::read_dir("/")
        .into_iter()
        .flatten()
        .flatten()
        .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
        .map(|e| format!("/{}", e.file_name().to_string_lossy()))
        .collect::<Vec<_>>();
    let mut dirs = grants(&text, &top);
    dirs.retain(|d| Path::new(&d.host).is_dir());
    dirs
}

/// [`mounts`] from the mount table and the root's top-level directories.
fn grants(mountinfo: &str, top: &[String]) -> Vec<DirGrant> {
    let mounted = parse_mountinfo(mountinfo);
    let root_ro = mounted.iter().any(|d| d.guest == "/" && d.read_only);
    let mut dirs: Vec<DirGrant> = top
        .iter()
        .filter(|d| !KERNEL.contains(&d.as_str()))
        .map(|d| grant(d, root_ro))
        .collect();
    for m in mounted.into_iter().filter(|m| m.guest != "/") {
        dirs.retain(|d| d.guest != m.guest);
        dirs.push(m);
    }
    dirs.sort_by(|a, b| a.guest.cmp(&b.guest));
    dirs
}

fn grant(path: &str, read_only: bool) -> DirGrant {
    DirGrant {
        host: path.into(),
        guest: path.into(),
        read_only,
    }
}

/// Mount points and their `ro` flag, later mounts over earlier ones.
fn parse_mountinfo(text: &str) -> Vec<DirGrant> {
    let mut out: Vec<DirGrant> = Vec::new();
    for line in text.lines() {
        let fields: Vec<&str> = line.split(' ').collect();
        let (Some(point), Some(options)) = (fields.get(4), fields.get(5)) else {
            continue;
        };
        let point = unescape(point);
        let kernel = KERNEL
            .iter()
            .any(|k| point == *k || point.starts_with(&format!("{k}/")));
        if kernel {
            continue;
        }
        let read_only = options.split(',').any(|o| o == "ro");
        out.retain(|d| d.guest != point);
        out.push(grant(&point, read_only));
    }
    out
}

/// mountinfo escapes space, tab, newline and backslash as `\ooo`.
fn unescape(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\'
            && i + 3 < b.len()
            && b[i + 1..i + 4].iter().all(|c| (b'0'..=b'7').contains(c))
        {
            out.push((b[i + 1] - b'0') * 64 + (b[i + 2] - b'0') * 8 + (b[i + 3] - b'0'));
            i += 4;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

static HOST_CGROUPS: OnceLock<Option<File>> = OnceLock::new();

/// Opens the host's cgroup file system, in the shim's process: the
/// container reaches its own cgroup through it (`/proc/self/fd/N`) even
/// where `/sys/fs/cgroup` is not mounted into it.
pub fn open_host_cgroups() {
    HOST_CGROUPS.get_or_init(|| File::open("/sys/fs/cgroup").ok());
}

/// The memory limit of the container's cgroup (v2, then v1), found
/// through `/proc/self/cgroup`, whether `/sys/fs/cgroup` is mounted into
/// the container (with or without a cgroup namespace) or not at all; none
/// when unlimited or out of sight.
pub fn memory_limit() -> Option<u64> {
    let own = std::fs::read_to_string("/proc/self/cgroup").unwrap_or_default();
    let host = HOST_CGROUPS
        .get()
        .and_then(|f| f.as_ref())
        .map(|f| format!("/proc/self/fd/{}", f.as_raw_fd()));
    let mut files = Vec::new();
    for root in std::iter::once("/sys/fs/cgroup".to_string()).chain(host) {
        for line in own.lines() {
            let mut parts = line.splitn(3, ':');
            let (Some(_), Some(controllers), Some(path)) =
                (parts.next(), parts.next(), parts.next())
            else {
                continue;
            };
            let path = path.trim_end_matches('/');
            if controllers.is_empty() {
                files.push(format!("{root}{path}/memory.max"));
            } else if controllers.split(',').any(|c| c == "memory") {
                files.push(format!("{root}/memory{path}/memory.limit_in_bytes"));
            }
        }
    }
    // The container's own cgroup mounted at the top.
    files.push("/sys/fs/cgroup/memory.max".into());
    files.push("/sys/fs/cgroup/memory/memory.limit_in_bytes".into());
    files
        .iter()
        .find_map(|f| std::fs::read_to_string(f).ok())
        .and_then(|text| {
            // "max" (v2), or a huge page-aligned number (v1): unlimited.
            text.trim().parse::<u64>().ok().filter(|n| *n < (1 << 62))
        })
}

/// Leaves `message` where Kubernetes reads a container's termination
/// message, when that file is mounted.
pub fn termination_message(message: &str) {
    if Path::new(TERMINATION_LOG).exists() {
        let _ = std::fs::write(TERMINATION_LOG, message);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grants_are_the_roots_directories_and_mounts_never_the_kernels() {
        let text = "\
1 0 0:1 / / ro,relatime - overlay overlay rw\n\
2 1 0:2 / /proc rw - proc proc rw\n\
3 1 0:3 / /dev rw - tmpfs tmpfs rw\n\
4 3 0:4 / /dev/termination-log rw - ext4 /dev/vda rw\n\
5 1 0:5 /srv/in /data ro,nosuid - ext4 /dev/vda rw\n\
6 1 0:6 /srv/out /my\\040out rw - ext4 /dev/vda rw\n\
7 1 0:7 / /sys/fs/cgroup ro - cgroup2 cgroup rw\n\
8 1 0:8 /x /data rw - ext4 /dev/vda rw\n\
9 1 0:9 /y /etc/conf ro - ext4 /dev/vda rw\n";
        let top: Vec<String> = ["/bin", "/data", "/dev", "/etc", "/proc", "/sys", "/tmp"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        let got: Vec<(String, bool)> = grants(text, &top)
            .into_iter()
            .map(|d| (d.guest, d.read_only))
            .collect();
        let want: Vec<(String, bool)> = [
            ("/bin", true),
            ("/data", false),
            ("/etc", true),
            ("/etc/conf", true),
            ("/my out", false),
            ("/tmp", true),
        ]
        .iter()
        .map(|(p, ro)| (p.to_string(), *ro))
        .collect();
        assert_eq!(got, want);
    }
}
