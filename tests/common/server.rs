//! Servers the tests start (`wasmlayer serve`, `wasmlayer policy webhook`):
//! the process with its output gathered line by line, waited on and
//! signalled, and killed on drop.

use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// A spawned server process, killed on drop.
pub struct Spawned {
    child: Child,
    /// What it is, in messages: "server", "webhook".
    what: &'static str,
    stdout: Arc<Mutex<Vec<String>>>,
    stderr: Arc<Mutex<Vec<String>>>,
}

impl Spawned {
    /// Spawns `cmd` with its standard output and error gathered, each line
    /// by line on a thread of its own.
    pub fn spawn(mut cmd: Command, what: &'static str) -> Spawned {
        let mut child = cmd
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("spawn the {what}: {e}"));
        let stdout = Arc::new(Mutex::new(Vec::new()));
        let stderr = Arc::new(Mutex::new(Vec::new()));
        collect(child.stdout.take().unwrap(), stdout.clone());
        collect(child.stderr.take().unwrap(), stderr.clone());
        Spawned {
            child,
            what,
            stdout,
            stderr,
        }
    }

    /// Waits up to a minute for `found` to find what it looks for in the
    /// standard error lines (the address it listens on, most often).
    pub fn started<T>(&mut self, mut found: impl FnMut(&[String]) -> Option<T>) -> T {
        let what = self.what;
        poll(self, Duration::from_secs(60), itself, |s| {
            found(&s.stderr())
        })
        .unwrap_or_else(|| panic!("{what} did not start:\n{}", self.stderr_text()))
    }

    /// The lines written to standard output so far.
    pub fn stdout(&self) -> MutexGuard<'_, Vec<String>> {
        self.stdout.lock().unwrap()
    }

    /// The lines written to standard error so far.
    pub fn stderr(&self) -> MutexGuard<'_, Vec<String>> {
        self.stderr.lock().unwrap()
    }

    pub fn stderr_text(&self) -> String {
        self.stderr().join("\n")
    }
}

impl Drop for Spawned {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn itself(s: &mut Spawned) -> &mut Spawned {
    s
}

/// Calls `f` every 20 ms until it returns something or `limit` passes;
/// panics with the standard error if the process exits meanwhile.
fn poll<S, T>(
    s: &mut S,
    limit: Duration,
    process: impl Fn(&mut S) -> &mut Spawned,
    mut f: impl FnMut(&S) -> Option<T>,
) -> Option<T> {
    let until = Instant::now() + limit;
    while Instant::now() < until {
        if let Some(v) = f(s) {
            return Some(v);
        }
        let p = process(s);
        if let Ok(Some(status)) = p.child.try_wait() {
            // Let the readers catch the last lines.
            std::thread::sleep(Duration::from_millis(100));
            panic!("{} exited with {status}:\n{}", p.what, p.stderr_text());
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    None
}

/// What the tests do with a server of theirs, on its [`Spawned`] process.
pub trait Serving: Sized {
    fn process(&self) -> &Spawned;
    fn process_mut(&mut self) -> &mut Spawned;

    /// Calls `f` every 20 ms until it returns something or `limit` passes;
    /// panics with the standard error if the server exits meanwhile.
    fn wait_for<T>(&mut self, limit: Duration, f: impl FnMut(&Self) -> Option<T>) -> Option<T> {
        poll(self, limit, Self::process_mut, f)
    }

    fn stderr_text(&self) -> String {
        self.process().stderr_text()
    }

    fn signal(&self, sig: i32) {
        unsafe { libc::kill(self.process().child.id() as i32, sig) };
    }

    /// How the server exited, if it has.
    fn exited(&mut self) -> Option<ExitStatus> {
        self.process_mut().child.try_wait().unwrap()
    }

    /// Waits up to `limit` for the server to exit.
    fn wait_exit(&mut self, limit: Duration) -> Option<ExitStatus> {
        let until = Instant::now() + limit;
        loop {
            if let Some(status) = self.exited() {
                return Some(status);
            }
            if Instant::now() >= until {
                return None;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

/// Gathers the lines a child process writes to `stream`, on a thread of its
/// own, into `lines`.
pub fn collect(
    stream: impl std::io::Read + Send + 'static,
    lines: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
) {
    use std::io::BufRead;
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stream)
            .lines()
            .map_while(Result::ok)
        {
            lines.lock().unwrap().push(line);
        }
    });
}
