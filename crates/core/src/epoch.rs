//! The one epoch ticker of the process: a thread that advances the epoch of
//! every engine that has guests with a deadline, every [`TICK`]. Started on
//! first use; a store with a deadline checks the clock at each tick (see
//! [`crate::host::StoreOptions::deadline`]).

use std::sync::{Mutex, OnceLock};
use std::time::Duration;
use wasmtime::Engine;

/// How often the epoch advances: a guest past its deadline stops within
/// about this long.
pub const TICK: Duration = Duration::from_millis(10);

/// The ticker. Engines live as long as the process's runtimes, so it keeps
/// them.
pub struct Ticker {
    engines: Mutex<Vec<Engine>>,
    started: OnceLock<bool>,
}

/// The process's ticker.
pub fn ticker() -> &'static Ticker {
    static TICKER: Ticker = Ticker {
        engines: Mutex::new(Vec::new()),
        started: OnceLock::new(),
    };
    &TICKER
}

impl Ticker {
    /// Advances `engine`'s epoch every [`TICK`] from now on. Returns false
    /// when the thread cannot start (deadlines then do not end guest code;
    /// the caller's own timer still answers on time).
    pub fn drive(&'static self, engine: &Engine) -> bool {
        {
            let mut engines = self.engines.lock().unwrap_or_else(|p| p.into_inner());
            if !engines.iter().any(|e| Engine::same(e, engine)) {
                engines.push(engine.clone());
            }
        }
        *self.started.get_or_init(|| {
            std::thread::Builder::new()
                .name("epoch".into())
                .spawn(move || loop {
                    std::thread::sleep(TICK);
                    for e in self
                        .engines
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .iter()
                    {
                        e.increment_epoch();
                    }
                })
                .map(|_| true)
                .unwrap_or_else(|e| {
                    tracing::warn!(
                        "no epoch thread, so deadlines cannot interrupt guest code: {e}"
                    );
                    false
                })
        })
    }
}
