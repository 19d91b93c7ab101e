use std::sync::Arc;

/// See crates/cli/Cargo.toml: on musl, an allocator that keeps the memory it
/// maps.
#[cfg(target_env = "musl")]
#[global_allocator]
static ALLOCATOR: dlmalloc::GlobalDlmalloc = dlmalloc::GlobalDlmalloc;

fn main() {
    // A panic is a bug in the host, never the user's fault: say so plainly.
    std::panic::set_hook(Box::new(|info| {
        eprintln!("error: wasmlayer internal error (a bug, please report it): {info}");
    }));
    let code = wasmlayer_cli::main_with(
        std::env::args_os(),
        Arc::new(wasmlayer_core::GrantRequested),
    );
    std::process::exit(code);
}
