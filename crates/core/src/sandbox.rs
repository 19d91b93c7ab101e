//! The host sandbox: the second wall. Before a guest runs, the host
//! confines its own process, so that code which escaped WebAssembly's
//! sandbox still cannot reach what the guest was not granted.
//!
//! - **Landlock** limits the filesystem to the granted directories (with
//!   their read-only flag), the granted model files, the compile cache and
//!   the few device files the host itself uses; without a network grant it
//!   also refuses every TCP bind and connect, and it scopes signals and
//!   abstract UNIX sockets to the sandbox. It applies to the calling thread
//!   and the threads it starts later (to every thread where the kernel has
//!   Landlock's thread synchronisation, ABI 8).
//! - **seccomp** (all threads) removes system calls a guest host never
//!   needs: running programs, tracing or reading other processes, mounts,
//!   kernel modules, new namespaces, BPF, io_uring (which would bypass the
//!   filter), keyrings, and socket creation unless the network was granted.
//!
//! What the kernel lacks is not fatal: [`Report`] says what was applied and
//! what was refused (`wasmlayer -v` prints it).

use crate::admission::Grant;
use std::path::{Path, PathBuf};

/// What a confined host process may still reach.
#[derive(Debug, Clone, Default)]
pub struct Plan {
    /// Readable (files and directories beneath).
    pub read_only: Vec<PathBuf>,
    /// Readable and writable (create, remove, truncate beneath).
    pub read_write: Vec<PathBuf>,
    /// The host may create sockets (a network grant, or a server).
    pub sockets: bool,
    /// The host may make outbound TCP connections.
    pub connect: bool,
}

/// Device files the host itself opens.
#[cfg(all(feature = "host-sandbox", target_os = "linux"))]
const DEVICES_RW: &[&str] = &["/dev/null"];
#[cfg(all(feature = "host-sandbox", target_os = "linux"))]
const DEVICES_RO: &[&str] = &["/dev/urandom", "/dev/random"];

/// Files the C library reads to resolve host names (a network grant with
/// names), and the libraries its name service loads.
const NAME_LOOKUP: &[&str] = &[
    "/etc/hosts",
    "/etc/resolv.conf",
    "/etc/nsswitch.conf",
    "/etc/gai.conf",
    "/etc/host.conf",
    "/lib",
    "/lib64",
    "/usr/lib",
];

impl Plan {
    /// The plan for a guest run with `grant`: its directories and model
    /// files, the compile cache (`cache`), and `extra` read-only paths
    /// (what extensions open for the guest).
    pub fn for_grant(grant: &Grant, cache: Option<&Path>, extra: Vec<PathBuf>) -> Plan {
        let caps = &grant.capabilities;
        let mut plan = Plan::default();
        for d in &caps.dirs {
            match d.read_only {
                true => plan.read_only.push(d.host.clone()),
                false => plan.read_write.push(d.host.clone()),
            }
        }
        plan.read_only.extend(caps.nn_graphs.values().cloned());
        plan.read_only.extend(caps.nn_dir.iter().cloned());
        plan.read_only.extend(extra);
        plan.read_write.extend(cache.map(Path::to_path_buf));
        let outbound = caps.allow_net.iter().chain(&caps.allow_http);
        let network = outbound.clone().next().is_some();
        plan.sockets = network;
        plan.connect = network;
        if outbound.into_iter().any(|n| n.needs_name_lookup()) {
            plan.read_only.extend(NAME_LOOKUP.iter().map(PathBuf::from));
        }
        plan
    }

    /// What either plan allows (a server's routes).
    pub fn merge(&mut self, other: Plan) {
        self.read_only.extend(other.read_only);
        self.read_write.extend(other.read_write);
        self.sockets |= other.sockets;
        self.connect |= other.connect;
    }
}

/// What confinement did.
#[derive(Debug, Clone, Default)]
pub struct Report {
    /// What was applied, one phrase each.
    pub applied: Vec<String>,
    /// What the kernel (or the process) refused, with the reason.
    pub refused: Vec<String>,
}

