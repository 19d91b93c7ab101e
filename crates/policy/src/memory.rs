//! Memory budgets for native (regorus) evaluations.
//!
//! A Wasm policy lives in a linear memory of at most 256 MiB; a Rego policy
//! evaluated natively allocates from the host's heap, so the same bound is
//! kept by the process's global allocator, [`BudgetAllocator`]: it counts,
//! per thread, what an evaluation allocates (net of what it frees) while a
//! budget is in force on that thread, and never hands out memory past it.
//!
//! Rust cannot recover from a failed allocation (it aborts the process),
//! and unwinding out of an allocator is undefined behaviour, so an
//! allocation past the budget is never refused: the thread that asked for it
//! is stopped instead, before the memory is taken.
//!
//! - On a worker ([`isolated`], [`Worker`]), the thread that waits for the
//!   evaluation is told at once and reports the memory limit; the stopped
//!   worker sleeps until the evaluation's wall-clock limit has passed and
//!   then goes on with a small grace ([`GRACE`]), so that the interpreter's
//!   timer ends the evaluation at its next check and everything it holds is
//!   freed. An evaluation that needs more than the grace first (one huge
//!   allocation, or a builtin that loops without the timer's checks) stays
//!   stopped for good, holding no more than its budget.
//! - On the calling thread ([`with_budget`]), nobody else is waiting: the
//!   process prints the error and exits with the memory limit's exit code
//!   (137).
//!
//! Threads left behind are counted ([`held`]) until they end. At most
//! [`MAX_HELD`] are kept: past that, no new evaluation thread is started
//! ([`Stopped::Saturated`]), so that what stopped threads hold stays below
//! `MAX_HELD` × ([`MAX_MEMORY`] + [`GRACE`]) (1.1 GiB) however long the
//! process runs; a server reports itself unhealthy then, to be restarted.
//!
//! Builtins that can ask for an arbitrary amount of memory in one go
//! (`numbers.range`, `numbers.range_step`, `net.cidr_expand`) are replaced
//! by versions that check the size against [`remaining`] before allocating
//! (see [`crate::builtins::add_extensions`]), so those end with an ordinary
//! error and the worker survives.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::sync::atomic::{AtomicU8, AtomicUsize, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::thread::Thread;
use std::time::{Duration, Instant};

/// What one native evaluation may allocate: the memory limit of a Wasm
/// policy ([`crate::wasm_host::DEFAULT_MAX_MEMORY`]).
pub const MAX_MEMORY: u64 = crate::wasm_host::DEFAULT_MAX_MEMORY;

/// What a stopped worker may still allocate, once its wall-clock limit has
/// passed, on its way to the interpreter's next timer check.
pub const GRACE: u64 = 32 << 20;

/// A stopped worker sleeps this long past the evaluation's wall-clock
/// limit before going on, so that the interpreter's timer has surely run out.
const PAST_DEADLINE: Duration = Duration::from_millis(20);

/// How long the waiting thread waits for a worker that has neither
/// finished nor gone past its budget (the evaluation's wall-clock limit is
/// 1 s): a worker blocked for good, say on a lock that a stopped one holds,
/// is given up, and the evaluation ends as past its time limit.
const GIVE_UP: Duration = Duration::from_secs(5);

/// How many threads left behind (stopped past their budget, or given up)
/// may be alive at once before no new evaluation thread is started.
pub const MAX_HELD: usize = 4;

/// Threads left behind that have not ended yet.
static HELD: AtomicUsize = AtomicUsize::new(0);

/// How many evaluation threads were left behind and are still alive: each
/// holds at most [`MAX_MEMORY`] + [`GRACE`].
pub fn held() -> usize {
    HELD.load(Ordering::Acquire)
}

/// Whether no new evaluation thread will be started ([`MAX_HELD`]
/// reached), with the reason to give.
pub fn saturated() -> Option<String> {
    let held = held();
    (held >= MAX_HELD).then(|| saturated_message(held))
}

fn saturated_message(held: usize) -> String {
    format!(
        "native policy evaluations are refused: {held} earlier evaluations went past their limits \
         and their threads still hold up to {} of memory; restart the process to free it",
        wasmlayer_core::limits::format_size((MAX_MEMORY + GRACE).saturating_mul(held as u64))
    )
}

