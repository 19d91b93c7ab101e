use std::sync::Arc;

fn main() {
    let code = wasmlayer_cli::main_with(std::env::args_os(), Arc::new(wasmlayer_core::GrantRequested));
    std::process::exit(code);
}