impl std::fmt::Display for Report {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "applied: ")?;
        match self.applied.is_empty() {
            true => write!(f, "nothing")?,
            false => write!(f, "{}", self.applied.join("; "))?,
        }
        if !self.refused.is_empty() {
            write!(f, "; refused: {}", self.refused.join("; "))?;
        }
        Ok(())
    }
}

/// Confines the calling process as `plan` says. Call it on the thread that
/// will run the guest (or start the threads that will), after everything
/// outside the plan has been opened.
pub fn confine(plan: &Plan) -> Report {
    confine_as(plan, true)
}

/// Confines only the calling thread, and the threads it starts from now
/// on, as `plan` says: for a process that goes on with other work beside
/// the guest, such as a containerd shim whose guests each run on a thread
/// of their own. Landlock and seccomp both apply per thread; other threads
/// of the process are left as they are.
pub fn confine_thread(plan: &Plan) -> Report {
    confine_as(plan, false)
}

#[cfg(all(feature = "host-sandbox", target_os = "linux"))]
fn confine_as(plan: &Plan, process: bool) -> Report {
    let mut report = Report::default();
    landlock_confine(plan, process, &mut report);
    seccomp_confine(plan, process, &mut report);
    report
}

#[cfg(not(all(feature = "host-sandbox", target_os = "linux")))]
fn confine_as(_plan: &Plan, _process: bool) -> Report {
    Report {
        applied: Vec::new(),
        refused: vec![
            "this wasmlayer is built without the host sandbox (feature host-sandbox, Linux)".into(),
        ],
    }
}

#[cfg(all(feature = "host-sandbox", target_os = "linux"))]
fn landlock_confine(plan: &Plan, process: bool, report: &mut Report) {
    use landlock::{
        Access, AccessFs, AccessNet, CompatLevel, Compatible, PathBeneath, PathFd,
        RestrictSelfAttr, Ruleset, RulesetAttr, RulesetCreatedAttr, RulesetStatus, Scope, ABI,
    };
    // The newest ABI this code knows; older kernels enforce what they can.
    let abi = ABI::V7;
    let result = (|| -> Result<_, landlock::RulesetError> {
        let mut ruleset = Ruleset::default()
            .set_compatibility(CompatLevel::BestEffort)
            .handle_access(AccessFs::from_all(abi))?
            .scope(Scope::from_all(abi))?;
        if !plan.connect {
            ruleset = ruleset.handle_access(AccessNet::from_all(abi))?;
        }
        let mut created = ruleset.create()?;
        let read = AccessFs::ReadFile | AccessFs::ReadDir;
        let write = AccessFs::from_all(abi) & !AccessFs::Execute;
        let files = AccessFs::from_file(abi);
        let rules = plan
            .read_only
            .iter()
            .map(|p| (p.as_path(), read))
            .chain(DEVICES_RO.iter().map(|p| (Path::new(*p), read)))
            .chain(plan.read_write.iter().map(|p| (p.as_path(), write)))
            .chain(DEVICES_RW.iter().map(|p| (Path::new(*p), write)));
        let mut granted = 0;
        for (path, access) in rules {
            let Ok(fd) = PathFd::new(path) else {
                // Missing (a cache not made yet, a device this system
                // lacks): nothing to grant.
                continue;
            };
            // A rule on a file may only carry file rights.
            let access = match path.is_dir() {
                true => access,
                false => access & files,
            };
            created = created.add_rule(PathBeneath::new(fd, access))?;
            granted += 1;
        }
        // Every thread at once where the kernel can (ABI 8), for a process.
        let status = created.all_threads(process)?.restrict_self()?;
        Ok((status, granted))
    })();
    match result {
        Ok((status, granted)) => {
            let scope = match (status.all_threads, process) {
                (true, _) => "every thread",
                (false, true) => "this thread and the threads it starts",
                (false, false) => "the guest's thread and the threads it starts",
            };
            match status.ruleset {
                RulesetStatus::FullyEnforced => report.applied.push(format!(
                    "Landlock (ABI {}): filesystem limited to {granted} granted path(s){}, for {scope}",
                    kernel_abi(),
                    if plan.connect { "" } else { ", no TCP bind or connect" }
                )),
                RulesetStatus::PartiallyEnforced => {
                    let abi = kernel_abi();
                    report.applied.push(format!(
                        "Landlock (ABI {abi}): filesystem limited to {granted} granted path(s){}, for {scope}",
                        if plan.connect || abi < 4 { "" } else { ", no TCP bind or connect" }
                    ));
                    report.refused.push(match abi {
                        ..=6 => format!("Landlock: this kernel (ABI {abi}) lacks some rights of ABI 7 (network before 4, ioctl before 5, scoping before 6)"),
                        _ if process => format!("Landlock: applying to every thread at once needs ABI 8; this kernel has ABI {abi}"),
                        _ => format!("Landlock: this kernel (ABI {abi}) lacks some rights of the newest ABI"),
                    });
                }
                RulesetStatus::NotEnforced => report
                    .refused
                    .push("Landlock: not supported or disabled by this kernel".into()),
            }
        }
        Err(e) => report.refused.push(format!("Landlock: {e}")),
    }
}