const ALIVE: u8 = 0;
const LEFT: u8 = 1;
const ENDED: u8 = 2;

/// The life of one evaluation thread, shared by the thread and whoever
/// waits on it: a thread left behind counts in [`HELD`] until it ends.
struct Life(AtomicU8);

impl Life {
    /// A new thread may start (fewer than [`MAX_HELD`] are held).
    fn start() -> Result<Arc<Life>, Stopped> {
        let held = held();
        if held >= MAX_HELD {
            return Err(Stopped::Saturated(held));
        }
        Ok(Arc::new(Life(AtomicU8::new(ALIVE))))
    }

    /// The waiter gives up on the thread.
    fn leave(&self) {
        if self
            .0
            .compare_exchange(ALIVE, LEFT, Ordering::AcqRel, Ordering::Acquire)
            .is_ok()
        {
            HELD.fetch_add(1, Ordering::AcqRel);
        }
    }
}

/// Held by the thread itself: marks its end when dropped.
struct Ending(Arc<Life>);

impl Drop for Ending {
    fn drop(&mut self) {
        if self.0 .0.swap(ENDED, Ordering::AcqRel) == LEFT {
            HELD.fetch_sub(1, Ordering::AcqRel);
        }
    }
}

/// Stack of a worker thread: room for deeply nested policies, as the main
/// thread has (only what is used is backed by memory).
const WORKER_STACK: usize = 8 << 20;

/// The process's allocator: the system's, with per-thread budgets.
pub struct BudgetAllocator;

#[global_allocator]
static GLOBAL: BudgetAllocator = BudgetAllocator;

thread_local! {
    /// Bytes this thread allocated minus bytes it freed, since its budget
    /// began (without one, the count runs on unchecked).
    static USED: Cell<usize> = const { Cell::new(0) };
    /// Past this count, an allocation goes through [`over_limit`]: the
    /// budget's limit, or `usize::MAX` (no budget, or one that is passing
    /// allocations unchecked).
    static LIMIT: Cell<usize> = const { Cell::new(usize::MAX) };
    /// The budget in force on this thread, if any: a [`Scope`] on the
    /// stack of [`with_scope`], which clears it before returning.
    static SCOPE: Cell<*const Scope> = const { Cell::new(std::ptr::null()) };
    /// Set when a size check refused a builtin's allocation.
    static REFUSED: Cell<bool> = const { Cell::new(false) };
}

// The count is two thread-local cells, and the check one comparison, so
// that an allocation costs little more than the system's. The methods are
// kept out of line (`inline(never)`): inlined into every allocation of the
// program, even this little would add megabytes of code, and pages of it
// to the memory of every start.
//
// SAFETY: every call is passed on to `System` unchanged; the bookkeeping
// around it only reads and writes this thread's own cells, allocates
// (when past the limit) only after lifting the limit, and never unwinds.
unsafe impl GlobalAlloc for BudgetAllocator {
    #[inline(never)]
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        charge(layout.size());
        System.alloc(layout)
    }

    #[inline(never)]
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        charge(layout.size());
        System.alloc_zeroed(layout)
    }

    #[inline(never)]
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        credit(layout.size());
        System.dealloc(ptr, layout)
    }

    #[inline(never)]
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        if new_size > layout.size() {
            charge(new_size - layout.size());
        } else {
            credit(layout.size() - new_size);
        }
        System.realloc(ptr, layout, new_size)
    }
}

#[inline(always)]
fn charge(size: usize) {
    // Wrapping, so that nothing here can panic: under a budget the count
    // starts at zero and stays within the address space; without one (and
    // with memory freed on other threads) it only runs on, unchecked.
    let used = USED.with(Cell::get).wrapping_add(size);
    USED.with(|u| u.set(used));
    if used > LIMIT.with(Cell::get) {
        over_limit(used);
    }
}

#[inline(always)]
fn credit(size: usize) {
    // Freeing what was there before the budget gives no credit: the count
    // stays an upper bound of what the evaluation holds.
    USED.with(|u| u.set(u.get().saturating_sub(size)));
}

/// A budget in force on one thread.
struct Scope {
    limit: usize,
    /// The limit was passed once already.
    over: Cell<bool>,
    on_over: OnOver,
}

enum OnOver {
    /// Print the error and exit 137.
    Exit,
    /// Tell the waiting thread and stop this one (the evaluation under way
    /// began at that instant: see [`evaluation_started`]).
    Stop(Arc<Signal>, Cell<Instant>),
}

