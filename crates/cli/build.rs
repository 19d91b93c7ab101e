// Link the `wasmlayer` binary as a position-dependent executable: the
// dynamic loader then has no relocations to apply to its tens of thousands
// of pointers at every start, which is a measurable part of a
// millisecond-scale cold start.
fn main() {
    let target = std::env::var("TARGET").unwrap_or_default();
    if target.contains("linux") && target.starts_with("x86_64") {
        println!("cargo:rustc-link-arg-bins=-no-pie");
    }
}