/// The Landlock ABI the kernel speaks (0: none).
#[cfg(all(feature = "host-sandbox", target_os = "linux"))]
fn kernel_abi() -> i64 {
    const LANDLOCK_CREATE_RULESET_VERSION: libc::c_uint = 1;
    // SAFETY: the version query takes no ruleset and writes nothing.
    let v = unsafe {
        libc::syscall(
            libc::SYS_landlock_create_ruleset,
            std::ptr::null::<libc::c_void>(),
            0usize,
            LANDLOCK_CREATE_RULESET_VERSION,
        )
    };
    v.max(0)
}

/// The system calls the filter refuses with EPERM, always.
#[cfg(all(feature = "host-sandbox", target_os = "linux"))]
const DENIED: &[(&str, i64)] = &[
    ("execve", libc::SYS_execve),
    ("execveat", libc::SYS_execveat),
    ("ptrace", libc::SYS_ptrace),
    ("process_vm_readv", libc::SYS_process_vm_readv),
    ("process_vm_writev", libc::SYS_process_vm_writev),
    ("mount", libc::SYS_mount),
    ("umount2", libc::SYS_umount2),
    ("pivot_root", libc::SYS_pivot_root),
    ("chroot", libc::SYS_chroot),
    ("open_tree", libc::SYS_open_tree),
    ("move_mount", libc::SYS_move_mount),
    ("fsopen", libc::SYS_fsopen),
    ("fsconfig", libc::SYS_fsconfig),
    ("fsmount", libc::SYS_fsmount),
    ("fspick", libc::SYS_fspick),
    ("mount_setattr", libc::SYS_mount_setattr),
    ("init_module", libc::SYS_init_module),
    ("finit_module", libc::SYS_finit_module),
    ("delete_module", libc::SYS_delete_module),
    ("kexec_load", libc::SYS_kexec_load),
    ("kexec_file_load", libc::SYS_kexec_file_load),
    ("unshare", libc::SYS_unshare),
    ("setns", libc::SYS_setns),
    ("bpf", libc::SYS_bpf),
    ("perf_event_open", libc::SYS_perf_event_open),
    ("userfaultfd", libc::SYS_userfaultfd),
    ("io_uring_setup", libc::SYS_io_uring_setup),
    ("io_uring_enter", libc::SYS_io_uring_enter),
    ("io_uring_register", libc::SYS_io_uring_register),
    ("keyctl", libc::SYS_keyctl),
    ("add_key", libc::SYS_add_key),
    ("request_key", libc::SYS_request_key),
    ("swapon", libc::SYS_swapon),
    ("swapoff", libc::SYS_swapoff),
    ("reboot", libc::SYS_reboot),
    ("acct", libc::SYS_acct),
    ("quotactl", libc::SYS_quotactl),
    ("settimeofday", libc::SYS_settimeofday),
    ("clock_settime", libc::SYS_clock_settime),
    ("clock_adjtime", libc::SYS_clock_adjtime),
    ("adjtimex", libc::SYS_adjtimex),
    ("pidfd_getfd", libc::SYS_pidfd_getfd),
    ("kcmp", libc::SYS_kcmp),
    ("name_to_handle_at", libc::SYS_name_to_handle_at),
    ("open_by_handle_at", libc::SYS_open_by_handle_at),
    #[cfg(target_arch = "x86_64")]
    ("iopl", libc::SYS_iopl),
    #[cfg(target_arch = "x86_64")]
    ("ioperm", libc::SYS_ioperm),
];