/// The allocation that takes this thread's count to `used` is past its
/// limit. Returns only when the allocation may go ahead.
#[cold]
#[inline(never)]
fn over_limit(used: usize) {
    let scope = SCOPE.with(Cell::get);
    if scope.is_null() {
        return;
    }
    // SAFETY: the pointer is set by `with_scope` to a scope on this
    // thread's stack and cleared before that scope is dropped.
    let scope = unsafe { &*scope };
    // Whatever runs from here allocates unchecked.
    LIMIT.with(|l| l.set(usize::MAX));
    let first = !scope.over.replace(true);
    match &scope.on_over {
        OnOver::Exit => {
            // Straight to the file descriptor and out, through nothing this
            // thread may be in the middle of (std's stdout and stderr are
            // locked cells).
            let line = format!("error: {}\n", limit_message(scope.limit as u64));
            // SAFETY: writes a live buffer to fd 2, then ends the process.
            unsafe {
                libc::write(2, line.as_ptr().cast(), line.len());
                libc::_exit(wasmlayer_core::ErrorKind::MemoryLimit.exit_code());
            }
        }
        OnOver::Stop(signal, started) => {
            signal.set(OVER);
            if first {
                // Let the evaluation's own wall-clock limit run out, then go
                // on with the grace so that the interpreter ends it.
                let deadline = started.get() + crate::document::DEFAULT_TIMEOUT + PAST_DEADLINE;
                loop {
                    let now = Instant::now();
                    if now >= deadline {
                        break;
                    }
                    std::thread::park_timeout(deadline - now);
                }
                let limit = scope.limit.saturating_add(GRACE as usize);
                if used <= limit {
                    LIMIT.with(|l| l.set(limit));
                    return;
                }
            }
            // Past the grace too: this thread stays here, holding no more
            // than its budget, until the process ends.
            loop {
                std::thread::park();
            }
        }
    }
}

const RUNNING: u8 = 0;
const DONE: u8 = 1;
const OVER: u8 = 2;

/// How an evaluation on a worker ended, for the thread waiting for it.
struct Signal {
    state: AtomicU8,
    waiter: Thread,
}

impl Signal {
    fn new() -> Arc<Signal> {
        Arc::new(Signal {
            state: AtomicU8::new(RUNNING),
            waiter: std::thread::current(),
        })
    }

    /// Records the end (the first one wins) and wakes the waiter.
    fn set(&self, state: u8) {
        let _ = self
            .state
            .compare_exchange(RUNNING, state, Ordering::AcqRel, Ordering::Acquire);
        self.waiter.unpark();
    }

    /// Waits (on the thread that made the signal) for the end, at most
    /// `give_up`; `RUNNING` when it did not come.
    fn wait(&self, give_up: Duration) -> u8 {
        let until = Instant::now() + give_up;
        loop {
            match self.state.load(Ordering::Acquire) {
                RUNNING => {
                    let now = Instant::now();
                    if now >= until {
                        return RUNNING;
                    }
                    std::thread::park_timeout(until - now);
                }
                state => return state,
            }
        }
    }
}

/// An evaluation went past its memory budget.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Exceeded {
    pub limit: u64,
}

impl From<Exceeded> for wasmlayer_core::Error {
    fn from(e: Exceeded) -> Self {
        wasmlayer_core::Error::MemoryLimit(e.limit)
    }
}

/// The line printed for an evaluation past its memory limit.
pub fn limit_message(limit: u64) -> String {
    format!(
        "policy evaluation exceeded its memory limit ({})",
        wasmlayer_core::limits::format_size(limit)
    )
}

fn with_scope<T>(limit: u64, on_over: OnOver, f: impl FnOnce() -> T) -> T {
    let scope = Scope {
        limit: usize::try_from(limit).unwrap_or(usize::MAX),
        over: Cell::new(false),
        on_over,
    };
    /// What was in force before, put back when the scope ends (even by a
    /// panic).
    struct Restore(usize, usize, *const Scope);
    impl Drop for Restore {
        fn drop(&mut self) {
            SCOPE.with(|s| s.set(self.2));
            USED.with(|u| u.set(self.0));
            LIMIT.with(|l| l.set(self.1));
        }
    }
    let _restore = Restore(
        USED.with(|u| u.replace(0)),
        LIMIT.with(|l| l.replace(scope.limit)),
        SCOPE.with(|s| s.replace(&scope)),
    );
    f()
}

