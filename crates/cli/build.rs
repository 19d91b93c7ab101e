use std::path::PathBuf;
use std::process::Command;

fn main() {
    let target = std::env::var("TARGET").unwrap_or_default();
    let linux_x86 = target.contains("linux") && target.starts_with("x86_64");
    // Link the `wasmlayer` binary as a position-dependent executable: the
    // dynamic loader then has no relocations to apply to its tens of
    // thousands of pointers at every start, which is a measurable part of a
    // millisecond-scale cold start. (A musl build is linked statically, and
    // position-dependent where its build asks for `-C relocation-model=static`,
    // as scripts/build-edge.sh does.)
    if linux_x86 && !target.contains("musl") {
        println!("cargo:rustc-link-arg-bins=-no-pie");
    }
    // Release builds put the functions a start runs (startup-order.txt, from
    // scripts/startup-order.sh) first and together, when lld links (the
    // toolchain's own, which rustc uses on x86_64 Linux, or the system's): a
    // start then maps about 4 MB of code instead of pieces of all of it
    // (peak RSS of a p1 start 9.7 -> 6.3 MB). Without lld the binary is
    // linked as usual and works the same.
    let order = PathBuf::from(std::env::var_os("CARGO_MANIFEST_DIR").expect("CARGO_MANIFEST_DIR"))
        .join("startup-order.txt");
    println!("cargo:rerun-if-changed={}", order.display());
    println!("cargo:rerun-if-env-changed=PATH");
    let release = std::env::var("PROFILE").is_ok_and(|p| p == "release");
    let lld = toolchain_lld(&target)
        || Command::new("ld.lld")
            .arg("--version")
            .output()
            .is_ok_and(|o| o.status.success());
    if linux_x86 && release && lld && order.is_file() {
        println!("cargo:rustc-link-arg-bins=-fuse-ld=lld");
        println!(
            "cargo:rustc-link-arg-bins=-Wl,--symbol-ordering-file={}",
            order.display()
        );
        println!("cargo:rustc-link-arg-bins=-Wl,--no-warn-symbol-ordering");
    }
}

/// Whether the Rust toolchain ships its own lld for `target` (what
/// `-fuse-ld=lld` finds first when rustc links with it).
fn toolchain_lld(target: &str) -> bool {
    let rustc = std::env::var_os("RUSTC").unwrap_or_else(|| "rustc".into());
    let Ok(out) = Command::new(rustc).args(["--print", "sysroot"]).output() else {
        return false;
    };
    let sysroot = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
    sysroot
        .join("lib/rustlib")
        .join(target)
        .join("bin/gcc-ld/ld.lld")
        .is_file()
}