/// The namespace flags clone(2) may not carry (all in its first
/// argument's low 32 bits).
#[cfg(all(feature = "host-sandbox", target_os = "linux"))]
const NEW_NAMESPACES: u32 = (libc::CLONE_NEWNS
    | libc::CLONE_NEWUSER
    | libc::CLONE_NEWPID
    | libc::CLONE_NEWNET
    | libc::CLONE_NEWIPC
    | libc::CLONE_NEWUTS
    | libc::CLONE_NEWCGROUP) as u32;

/// The architecture the filter accepts system calls of (`AUDIT_ARCH_*` in
/// linux/audit.h); any other (i386 through `int 0x80` on x86_64) is refused.
#[cfg(all(feature = "host-sandbox", target_os = "linux", target_arch = "x86_64"))]
const AUDIT_ARCH: Option<u32> = Some(0xC000_003E);
#[cfg(all(feature = "host-sandbox", target_os = "linux", target_arch = "aarch64"))]
const AUDIT_ARCH: Option<u32> = Some(0xC000_00B7);
#[cfg(all(
    feature = "host-sandbox",
    target_os = "linux",
    not(any(target_arch = "x86_64", target_arch = "aarch64"))
))]
const AUDIT_ARCH: Option<u32> = None;

/// The seccomp filter, as one classic BPF program: EPERM for [`DENIED`]
/// (and socket(2) unless `sockets`), for clone(2) with a new-namespace
/// flag and for another architecture's system calls; ENOSYS for clone3(2),
/// whose flags are in memory a filter cannot read (the C library then falls
/// back to clone, which is checked). Everything else is allowed.
///
/// One short program, rather than a general rule compiler's output, because
/// installing it is on every start's path: the kernel checks, translates
/// and compiles it, and precomputes its verdict for each system call, all
/// in proportion to its length (about 60 instructions here).
#[cfg(all(feature = "host-sandbox", target_os = "linux"))]
fn seccomp_program(arch: u32, sockets: bool) -> Vec<libc::sock_filter> {
    use libc::{
        BPF_ABS, BPF_JEQ, BPF_JGE, BPF_JMP, BPF_JSET, BPF_K, BPF_LD, BPF_RET, BPF_W,
        SECCOMP_RET_ALLOW, SECCOMP_RET_ERRNO,
    };
    let stmt = |code: u32, k: u32| libc::sock_filter {
        code: code as u16,
        jt: 0,
        jf: 0,
        k,
    };
    let jump = |code: u32, k: u32, jt: u8, jf: u8| libc::sock_filter {
        code: (BPF_JMP | code | BPF_K) as u16,
        jt,
        jf,
        k,
    };
    // Offsets in struct seccomp_data: nr, arch, then the arguments (the
    // first argument's low half at 16 on little-endian machines).
    const NR: u32 = 0;
    const ARCH: u32 = 4;
    const ARG0_LOW: u32 = 16;
    let mut denied: Vec<u32> = DENIED.iter().map(|&(_, nr)| nr as u32).collect();
    if !sockets {
        denied.push(libc::SYS_socket as u32);
    }
    // Layout: checks, then three verdicts at the end (allow, ENOSYS,
    // EPERM), reached by forward jumps; clone's argument check sits just
    // before them.
    let mut prog = vec![
        stmt(BPF_LD | BPF_W | BPF_ABS, ARCH),
        // Placeholder: "not this architecture" jumps to EPERM, patched below.
        jump(BPF_JEQ, arch, 0, 0),
        stmt(BPF_LD | BPF_W | BPF_ABS, NR),
    ];
    let arch_check = 1;
    // x32 system calls (x86_64's other ABI) carry bit 30.
    #[cfg(target_arch = "x86_64")]
    prog.push(jump(BPF_JGE, 0x4000_0000, 0, 0));
    let first_nr_check = prog.len();
    for nr in &denied {
        prog.push(jump(BPF_JEQ, *nr, 0, 0));
    }
    let clone3_check = prog.len();
    prog.push(jump(BPF_JEQ, libc::SYS_clone3 as u32, 0, 0));
    // clone: on to the argument check, else allowed.
    prog.push(jump(BPF_JEQ, libc::SYS_clone as u32, 1, 0));
    let allow_early = prog.len();
    prog.push(stmt(BPF_RET | BPF_K, SECCOMP_RET_ALLOW));
    prog.push(stmt(BPF_LD | BPF_W | BPF_ABS, ARG0_LOW));
    let ns_check = prog.len();
    prog.push(jump(BPF_JSET, NEW_NAMESPACES, 0, 0));
    let allow = prog.len();
    prog.push(stmt(BPF_RET | BPF_K, SECCOMP_RET_ALLOW));
    let enosys = prog.len();
    prog.push(stmt(
        BPF_RET | BPF_K,
        SECCOMP_RET_ERRNO | libc::ENOSYS as u32,
    ));
    let eperm = prog.len();
    prog.push(stmt(
        BPF_RET | BPF_K,
        SECCOMP_RET_ERRNO | libc::EPERM as u32,
    ));
    // Jump offsets count from the next instruction.
    let to = |from: usize, target: usize| -> u8 {
        u8::try_from(target - from - 1).expect("the filter is short enough for 8-bit jumps")
    };
    prog[arch_check].jf = to(arch_check, eperm);
    #[cfg(target_arch = "x86_64")]
    {
        prog[first_nr_check - 1].jt = to(first_nr_check - 1, eperm);
    }
    for i in first_nr_check..clone3_check {
        prog[i].jt = to(i, eperm);
    }
    prog[clone3_check].jt = to(clone3_check, enosys);
    prog[ns_check].jt = to(ns_check, eperm);
    debug_assert_eq!(prog[allow_early].k, SECCOMP_RET_ALLOW);
    debug_assert_eq!(prog[allow].k, SECCOMP_RET_ALLOW);
    prog
}