/// Runs `f` on this thread with a budget of `limit` bytes. Past it, the
/// process prints the error and exits 137: use [`isolated`] or a
/// [`Worker`] where the process must go on. Under a budget already (on a
/// worker), `f` runs under that one.
pub fn with_budget<T>(limit: u64, f: impl FnOnce() -> T) -> T {
    if !SCOPE.with(Cell::get).is_null() {
        return f();
    }
    with_scope(limit, OnOver::Exit, f)
}

/// Marks the start of an evaluation under the budget in force: a worker
/// stopped past its budget waits for the wall-clock limit of the
/// evaluation under way, counted from here.
pub fn evaluation_started() {
    let scope = SCOPE.with(Cell::get);
    if scope.is_null() {
        return;
    }
    // SAFETY: as in `over_limit`.
    if let OnOver::Stop(_, started) = &unsafe { &*scope }.on_over {
        started.set(Instant::now());
    }
}

/// Runs `f` on a thread of its own with a budget of `limit` bytes and
/// waits for it. Past the budget, returns [`Stopped::Exceeded`] at once and
/// leaves the thread behind (see the module's documentation).
pub fn isolated<T: Send + 'static>(
    limit: u64,
    f: impl FnOnce() -> T + Send + 'static,
) -> Result<T, Stopped> {
    let life = Life::start()?;
    let ending = Ending(life.clone());
    let signal = Signal::new();
    let slot = Arc::new(Mutex::new(None));
    let (worker_signal, worker_slot) = (signal.clone(), slot.clone());
    std::thread::Builder::new()
        .name("policy-eval".into())
        .stack_size(WORKER_STACK)
        .spawn(move || {
            let _ending = ending;
            let _done = Done(worker_signal.clone());
            let out = with_scope(
                limit,
                OnOver::Stop(worker_signal, Cell::new(Instant::now())),
                f,
            );
            *worker_slot.lock().unwrap_or_else(|p| p.into_inner()) = Some(out);
        })
        .map_err(Stopped::Spawn)?;
    let out = finish(&signal, &slot, limit, GIVE_UP);
    if out.is_err() {
        life.leave();
    }
    out
}

/// Sets the signal to done when dropped, so that the waiter wakes up even
/// when the evaluation panicked.
struct Done(Arc<Signal>);

impl Drop for Done {
    fn drop(&mut self) {
        self.0.set(DONE);
    }
}

/// Why an evaluation on a worker gave no result.
#[derive(Debug)]
pub enum Stopped {
    /// It went past its memory budget.
    Exceeded(Exceeded),
    /// It neither finished nor went past its budget in time ([`GIVE_UP`]).
    TimedOut,
    /// It panicked (the panic message went to stderr).
    Panicked,
    /// No thread could be started for it.
    Spawn(std::io::Error),
    /// No thread was started for it: this many threads left behind are
    /// still alive ([`MAX_HELD`]).
    Saturated(usize),
}

impl From<Stopped> for wasmlayer_core::Error {
    fn from(s: Stopped) -> Self {
        match s {
            Stopped::Exceeded(e) => e.into(),
            Stopped::TimedOut => wasmlayer_core::Error::Timeout(crate::document::DEFAULT_TIMEOUT),
            Stopped::Panicked => wasmlayer_core::Error::host(
                "the policy evaluation failed unexpectedly (it panicked)",
            ),
            Stopped::Spawn(e) => {
                wasmlayer_core::Error::host(format!("cannot start a policy evaluation thread: {e}"))
            }
            Stopped::Saturated(held) => wasmlayer_core::Error::host(saturated_message(held)),
        }
    }
}

fn finish<T>(
    signal: &Signal,
    slot: &Mutex<Option<T>>,
    limit: u64,
    give_up: Duration,
) -> Result<T, Stopped> {
    match signal.wait(give_up) {
        RUNNING => Err(Stopped::TimedOut),
        DONE => slot
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take()
            .ok_or(Stopped::Panicked),
        _ => Err(Stopped::Exceeded(Exceeded { limit })),
    }
}

type Job<S> = Box<dyn FnOnce(&mut S) + Send>;