#[cfg(all(feature = "host-sandbox", target_os = "linux"))]
fn seccomp_confine(plan: &Plan, process: bool, report: &mut Report) {
    let Some(arch) = AUDIT_ARCH else {
        report
            .refused
            .push("seccomp: no filter for this architecture".into());
        return;
    };
    let mut prog = seccomp_program(arch, plan.sockets);
    let fprog = libc::sock_fprog {
        len: prog.len() as u16,
        filter: prog.as_mut_ptr(),
    };
    // Without TSYNC the filter is the calling thread's (and its future
    // threads').
    let flags = match process {
        true => libc::SECCOMP_FILTER_FLAG_TSYNC,
        false => 0,
    };
    // SAFETY: prctl with constant arguments; seccomp(2) reads `fprog` and
    // the program it points to, both alive for the call.
    let applied = unsafe {
        match libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) {
            0 => libc::syscall(
                libc::SYS_seccomp,
                libc::SECCOMP_SET_MODE_FILTER,
                flags,
                &fprog as *const libc::sock_fprog,
            ),
            r => r.into(),
        }
    };
    match applied {
        0 => report.applied.push(format!(
            "seccomp on {}: {} system calls refused ({}, new namespaces{})",
            match process {
                true => "every thread",
                false => "the guest's thread and the threads it starts",
            },
            DENIED.len() + usize::from(!plan.sockets),
            "exec, ptrace, mount, kernel modules, bpf, io_uring, keyrings",
            if plan.sockets {
                ""
            } else {
                ", socket creation"
            }
        )),
        // With TSYNC, a positive result is a thread that could not be synchronised.
        tid if tid > 0 => report
            .refused
            .push(format!("seccomp: thread {tid} could not take the filter")),
        _ => report
            .refused
            .push(format!("seccomp: {}", std::io::Error::last_os_error())),
    }
}

/// Tests only (debug builds): with `WASMLAYER_SANDBOX_PROBE=PATH`, right
/// where a guest would start (after lockdown, if any) the host tries to
/// read PATH, run a program and open a socket, and writes what happened to
/// `out` (the guest's stderr where the host gave it a file, such as a
/// container's, else the process's), one line each. The confinement tests
/// read these lines; release builds have no probe.
#[cfg(not(debug_assertions))]
pub fn probe(_out: &mut dyn std::io::Write) {}

/// See above.
#[cfg(debug_assertions)]
pub fn probe(out: &mut dyn std::io::Write) {
    let Some(path) = std::env::var_os("WASMLAYER_SANDBOX_PROBE") else {
        return;
    };
    let outcome = |r: std::io::Result<()>| match r {
        Ok(()) => "allowed".to_string(),
        Err(e) => format!("denied ({e})"),
    };
    let open = std::fs::read(&path).map(|_| ());
    let _ = writeln!(
        out,
        "sandbox probe: open {}: {}",
        Path::new(&path).display(),
        outcome(open)
    );
    // Whether the program started (a refused execve fails the spawn); its
    // exit is not waited for, as a host such as the containerd shim reaps
    // its children itself.
    let exec = std::process::Command::new("/bin/true").spawn().map(|_| ());
    let _ = writeln!(out, "sandbox probe: exec /bin/true: {}", outcome(exec));
    // SAFETY: socket(2) with constant arguments; the descriptor is closed.
    let fd = unsafe { libc::socket(libc::AF_INET, libc::SOCK_STREAM, 0) };
    let socket = match fd {
        -1 => Err(std::io::Error::last_os_error()),
        fd => {
            unsafe { libc::close(fd) };
            Ok(())
        }
    };
    let _ = writeln!(out, "sandbox probe: socket AF_INET: {}", outcome(socket));
}

#[cfg(all(test, feature = "host-sandbox", target_os = "linux"))]
mod tests {
    use super::*;