/// A thread that keeps a state `S` (a policy's engine) and runs jobs on it
/// one at a time, each with a budget: the cost of a thread per evaluation
/// is paid once.
pub struct Worker<S> {
    jobs: mpsc::Sender<(Job<S>, Arc<Signal>)>,
    life: Arc<Life>,
    limit: u64,
    /// A job went past its budget, was given up or panicked: the thread is
    /// of no more use.
    finished: bool,
    give_up: Duration,
}

impl<S: Send + 'static> Worker<S> {
    pub fn spawn(mut state: S, limit: u64) -> Result<Worker<S>, Stopped> {
        let life = Life::start()?;
        let ending = Ending(life.clone());
        let (jobs, rx) = mpsc::channel::<(Job<S>, Arc<Signal>)>();
        std::thread::Builder::new()
            .name("policy-eval".into())
            .stack_size(WORKER_STACK)
            .spawn(move || {
                let _ending = ending;
                for (job, signal) in rx {
                    let _done = Done(signal.clone());
                    with_scope(
                        limit,
                        OnOver::Stop(signal, Cell::new(Instant::now())),
                        || job(&mut state),
                    );
                }
            })
            .map_err(Stopped::Spawn)?;
        Ok(Worker {
            jobs,
            life,
            limit,
            finished: false,
            give_up: GIVE_UP,
        })
    }

    /// Runs `f` on the worker's state and waits for it. When it gives no
    /// result (past the budget, given up, or a panic), the worker is
    /// finished: every later call fails, so drop it and make a new one.
    pub fn run<T: Send + 'static>(
        &mut self,
        f: impl FnOnce(&mut S) -> T + Send + 'static,
    ) -> Result<T, Stopped> {
        if self.finished {
            return Err(Stopped::Panicked);
        }
        let signal = Signal::new();
        let slot = Arc::new(Mutex::new(None));
        let worker_slot = slot.clone();
        let job: Job<S> = Box::new(move |state| {
            let out = f(state);
            *worker_slot.lock().unwrap_or_else(|p| p.into_inner()) = Some(out);
        });
        if self.jobs.send((job, signal.clone())).is_err() {
            self.finished = true;
            return Err(Stopped::Panicked);
        }
        let out = finish(&signal, &slot, self.limit, self.give_up);
        if out.is_err() {
            self.finished = true;
            self.life.leave();
        }
        out
    }

    /// Whether the worker can take no more jobs.
    pub fn is_finished(&self) -> bool {
        self.finished
    }
}

impl<S> std::fmt::Debug for Worker<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Worker")
            .field("limit", &self.limit)
            .finish()
    }
}

/// What the budget in force on this thread still allows, in bytes; without
/// one, [`MAX_MEMORY`]. Builtins that allocate in one go check against it.
pub fn remaining() -> u64 {
    if SCOPE.with(Cell::get).is_null() {
        return MAX_MEMORY;
    }
    let left = LIMIT.with(Cell::get).saturating_sub(USED.with(Cell::get));
    u64::try_from(left).unwrap_or(u64::MAX)
}

/// The limit in force on this thread ([`MAX_MEMORY`] without one).
pub fn limit() -> u64 {
    let scope = SCOPE.with(Cell::get);
    if scope.is_null() {
        return MAX_MEMORY;
    }
    // SAFETY: as in `over_limit`.
    unsafe { &*scope }.limit as u64
}

/// Records that a size check refused an allocation on this thread, and
/// returns the error a builtin gives for it.
pub fn refuse(what: &str, bytes: u128) -> anyhow::Error {
    REFUSED.with(|r| r.set(true));
    anyhow::anyhow!(
        "{what} would need about {} of memory, past what the evaluation may use ({})",
        wasmlayer_core::limits::format_size(u64::try_from(bytes).unwrap_or(u64::MAX)),
        wasmlayer_core::limits::format_size(limit())
    )
}

/// Whether a size check refused an allocation on this thread since the
/// last call.
pub fn take_refused() -> bool {
    REFUSED.with(|r| r.replace(false))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_what_a_scope_allocates_and_frees() {
        let used = with_budget(MAX_MEMORY, || {
            let before = remaining();
            let v = vec![0u8; 1 << 20];
            let during = remaining();
            drop(v);
            (before - during, before - remaining())
        });
        assert!(used.0 >= 1 << 20, "{used:?}");
        assert!(used.1 < 4096, "{used:?}");
        assert_eq!(remaining(), MAX_MEMORY, "no scope after it");
    }

    #[test]
    fn past_its_budget_on_the_calling_thread_the_process_exits_137() {
        const CHILD: &str = "WASMLAYER_TEST_BUDGET_CHILD";
        if std::env::var_os(CHILD).is_some() {
            with_budget(8 << 20, || std::hint::black_box(vec![1u8; 64 << 20]).len());
            unreachable!("past the budget, the process exits");
        }
        let out = std::process::Command::new(std::env::current_exe().unwrap())
            .args([
                "--exact",
                "memory::tests::past_its_budget_on_the_calling_thread_the_process_exits_137",
                "--nocapture",
            ])
            .env(CHILD, "1")
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(137), "{stderr}");
        assert!(
            stderr.contains("error: policy evaluation exceeded its memory limit (8 MiB)"),
            "{stderr}"
        );
    }

    #[test]
    fn an_isolated_evaluation_past_its_budget_is_reported() {
        let r = isolated(8 << 20, || vec![1u8; 64 << 20].len());
        assert!(
            matches!(r, Err(Stopped::Exceeded(Exceeded { limit: 0x80_0000 }))),
            "{r:?}"
        );
        let r = isolated(8 << 20, || vec![1u8; 1 << 20].len());
        assert!(matches!(r, Ok(0x10_0000)), "{r:?}");
    }

    #[test]
    fn a_worker_runs_jobs_until_one_is_past_its_budget() {
        let mut w = Worker::spawn(0u32, 8 << 20).unwrap();
        assert!(matches!(
            w.run(|n| {
                *n += 1;
                *n
            }),
            Ok(1)
        ));
        assert!(matches!(
            w.run(|n| {
                *n += 1;
                *n
            }),
            Ok(2)
        ));
        let r = w.run(|_| {
            let mut v: Vec<Vec<u8>> = Vec::new();
            loop {
                v.push(vec![1u8; 1 << 20]);
                if v.len() > 1000 {
                    break v.len();
                }
            }
        });
        assert!(matches!(r, Err(Stopped::Exceeded(_))), "{r:?}");
        assert!(w.is_finished());
    }

    #[test]
    fn a_worker_that_never_ends_is_given_up() {
        let mut w = Worker::spawn((), 8 << 20).unwrap();
        w.give_up = Duration::from_millis(200);
        let r = w.run(|_| std::thread::sleep(Duration::from_secs(60)));
        assert!(matches!(r, Err(Stopped::TimedOut)), "{r:?}");
        assert!(w.is_finished());
    }

    #[test]
    fn threads_left_behind_are_counted_until_they_end_and_capped() {
        // One given up that ends soon after: counted, then not.
        let mut w = Worker::spawn((), 8 << 20).unwrap();
        w.give_up = Duration::from_millis(100);
        let before = held();
        let r = w.run(|_| std::thread::sleep(Duration::from_millis(600)));
        assert!(matches!(r, Err(Stopped::TimedOut)), "{r:?}");
        assert!(held() > before, "counted while it runs");
        drop(w);
        let until = Instant::now() + Duration::from_secs(10);
        while held() > before && Instant::now() < until {
            std::thread::sleep(Duration::from_millis(20));
        }
        assert_eq!(held(), before, "not counted once ended");

        // Stopped for good (one allocation past budget and grace): each
        // is held, and past MAX_HELD no thread is started.
        let mut stuck = 0;
        let refused = loop {
            match isolated(1 << 20, || vec![1u8; 64 << 20].len()) {
                Err(Stopped::Exceeded(_)) => stuck += 1,
                Err(Stopped::Saturated(n)) => break n,
                other => panic!("{other:?}"),
            }
            assert!(stuck <= MAX_HELD, "never refused");
        };
        assert!(refused >= MAX_HELD, "{refused}");
        assert!(matches!(
            Worker::spawn((), 8 << 20),
            Err(Stopped::Saturated(_))
        ));
        let msg = saturated().expect("saturated");
        assert!(msg.contains("restart the process"), "{msg}");
        assert!(wasmlayer_core::Error::from(Stopped::Saturated(refused))
            .to_string()
            .contains("native policy evaluations are refused"),);
    }
}