    /// The filter is applied in a child process (this test binary run
    /// again for this test alone), which then tries what it must refuse
    /// and what it must leave alone, and exits with the first failure.
    #[test]
    fn the_seccomp_filter_refuses_what_it_lists_and_nothing_else() {
        const CHILD: &str = "WASMLAYER_SECCOMP_TEST_CHILD";
        if std::env::var_os(CHILD).is_some() {
            std::process::exit(filtered_child());
        }
        let out = std::process::Command::new(std::env::current_exe().unwrap())
            .args([
                "--exact",
                "sandbox::tests::the_seccomp_filter_refuses_what_it_lists_and_nothing_else",
                "--nocapture",
            ])
            .env(CHILD, "1")
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "child: {:?}\n{}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// Confining a thread leaves the process's other threads alone: the
    /// confined thread cannot open a socket or read a file, the others can.
    #[test]
    fn a_confined_thread_leaves_the_others_alone() {
        let socket = || {
            // SAFETY: socket(2) with constant arguments; closed at once.
            let fd = unsafe { libc::socket(libc::AF_INET, libc::SOCK_STREAM, 0) };
            if fd >= 0 {
                unsafe { libc::close(fd) };
            }
            fd >= 0
        };
        let file = std::env::current_exe().unwrap();
        let in_thread = {
            let file = file.clone();
            std::thread::spawn(move || {
                let report = confine_thread(&Plan::default());
                (
                    report.to_string(),
                    socket(),
                    std::fs::metadata(&file).is_ok() && std::fs::File::open(&file).is_ok(),
                )
            })
            .join()
            .unwrap()
        };
        assert!(
            in_thread.0.contains("seccomp on the guest's thread"),
            "{}",
            in_thread.0
        );
        assert!(
            !in_thread.1,
            "the confined thread opened a socket: {}",
            in_thread.0
        );
        // Where the kernel has Landlock.
        if in_thread.0.contains("applied: Landlock") {
            assert!(
                !in_thread.2,
                "the confined thread opened a file outside its plan: {}",
                in_thread.0
            );
        }
        assert!(socket(), "another thread could not open a socket");
        assert!(std::fs::File::open(&file).is_ok());
    }

    fn filtered_child() -> i32 {
        let mut report = Report::default();
        seccomp_confine(&Plan::default(), true, &mut report);
        if !report.refused.is_empty() || report.applied.is_empty() {
            eprintln!("not applied: {report}");
            return 10;
        }
        let errno = || std::io::Error::last_os_error().raw_os_error().unwrap_or(0);
        let refused = |what: &str, r: i64, want: i32| {
            let e = errno();
            if r != -1 || e != want {
                eprintln!("{what}: returned {r} (errno {e}), expected errno {want}");
                return false;
            }
            true
        };
        // SAFETY: system calls with constant or null arguments, each
        // expected to be refused before it does anything; a clone that
        // wrongly succeeded exits its child at once.
        unsafe {
            let null = std::ptr::null::<libc::c_char>();
            let argv = [c"/bin/true".as_ptr(), null];
            if !refused(
                "execve",
                libc::execve(c"/bin/true".as_ptr(), argv.as_ptr(), [null].as_ptr()).into(),
                libc::EPERM,
            ) {
                return 11;
            }
            if !refused(
                "socket",
                libc::socket(libc::AF_INET, libc::SOCK_STREAM, 0).into(),
                libc::EPERM,
            ) {
                return 12;
            }
            if !refused(
                "unshare",
                libc::syscall(libc::SYS_unshare, libc::CLONE_NEWUSER),
                libc::EPERM,
            ) {
                return 13;
            }
            let r = libc::syscall(
                libc::SYS_clone,
                libc::CLONE_NEWUSER | libc::SIGCHLD,
                0,
                0,
                0,
                0,
            );
            if r == 0 {
                libc::_exit(99);
            }
            if !refused("clone with CLONE_NEWUSER", r, libc::EPERM) {
                return 14;
            }
            if !refused(
                "clone3",
                libc::syscall(libc::SYS_clone3, std::ptr::null::<u8>(), 0usize),
                libc::ENOSYS,
            ) {
                return 15;
            }
            // Left alone: a local socket pair, a plain fork, a thread.
            let mut fds = [0; 2];
            if libc::socketpair(libc::AF_UNIX, libc::SOCK_STREAM, 0, fds.as_mut_ptr()) != 0 {
                eprintln!("socketpair: {}", std::io::Error::last_os_error());
                return 16;
            }
            match libc::fork() {
                0 => libc::_exit(0),
                -1 => {
                    eprintln!("fork: {}", std::io::Error::last_os_error());
                    return 17;
                }
                pid => {
                    let mut status = 0;
                    libc::waitpid(pid, &mut status, 0);
                }
            }
        }
        if std::thread::spawn(|| 1).join().ok() != Some(1) {
            return 18;
        }
        0
    }
}
