#!/usr/bin/env python3
"""Adversarial suite: hostile guests, hostile HTTP clients and malformed
input against the real `wasmlayer` binary (target/debug/wasmlayer).

Every case runs with a deadline and is judged on what the host did: it never
crashes (no panic, no death by a signal, no exit 101) or hangs, nothing
escapes the grants (files, environment, arguments, network), other tenants
of `serve` keep being answered, and each refusal is a non-zero exit with a
message naming its cause.

    python3 scripts/adversarial.py            # every case
    python3 scripts/adversarial.py --short    # a representative subset (CI)
    python3 scripts/adversarial.py -k serve   # cases whose category or name contains `serve`

scripts/adversarial.sh builds the binary and the guests first; run this
directly only when both are there. Python 3.11, standard library only.
"""

from __future__ import annotations

import argparse
import ctypes
import gzip
import http.client
import io
import json
import os
import re
import select
import shutil
import signal
import socket
import ssl
import struct
import subprocess
import sys
import tarfile
import tempfile
import textwrap
import threading
import time
import traceback
import zlib
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(os.environ.get("WASMLAYER_BIN", ROOT / "target/debug/wasmlayer"))
GUESTS = Path(os.environ.get("WASMLAYER_GUESTS", ROOT / "target/guests"))
ADV = ROOT / "tests/adversarial"
FIXTURES = ROOT / "tests/fixtures"
K8S_POLICY = ROOT / "examples/policies/k8s"
K8S_REVIEWS = ROOT / "examples/policies/k8s-reviews"

SECRET = "TOP SECRET do not leak 7f3a"
# What a crash of the host looks like on standard error, whatever the exit
# code. A guest's own panic is printed by the guest (its thread is
# `'<unnamed>'`) and ends as a trap: that is the guest failing, not the host.
CRASH_SIGNS = (
    "internal error",
    "fatal runtime error",
    "memory allocation of",
    "Segmentation fault",
    "stack overflow in thread",
)


def host_crash(stderr: str) -> str | None:
    """The line of `stderr` that shows the host crashed, if one does."""
    for line in stderr.splitlines():
        if "panicked at" in line and not line.startswith("thread '<unnamed>'"):
            return line.strip()
        for sign in CRASH_SIGNS:
            if sign in line:
                return line.strip()
    return None


def guest(name: str) -> Path:
    return GUESTS / name


# --- running things -------------------------------------------------------

# Every process the suite starts, so that none outlives it.
_LIVE: set[subprocess.Popen] = set()
_LIVE_LOCK = threading.Lock()


def _track(p: subprocess.Popen) -> subprocess.Popen:
    with _LIVE_LOCK:
        _LIVE.add(p)
    return p


def _untrack(p: subprocess.Popen) -> None:
    with _LIVE_LOCK:
        _LIVE.discard(p)


def _kill_group(p: subprocess.Popen) -> None:
    try:
        os.killpg(p.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    try:
        p.kill()
    except ProcessLookupError:
        pass


def kill_all() -> None:
    with _LIVE_LOCK:
        live = list(_LIVE)
    for p in live:
        _kill_group(p)
        try:
            p.wait(timeout=5)
        except subprocess.TimeoutExpired:
            pass
        _untrack(p)


@dataclass
class Ran:
    """One finished (or killed) run of the binary."""

    argv: list[str]
    code: int | None
    out: bytes
    err: str
    secs: float
    hung: bool = False

    @property
    def text(self) -> str:
        return self.out.decode("utf-8", "replace")

    def error_line(self) -> str:
        for line in self.err.splitlines():
            if line.startswith("error:") or line.startswith("warning:"):
                return line
        lines = [l for l in self.err.splitlines() if l.strip()]
        return lines[0] if lines else ""

    def excerpt(self, limit: int = 110) -> str:
        """The message from its first `error:` (or first line) on, on one
        line, with the suite's scratch paths left out."""
        err = re.sub(r"/tmp/wasmlayer-adversarial-[^/\s]+/(?:[^/\s]+/)*", "", self.err)
        i = err.find("error:")
        text = " ".join((err[i:] if i >= 0 else err).split())
        return text if len(text) <= limit else text[: limit - 3] + "..."

    def crash(self) -> str | None:
        """Why this run counts as a crash of the host, if it does."""
        if self.hung:
            return None
        if self.code is None:
            return "no exit status"
        if self.code < 0:
            return f"killed by signal {-self.code} ({signal.Signals(-self.code).name})"
        if self.code == 101:
            return "exit 101 (panic)"
        line = host_crash(self.err)
        return f"on stderr: {line[:200]}" if line else None

    def summary(self, limit: int = 110) -> str:
        if self.hung:
            return f"HANG: still running after {self.secs:.0f}s, killed"
        s = f"exit {self.code}"
        line = self.excerpt(limit)
        if line:
            s += f" · {line}"
        return s


def base_env(ctx: "Ctx", extra: dict[str, str] | None = None) -> dict[str, str]:
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "XDG_CACHE_HOME": str(ctx.cache),
        "HOME": str(ctx.home),
        "LANG": "C.UTF-8",
    }
    if extra:
        env.update(extra)
    return env


def run(
    ctx: "Ctx",
    args: list,
    timeout: float = 60,
    env: dict[str, str] | None = None,
    stdin=subprocess.DEVNULL,
    stdout=subprocess.PIPE,
    input_bytes: bytes | None = None,
    cwd: Path | None = None,
    capped: bool = False,
    on_start=None,
) -> Ran:
    """Runs `wasmlayer ARGS` to its end or `timeout` (then kills it: a hang).

    `capped` caps the address space at 6 GB (`ulimit -v`), so that a bound
    that does not hold ends the process here rather than take the machine's
    memory. `on_start(proc)` is called once the process runs.
    """
    argv = [str(BIN)] + [str(a) for a in args]
    cmd = argv
    if capped:
        cmd = ["sh", "-c", 'ulimit -v 6000000 && exec "$0" "$@"'] + argv
    if input_bytes is not None:
        stdin = subprocess.PIPE
    start = time.monotonic()
    p = _track(
        subprocess.Popen(
            cmd,
            stdin=stdin,
            stdout=stdout,
            stderr=subprocess.PIPE,
            env=base_env(ctx, env),
            cwd=str(cwd or ctx.tmp),
            start_new_session=True,
        )
    )
    if on_start:
        on_start(p)
    hung = False
    try:
        out, err = p.communicate(input=input_bytes, timeout=timeout)
    except subprocess.TimeoutExpired:
        hung = True
        _kill_group(p)
        try:
            out, err = p.communicate(timeout=10)
        except subprocess.TimeoutExpired:
            out, err = b"", b""
    finally:
        _untrack(p)
    r = Ran(
        argv=argv,
        code=p.returncode,
        out=out or b"",
        err=(err or b"").decode("utf-8", "replace"),
        secs=time.monotonic() - start,
        hung=hung,
    )
    ctx.record(r)
    return r


# --- cases ----------------------------------------------------------------


class CaseFailed(Exception):
    pass


@dataclass
class Case:
    category: str
    name: str
    tried: str
    expected: str
    short: bool
    fn: object
    budget: float


CASES: list[Case] = []


# Cases that reproduce faults fixed earlier, with the test that first caught
# each; the table says so after what was tried.
REPRODUCES = {
    "guest blocked in a host call, timeout": "tests/limits.rs timeout_ends_a_guest_blocked_in_a_host_call",
    "huge initial memory": "tests/limits.rs memory_limit_counts_initial_memory_and_tables",
    "stdout flood nobody reads, timeout": "tests/run.rs a_timeout_ends_the_run_while_stdout_is_blocked",
    "exit codes of the host's range": "tests/run.rs guest_exit_codes_of_126_and_above_are_refused",
    "request flood beyond the pool": "tests/serve.rs beyond_the_pool_requests_get_503_with_retry_after",
    "slowloris headers": "tests/serve.rs slow_clients_hold_connections_not_instances",
    "slowloris bodies (slow uploads holding instances)": "tests/serve.rs slow_clients_hold_connections_not_instances",
    "request smuggling (Transfer-Encoding with Content-Length)": "tests/serve.rs http_framing_is_checked_before_any_guest",
    "timeouts answered on time under load": "tests/serve.rs timeouts_are_answered_on_time_under_load",
    "fuel metered however a request ends": "tests/serve.rs fuel_is_metered_however_a_request_ends",
    "files that are not artifacts": "tests/inspect_and_bad_input.rs sources_that_are_not_regular_files_are_read_with_a_bound",
    "Rego past the memory limit": "tests/policy.rs native_evaluations_past_the_memory_limit_end_with_137",
    "policy bundle decompression bombs": "tests/policy.rs bundle_bombs_are_refused_early",
    "webhook policy past the memory limit":
        "tests/policy_webhook.rs a_policy_past_the_memory_limit_fails_closed_and_the_server_goes_on",
    "cache entries replaced by FIFOs": "tests/cache.rs entries_replaced_by_fifos_are_misses_not_hangs",
    "cache directory others may write": "tests/cache.rs an_unsafe_cache_directory_is_not_used",
    "limits outside the enforceable range": "tests/limits.rs limits_outside_the_enforceable_range_are_usage_errors",
    "the shortest timeout": "tests/limits.rs the_shortest_timeout_is_enforced",
    "truncated and corrupted .cwasm": "tests/cache.rs damaged_precompiled_files_are_refused_not_run",
}


def case(category: str, name: str, tried: str, expected: str, short: bool = False, budget: float = 180):
    if name in REPRODUCES:
        tried += f" [reproduces {REPRODUCES[name]}]"

    def deco(fn):
        CASES.append(Case(category, name, tried, expected, short, fn, budget))
        return fn

    return deco


@dataclass
class Outcome:
    case: Case
    observed: str = ""
    failures: list[str] = field(default_factory=list)
    crashes: list[str] = field(default_factory=list)
    hangs: list[str] = field(default_factory=list)
    escapes: list[str] = field(default_factory=list)
    secs: float = 0.0

    @property
    def passed(self) -> bool:
        return not (self.failures or self.crashes or self.hangs or self.escapes)


class Ctx:
    """What a case works with: a private temporary directory, the shared
    compile cache, and the outcome being recorded."""

    def __init__(self, suite: "Suite", outcome: Outcome):
        self.suite = suite
        self.outcome = outcome
        self.cache = suite.cache
        self.home = suite.home
        self.tmp = Path(tempfile.mkdtemp(prefix="case-", dir=suite.tmp))
        self.notes: list[str] = []

    # What happened.
    def record(self, r: Ran) -> None:
        why = r.crash()
        if why:
            self.outcome.crashes.append(f"{' '.join(r.argv[1:3])}: {why}: {r.err.strip()[:300]}")
        if r.hung:
            self.outcome.hangs.append(f"{' '.join(r.argv[1:3])} still running after {r.secs:.0f}s")

    def note(self, text: str) -> None:
        self.notes.append(text)

    def check(self, cond: bool, failure: str) -> bool:
        if not cond:
            self.outcome.failures.append(failure)
        return cond

    def escape(self, cond: bool, what: str) -> bool:
        """`cond` true means the sandbox held; false records an escape."""
        if not cond:
            self.outcome.escapes.append(what)
        return cond

    def expect(
        self,
        r: Ran,
        code: int | tuple | None = None,
        says: str | tuple | None = None,
        within: float | None = None,
        nonzero: bool = False,
        label: str = "",
    ) -> bool:
        """Checks a run: its exit code, that stderr says each of `says`
        (case-insensitively), and that it ended within `within` seconds."""
        p = f"{label}: " if label else ""
        ok = True
        if r.hung:
            return False
        if code is not None:
            codes = code if isinstance(code, tuple) else (code,)
            ok &= self.check(r.code in codes, f"{p}exit {r.code}, expected {'/'.join(map(str, codes))}: {r.err.strip()[:200]}")
        if nonzero:
            ok &= self.check(r.code not in (0, None), f"{p}exit 0, expected a failure")
        if says:
            for s in (says if isinstance(says, tuple) else (says,)):
                ok &= self.check(s.lower() in r.err.lower(), f"{p}stderr does not say `{s}`: {r.err.strip()[:200]}")
        if within is not None:
            ok &= self.check(r.secs <= within, f"{p}took {r.secs:.1f}s, more than {within:.0f}s")
        return ok

    def wl(self, args: list, **kw) -> Ran:
        return run(self, args, **kw)


# --- HTTP -----------------------------------------------------------------


def http_request(port: int, path: str, method: str = "GET", body: bytes | None = None,
                 headers: dict | None = None, timeout: float = 10) -> tuple[int, dict, bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request(method, path, body=body, headers=headers or {})
        r = conn.getresponse()
        data = r.read()
        return r.status, {k.lower(): v for k, v in r.getheaders()}, data
    finally:
        conn.close()


def raw_exchange(port: int, data: bytes, timeout: float = 10, linger_rst: bool = False) -> tuple[bytes, str]:
    """Sends `data` on a fresh connection and reads until the server closes
    it or `timeout` passes: (answer, how it ended)."""
    s = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    ended = "closed by server"
    buf = b""
    try:
        try:
            s.sendall(data)
        except (BrokenPipeError, ConnectionResetError):
            ended = "server closed while sending"
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                ended = f"no close within {timeout:.0f}s"
                break
            s.settimeout(left)
            try:
                chunk = s.recv(65536)
            except socket.timeout:
                ended = f"no close within {timeout:.0f}s"
                break
            except ConnectionResetError:
                ended = "reset by server"
                break
            if not chunk:
                break
            buf += chunk
    finally:
        s.close()
    return buf, ended


def status_of(answer: bytes) -> int | None:
    m = re.match(rb"HTTP/1\.[01] (\d{3})", answer)
    return int(m.group(1)) if m else None


class Server:
    """A `wasmlayer serve` process with its ports, access log and stderr."""

    def __init__(self, ctx: Ctx, args: list, name: str = "serve", cmd: str | None = "serve", raw: bool = False):
        self.ctx = ctx
        self.dir = Path(tempfile.mkdtemp(prefix=f"{name}-", dir=ctx.suite.tmp))
        self.out_path = self.dir / "stdout.log"
        self.err_path = self.dir / "stderr.log"
        self.out_f = open(self.out_path, "wb")
        self.err_f = open(self.err_path, "wb")
        argv = [str(a) for a in args] if raw else [str(BIN)] + ([cmd] if cmd else []) + [str(a) for a in args]
        self.argv = argv
        self.proc = _track(
            subprocess.Popen(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=self.out_f,
                stderr=self.err_f,
                env=base_env(ctx),
                cwd=str(self.dir),
                start_new_session=True,
            )
        )
        self.port = None
        self.admin = None

    def stderr(self) -> str:
        return self.err_path.read_text("utf-8", "replace")

    def stdout(self) -> str:
        return self.out_path.read_text("utf-8", "replace")

    def wait_ready(self, patterns: dict[str, str], timeout: float = 90) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            err = self.stderr()
            found = {k: re.search(p, err) for k, p in patterns.items()}
            if all(found.values()):
                for k, m in found.items():
                    setattr(self, k, int(m.group(1)))
                return
            if self.proc.poll() is not None:
                raise CaseFailed(f"{self.argv[1]} exited with {self.proc.returncode}: {err.strip()[:400]}")
            time.sleep(0.05)
        raise CaseFailed(f"{self.argv[1]} did not start within {timeout:.0f}s: {self.stderr()[:400]}")

    def alive(self) -> bool:
        return self.proc.poll() is None

    def access_log(self) -> list[dict]:
        out = []
        for line in self.stdout().splitlines():
            try:
                out.append(json.loads(line))
            except ValueError:
                pass
        return out

    def metrics(self) -> str:
        return http_request(self.admin, "/metrics", timeout=5)[2].decode()

    def metric(self, name: str) -> float | None:
        for line in self.metrics().splitlines():
            if line.startswith(name):
                rest = line[len(name):].strip()
                try:
                    return float(rest)
                except ValueError:
                    continue
        return None

    def stop(self, timeout: float = 20) -> tuple[int | None, float]:
        """SIGTERM, then the exit status and how long it took (None: killed)."""
        start = time.monotonic()
        code = None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                code = self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                _kill_group(self.proc)
                self.proc.wait(timeout=10)
                code = None
        else:
            code = self.proc.returncode
        _untrack(self.proc)
        self.out_f.close()
        self.err_f.close()
        return code, time.monotonic() - start


# --- the suite ------------------------------------------------------------


class Suite:
    def __init__(self, short: bool, keep: bool):
        self.short = short
        self.keep = keep
        self.tmp = Path(tempfile.mkdtemp(prefix="wasmlayer-adversarial-"))
        self.cache = self.tmp / "cache"
        self.cache.mkdir(mode=0o700)
        self.home = self.tmp / "home"
        self.home.mkdir(mode=0o700)
        self.serve: Server | None = None
        self.serve_ctx: Ctx | None = None

    def cleanup(self) -> None:
        kill_all()
        if not self.keep:
            shutil.rmtree(self.tmp, ignore_errors=True)


SUITE: Suite | None = None


# ===========================================================================
# Hostile guests (`run`)
# ===========================================================================

RUN = "run: hostile guest"


def run_case(category: str, name: str, tried: str, expected: str, short: bool = False, *, args: list,
             timeout: float = 60, wl: dict | None = None, **expect) -> None:
    """A case that is one `wasmlayer` command, judged by `Ctx.expect`."""
    def fn(ctx):
        r = ctx.wl(args, timeout=timeout, **(wl or {}))
        ctx.expect(r, **expect)
        return r.summary()

    case(category, name, tried, expected, short)(fn)


run_case(RUN, "infinite loop, fuel (p1)", "hostile-p1 `loop` with --fuel 5000000",
         "152, `exhausted its fuel (5000000 units)`", short=True,
         args=["run", "--fuel", "5000000", guest("hostile-p1.wasm"), "loop"],
         code=152, says="exhausted its fuel (5000000 units)", within=30)


run_case(RUN, "infinite loop, fuel (p2)", "hostile-p2 `loop` with --fuel 5000000",
         "152, `exhausted its fuel (5000000 units)`",
         args=["run", "--fuel", "5000000", guest("hostile-p2.wasm"), "loop"],
         code=152, says="exhausted its fuel (5000000 units)", within=30)


run_case(RUN, "infinite loop, timeout (p1)", "hostile-p1 `loop` with --timeout 300ms",
         "124 within 10s, `wall-clock timeout (300ms)`", short=True,
         args=["run", "--timeout", "300ms", guest("hostile-p1.wasm"), "loop"],
         code=124, says="wall-clock timeout (300ms)", within=10)


run_case(RUN, "infinite loop, timeout (p2)", "hostile-p2 `loop` with --timeout 300ms",
         "124 within 10s, `wall-clock timeout (300ms)`",
         args=["run", "--timeout", "300ms", guest("hostile-p2.wasm"), "loop"],
         code=124, says="wall-clock timeout (300ms)", within=10)


run_case(RUN, "infinite loop, timeout (p3)", "hello-p3 `--spin` with --timeout 1s",
         "124 within 10s, `wall-clock timeout (1s)`",
         args=["run", "--timeout", "1s", guest("hello-p3.wasm"), "--spin"],
         code=124, says="wall-clock timeout (1s)", within=10)


run_case(RUN, "infinite loop in the start function, timeout",
         "start-spin.wat: a `(start)` function that spins while the module is instantiated, --timeout 500ms",
         "124 within 10s, `wall-clock timeout (500ms)`", short=True,
         args=["run", "--timeout", "500ms", ADV / "start-spin.wat"],
         code=124, says="wall-clock timeout (500ms)", within=10)


run_case(RUN, "infinite loop in the start function, fuel",
         "start-spin.wat with --fuel 1000000",
         "152, `exhausted its fuel (1000000 units)`",
         args=["run", "--fuel", "1000000", ADV / "start-spin.wat"],
         code=152, says="exhausted its fuel (1000000 units)", within=30)


@case(RUN, "guest blocked in a host call, timeout",
      "hostile-p1 `sleep 60` (blocked in poll_oneoff) with --timeout 300ms",
      "124 within 10s; `slept` never printed", short=True)
def _(ctx):
    r = ctx.wl(["run", "--timeout", "300ms", guest("hostile-p1.wasm"), "sleep", "60"], timeout=60)
    ctx.expect(r, code=124, says="wall-clock timeout (300ms)", within=10)
    ctx.check("slept" not in r.text, "the guest finished its sleep")
    return r.summary()


run_case(RUN, "memory bomb (p1)", "hostile-p1 `membomb` (1 MiB chunks, touched) with --max-memory 64MiB",
         "137, `guest exceeded its memory limit (64 MiB)`", short=True,
         args=["run", "--max-memory", "64MiB", guest("hostile-p1.wasm"), "membomb"],
         code=137, says="exceeded its memory limit (64 MiB)", within=30)


run_case(RUN, "memory bomb (p2)", "hostile-p2 `membomb` with --max-memory 64MiB",
         "137, `guest exceeded its memory limit (64 MiB)`",
         args=["run", "--max-memory", "64MiB", guest("hostile-p2.wasm"), "membomb"],
         code=137, says="exceeded its memory limit (64 MiB)", within=30)


run_case(RUN, "memory bomb, 64-bit memory", "memory64-bomb.wat: memory.grow by 4 GiB for ever, --max-memory 64MiB",
         "137, `memory limit (64 MiB)`",
         args=["run", "--max-memory", "64MiB", ADV / "memory64-bomb.wat"],
         code=137, says="memory limit (64 MiB)", within=30)


run_case(RUN, "stack overflow (p1)", "hostile-p1 `recurse` (unbounded non-tail recursion)",
         "134, `guest trapped: stack overflow`, backtrace names `recurse`", short=True,
         args=["run", guest("hostile-p1.wasm"), "recurse"],
         code=134, says=("guest trapped: stack overflow", "recurse"), within=30)


run_case(RUN, "stack overflow (p2)", "hostile-p2 `recurse`",
         "134, `guest trapped: stack overflow`",
         args=["run", guest("hostile-p2.wasm"), "recurse"],
         code=134, says="guest trapped: stack overflow", within=30)


run_case(RUN, "table growth", "tests/fixtures/table-bomb.wat (table.grow by 65536 for ever) with --max-memory 1MiB",
         "137, `memory limit (1 MiB)`", short=True,
         args=["run", "--max-memory", "1MiB", FIXTURES / "table-bomb.wat"],
         code=137, says="memory limit (1 MiB)", within=30)


@case(RUN, "table growth, no memory limit given",
      "tests/fixtures/table-bomb.wat with only --timeout 10s, address space capped at 6 GB",
      "non-zero exit with a one-line cause within 15s, no abort")
def _(ctx):
    r = ctx.wl(["run", "--timeout", "10s", FIXTURES / "table-bomb.wat"], timeout=60, capped=True)
    ctx.expect(r, nonzero=True, within=15)
    ctx.check(r.error_line().startswith("error:"), f"no `error:` line: {r.err.strip()[:200]}")
    return r.summary()


run_case(RUN, "huge table at start", "huge-table.wat: a table of 100,000,000 elements, --max-memory 64MiB",
         "137, `to start, above its memory limit (64 MiB)`",
         args=["run", "--max-memory", "64MiB", ADV / "huge-table.wat"],
         code=137, says="above its memory limit (64 MiB)", within=30)


run_case(RUN, "huge initial memory", "tests/fixtures/huge-memory.wat (1 GiB initial memory) with --max-memory 512MiB",
         "137, `needs 1 GiB of memory to start, above its memory limit (512 MiB)`", short=True,
         args=["run", "--max-memory", "512MiB", FIXTURES / "huge-memory.wat"],
         code=137, says="needs 1 GiB of memory to start, above its memory limit (512 MiB)", within=30)


@case(RUN, "huge initial memory, 64-bit, no limit given",
      "huge-initial.wat: 2^40 pages (64 PiB) of memory64 and a 2^32-1 element table, no flags, address space capped at 6 GB",
      "non-zero exit with a one-line cause, no abort")
def _(ctx):
    r = ctx.wl(["run", ADV / "huge-initial.wat"], timeout=60, capped=True)
    ctx.expect(r, nonzero=True, within=30)
    ctx.check(r.error_line().startswith("error:"), f"no `error:` line: {r.err.strip()[:200]}")
    return r.summary()


run_case(RUN, "many-instances bomb in a component",
         "instance-bomb.wat: a p2 command component whose nested components instantiate 10^6 core instances",
         "non-zero exit within 30s naming the instance limit", short=True,
         args=["run", "--timeout", "10s", ADV / "instance-bomb.wat"], nonzero=True, says="instance", within=30, timeout=90)


run_case(RUN, "many memories in a component",
         "memory-instance-bomb.wat: 10^4 core instances with a 64 KiB memory each, --max-memory 64MiB",
         "137, `memory limit (64 MiB)`", short=True,
         args=["run", "--max-memory", "64MiB", ADV / "memory-instance-bomb.wat"],
         code=137, says="memory limit (64 MiB)", within=30, timeout=90)


@case(RUN, "many memories in a component, no memory limit given",
      "memory-instance-bomb.wat with no flags",
      "non-zero exit within 30s with a one-line cause")
def _(ctx):
    r = ctx.wl(["run", ADV / "memory-instance-bomb.wat"], timeout=90)
    ctx.expect(r, nonzero=True, within=30)
    ctx.check(r.error_line().startswith("error:"), f"no `error:` line: {r.err.strip()[:200]}")
    return r.summary()


@case(RUN, "components nested 1000 deep",
      "a component text nesting 1000 components, each in the one above",
      "126, `invalid WebAssembly`")
def _(ctx):
    depth = 1000
    text = "(component " * depth + ")" * depth
    p = ctx.tmp / "deep.wat"
    p.write_text(text)
    r = ctx.wl(["run", p], timeout=60)
    ctx.expect(r, code=126, says="invalid WebAssembly", within=30)
    return r.summary()


@case(RUN, "blocks nested 20000 deep",
      "a binary module whose function nests 20,000 `block`s (validator and compiler depth; compile time grows "
      "faster than linearly with the depth; see `compile bomb, timeout`)",
      "126, `invalid WebAssembly` or a normal run (exit 0) within 30s; never a crash")
def _(ctx):
    depth = 20_000
    body = bytes([0x00]) + bytes([0x02, 0x40]) * depth + bytes([0x0B]) * depth + bytes([0x0B])
    p = ctx.tmp / "deep-blocks.wasm"
    p.write_bytes(wasm_module_with_start_body(body))
    r = ctx.wl(["run", "--no-cache", p], timeout=120)
    ctx.expect(r, code=(0, 126), within=30)
    if r.code == 126:
        ctx.expect(r, says="invalid WebAssembly")
    return r.summary()


@case(RUN, "compile bomb, timeout",
      "a binary module whose function nests 100,000 `block`s (about a minute of compiling here), --timeout 2s",
      "124 within 10s, `compiling the guest took longer than its wall-clock timeout (2s)`", short=True)
def _(ctx):
    depth = 100_000
    body = bytes([0x00]) + bytes([0x02, 0x40]) * depth + bytes([0x0B]) * depth + bytes([0x0B])
    p = ctx.tmp / "compile-bomb.wasm"
    p.write_bytes(wasm_module_with_start_body(body))
    r = ctx.wl(["run", "--no-cache", "--timeout", "2s", p], timeout=120)
    ctx.expect(r, code=124, says="compiling the guest took longer than its wall-clock timeout (2s)", within=10)
    return r.summary()


def leb(n: int) -> bytes:
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def section(sid: int, payload: bytes) -> bytes:
    return bytes([sid]) + leb(len(payload)) + payload


def wasm_module_with_start_body(body: bytes) -> bytes:
    """(module (func (export "_start") BODY)); BODY holds the locals vector."""
    types = section(1, b"\x01\x60\x00\x00")
    funcs = section(3, b"\x01\x00")
    exports = section(7, b"\x01" + leb(6) + b"_start" + b"\x00\x00")
    code = section(10, b"\x01" + leb(len(body)) + body)
    return b"\0asm\x01\0\0\0" + types + funcs + exports + code


# --- preopens ---------------------------------------------------------------


def sandbox(ctx: Ctx) -> Path:
    """`top/box` (granted, holding inside.txt) beside `top/secret.txt` and
    `top/outside/`."""
    top = ctx.tmp / "top"
    (top / "box").mkdir(parents=True)
    (top / "outside").mkdir()
    (top / "box/inside.txt").write_text("inside\n")
    (top / "secret.txt").write_text(SECRET + "\n")
    (top / "outside/x.txt").write_text(SECRET + " (outside)\n")
    return top


def tree(top: Path) -> set[str]:
    return {str(p.relative_to(top)) for p in top.rglob("*")}


@case(RUN, "preopen escapes by the guest's own symlinks, links, renames",
      "fs-escape.wat with --dir box::/data: `..`, /etc/passwd, symlinks it creates (relative, absolute, to `..`, "
      "chained, dangling for O_CREAT, to a directory outside), a hard link, a rename and a mkdir out of the grant",
      "exit 0 (no attempt got out), no secret on stdout, nothing created, moved or changed outside `box`", short=True)
def _(ctx):
    top = sandbox(ctx)
    before = tree(top)
    r = ctx.wl(["run", "--dir", f"{top / 'box'}::/data", ADV / "fs-escape.wat"], timeout=60)
    after = tree(top)
    outside_new = sorted(p for p in after - before if not p.startswith("box"))
    ctx.escape(SECRET not in r.text and "root:" not in r.text, f"secret read: {r.text[:300]}")
    ctx.escape(not outside_new, f"created outside the grant: {outside_new}")
    ctx.escape((top / "secret.txt").read_text() == SECRET + "\n", "secret.txt changed")
    ctx.escape(r.code != 0 or (top / "box/inside.txt").exists(), "inside.txt moved out")
    ctx.check(r.code != 100, "control read of inside.txt failed: the run proves nothing")
    ctx.check(r.code == 0, f"exit {r.code} = attempts that got out: {r.text[-400:]}")
    escaped = [l for l in r.text.splitlines() if l.endswith(": escaped")]
    denied = [l for l in r.text.splitlines() if l.endswith(": denied")]
    ctx.check(len(denied) == 12, f"{len(denied)} denials reported, expected 12: {r.text[:500]}")
    return f"{r.summary()} · {len(denied)} denied, {len(escaped)} escaped"


@case(RUN, "preopen escapes by path (p1, p2)",
      "hostile-p1/p2 `read` of /data/../secret.txt, /data/../../../../etc/passwd, /etc/passwd, the absolute host path, "
      "host-made symlinks in the grant (absolute, relative, to /etc); `write /data/../escaped.txt`",
      "each read exits 1 with no secret on stdout; the write exits 1 and creates nothing", short=True)
def _(ctx):
    top = sandbox(ctx)
    os.symlink(top / "secret.txt", top / "box/abs-link")
    os.symlink("../secret.txt", top / "box/rel-link")
    os.symlink("/etc", top / "box/etc-link")
    paths = ["/data/../secret.txt", "/data/../../../../etc/passwd", "/etc/passwd",
             str(top / "secret.txt"), "/data/abs-link", "/data/rel-link", "/data/etc-link/passwd"]
    guests = ["hostile-p1.wasm"] if SUITE.short else ["hostile-p1.wasm", "hostile-p2.wasm"]
    n = 0
    for g in guests:
        for p in paths:
            r = ctx.wl(["run", "--dir", f"{top / 'box'}::/data", guest(g), "read", p], timeout=60)
            ctx.escape(SECRET not in r.text and "root:" not in r.text, f"{g} read {p}: {r.text[:200]}")
            ctx.check(r.code == 1, f"{g} read {p}: exit {r.code}")
            n += 1
        r = ctx.wl(["run", "--dir", f"{top / 'box'}::/data", guest(g), "write", "/data/../escaped.txt", "x"], timeout=60)
        ctx.escape(not (top / "escaped.txt").exists(), f"{g} wrote outside the grant")
        ctx.check(r.code == 1, f"{g} write: exit {r.code}")
        n += 1
    # Control: the grant itself works.
    r = ctx.wl(["run", "--dir", f"{top / 'box'}::/data", guest("hostile-p1.wasm"), "read", "/data/inside.txt"], timeout=60)
    ctx.check(r.code == 0 and r.text == "inside\n", f"control read failed: {r.summary()}")
    return f"{n} attempts: all exit 1, no secret, nothing written; control read of /data/inside.txt: exit {r.code}"


@case(RUN, "read-only grant refuses writes",
      "hostile-p2 `write` over /data/inside.txt and a new /data/new.txt with --dir box::/data:ro",
      "both exit 1; inside.txt unchanged, new.txt not created")
def _(ctx):
    top = sandbox(ctx)
    r1 = ctx.wl(["run", "--dir", f"{top / 'box'}::/data:ro", guest("hostile-p2.wasm"), "write", "/data/inside.txt", "owned"], timeout=60)
    r2 = ctx.wl(["run", "--dir-ro", f"{top / 'box'}::/data", guest("hostile-p2.wasm"), "write", "/data/new.txt", "x"], timeout=60)
    ctx.escape((top / "box/inside.txt").read_text() == "inside\n", "inside.txt overwritten through a read-only grant")
    ctx.escape(not (top / "box/new.txt").exists(), "new.txt created through a read-only grant")
    ctx.check(r1.code == 1 and r2.code == 1, f"exits {r1.code}, {r2.code}")
    return f"exit {r1.code}, exit {r2.code}; files unchanged"


class Swapper(threading.Thread):
    """Swaps `box/sub` between a directory inside the grant and a symlink to
    one outside it (atomically, with renameat2's RENAME_EXCHANGE where the C
    library has it), as fast as it can, until stopped."""

    def __init__(self, top: Path):
        super().__init__(daemon=True)
        self.top = top
        self.swaps = 0
        self.halt = threading.Event()
        libc = ctypes.CDLL(None, use_errno=True)
        self.renameat2 = getattr(libc, "renameat2", None)

    def run(self) -> None:
        box = self.top / "box"
        sub, other = str(box / "sub"), str(box / "sub-swap")
        while not self.halt.is_set():
            if self.renameat2 is not None:
                # AT_FDCWD = -100, RENAME_EXCHANGE = 2
                if self.renameat2(-100, sub.encode(), -100, other.encode(), 2) == 0:
                    self.swaps += 1
                    continue
            # Fallback: two renames through a third name.
            tmp = str(box / "sub-tmp")
            os.rename(sub, tmp)
            os.rename(other, sub)
            os.rename(tmp, other)
            self.swaps += 1


@case(RUN, "symlink race on a preopen",
      "symlink-race.wat opens box/sub/x.txt 20,000 times (x2 spellings) while a host thread swaps `sub` between a "
      "directory inside the grant and a symlink to a directory outside it",
      "exit 0; every read came from inside (no secret on stdout); the race really ran (swaps and reads both happened)",
      short=True)
def _(ctx):
    top = sandbox(ctx)
    (top / "box/sub").mkdir()
    (top / "box/sub/x.txt").write_text("inside\n")
    os.symlink(top / "outside", top / "box/sub-swap")
    sw = Swapper(top)
    sw.start()
    n = 4000 if SUITE.short else 20000
    try:
        r = ctx.wl(["run", "--timeout", "120s", "--dir", f"{top / 'box'}::/data", ADV / "symlink-race.wat", str(n)],
                   timeout=150)
    finally:
        sw.halt.set()
        sw.join(10)
    reads = r.text.count("inside\n")
    leaked = r.text.count(SECRET)
    ctx.escape(leaked == 0, f"{leaked} reads came from outside the grant")
    ctx.check(r.code == 0, f"exit {r.code}: {r.err[:200]}")
    ctx.check(sw.swaps > 100, f"only {sw.swaps} swaps: no race")
    ctx.check(reads > 0, "no read succeeded: the race proves nothing")
    return f"{r.summary()} · {reads} reads from inside, {leaked} from outside, {sw.swaps} swaps"


# --- environment, arguments -------------------------------------------------


@case(RUN, "env and argument leakage",
      "args-env.wat (prints every argument and env entry) run with host env SECRET_TOKEN=hunter2, AWS_SECRET=x, "
      "--env GRANTED=yes, --env MISSING_ON_HOST, --dir, --max-memory; guest args `a b --env c`",
      "the guest's args are exactly [program, a, b, --env, c], its env exactly [GRANTED=yes]; no host value or flag seen",
      short=True)
def _(ctx):
    top = sandbox(ctx)
    r = ctx.wl(["run", "--env", "GRANTED=yes", "--env", "MISSING_ON_HOST", "--dir", f"{top / 'box'}::/data",
                "--max-memory", "64MiB", ADV / "args-env.wat", "a", "b", "--env", "c"],
               env={"SECRET_TOKEN": "hunter2", "AWS_SECRET": "x"}, timeout=60)
    ctx.check(r.code == 0, f"exit {r.code}: {r.err[:200]}")
    args_part, _, env_part = r.text.partition("--environ--\n")
    args = args_part.split("\0")[:-1]
    env = env_part.split("\0")[:-1]
    ctx.escape("hunter2" not in r.text and "SECRET_TOKEN" not in r.text and "AWS_SECRET" not in r.text,
               f"host environment leaked: {r.text[:300]}")
    ctx.escape(set(env) <= {"GRANTED=yes"}, f"ungranted variables seen: {env}")
    ctx.check(env == ["GRANTED=yes"], f"env is {env}, expected [GRANTED=yes]")
    ctx.escape(str(top) not in r.text and "--max-memory" not in r.text and "64MiB" not in r.text,
               f"host flags leaked: {args}")
    ctx.check(args[1:] == ["a", "b", "--env", "c"], f"args are {args}")
    return f"{r.summary()} · args {args} · env {env}"


@case(RUN, "env leakage (p2)",
      "hostile-p2 `envall` and `env SECRET_TOKEN` with SECRET_TOKEN=hunter2 in the host's environment, nothing granted",
      "envall prints nothing; `env` exits 1 `SECRET_TOKEN is not set`")
def _(ctx):
    r1 = ctx.wl(["run", guest("hostile-p2.wasm"), "envall"], env={"SECRET_TOKEN": "hunter2"}, timeout=60)
    r2 = ctx.wl(["run", guest("hostile-p2.wasm"), "env", "SECRET_TOKEN"], env={"SECRET_TOKEN": "hunter2"}, timeout=60)
    ctx.escape(r1.text == "" and "hunter2" not in r2.text, f"leaked: {r1.text[:200]} {r2.text[:200]}")
    ctx.check(r1.code == 0, f"envall exit {r1.code}")
    ctx.expect(r2, code=1, says="SECRET_TOKEN is not set")
    return f"envall: exit {r1.code}, {len(r1.out)} bytes · env: exit {r2.code}"


# --- sockets ------------------------------------------------------------------


class Listener:
    """A loopback TCP listener that counts connections and answers `pong`."""

    def __init__(self):
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.port = self.sock.getsockname()[1]
        self.accepted = 0
        self.halt = False
        self.t = threading.Thread(target=self._serve, daemon=True)
        self.t.start()

    def _serve(self):
        self.sock.settimeout(0.2)
        while not self.halt:
            try:
                c, _ = self.sock.accept()
            except socket.timeout:
                continue
            except OSError:
                return
            self.accepted += 1
            try:
                c.settimeout(2)
                c.recv(64)
                c.sendall(b"pong\n")
            except OSError:
                pass
            c.close()

    def close(self):
        self.halt = True
        self.sock.close()


@case(RUN, "sockets to ungranted hosts (p2 wasi:sockets)",
      "hostile-p2 `connect 127.0.0.1:PORT` to a listener of the suite: without --allow-net, with --allow-net for "
      "another port, with --allow-net 127.0.0.2:PORT; then, as a control, with the exact grant",
      "the three denied runs exit 1 and the listener sees 0 connections; the granted one prints `pong` (1 connection)",
      short=True)
def _(ctx):
    lis, other = Listener(), Listener()
    try:
        target = f"127.0.0.1:{lis.port}"
        g = guest("hostile-p2.wasm")
        denied = [
            ctx.wl(["run", g, "connect", target], timeout=60),
            ctx.wl(["run", "--allow-net", f"127.0.0.1:{other.port}", g, "connect", target], timeout=60),
            ctx.wl(["run", "--allow-net", f"127.0.0.2:{lis.port}", g, "connect", target], timeout=60),
        ]
        time.sleep(0.3)
        before = lis.accepted
        ctx.escape(before == 0, f"{before} connection(s) reached the listener without a grant")
        for r in denied:
            ctx.check(r.code == 1 and "pong" not in r.text, f"denied connect: {r.summary()} {r.text[:100]}")
        ok = ctx.wl(["run", "--allow-net", target, g, "connect", target], timeout=60)
        time.sleep(0.3)
        ctx.check(ok.code == 0 and ok.text.strip() == "pong", f"control: {ok.summary()} {ok.text[:100]}")
        ctx.check(lis.accepted == 1, f"control: {lis.accepted} connections")
        ctx.escape(other.accepted == 0, "the other listener was reached")
        return (f"denied: exits {[r.code for r in denied]}, {before} connections · "
                f"granted: exit {ok.code} `{ok.text.strip()}`, {lis.accepted} connection")
    finally:
        lis.close()
        other.close()


@case(RUN, "sockets to ungranted hosts (p3)",
      "hello-p3 `--connect 127.0.0.1:PORT` without --allow-net",
      "exit 1 `connect failed`; the listener sees 0 connections")
def _(ctx):
    lis = Listener()
    try:
        r = ctx.wl(["run", guest("hello-p3.wasm"), "--connect", f"127.0.0.1:{lis.port}"], timeout=60)
        time.sleep(0.3)
        ctx.escape(lis.accepted == 0, f"{lis.accepted} connection(s) reached the listener")
        ctx.expect(r, code=1, says="connect failed")
        return f"{r.summary()} · {lis.accepted} connections"
    finally:
        lis.close()


@case(RUN, "name lookup without a grant",
      "hostile-p2 `resolve localhost` with no grant, and with --allow-net nonexistent.invalid:80",
      "both exit 1 and print no address")
def _(ctx):
    g = guest("hostile-p2.wasm")
    r1 = ctx.wl(["run", g, "resolve", "localhost"], timeout=60)
    r2 = ctx.wl(["run", "--allow-net", "nonexistent.invalid:80", g, "resolve", "localhost"], timeout=60)
    for r in (r1, r2):
        ctx.escape("127.0.0.1" not in r.text and "::1" not in r.text, f"resolved: {r.text[:100]}")
        ctx.check(r.code == 1, f"exit {r.code}")
    return f"exits {r1.code}, {r2.code}; no address printed"


# --- standard output --------------------------------------------------------


@case(RUN, "gigabytes to stdout, to /dev/null",
      "stdout-flood.wat writing 2 GiB (short form: 512 MiB) in 1 MiB writes, stdout on /dev/null",
      "exit 0 within 120s (bounded by the amount, no buffering in the host)", short=True)
def _(ctx):
    mib = 512 if SUITE.short else 2048
    r = ctx.wl(["run", ADV / "stdout-flood.wat", str(mib)], stdout=subprocess.DEVNULL, timeout=180)
    ctx.expect(r, code=0, within=120)
    return f"{r.summary()} · {mib} MiB in {r.secs:.1f}s"


@case(RUN, "stdout flood into a closed pipe",
      "stdout-flood.wat without end, stdout a pipe whose reading end is closed",
      "the guest's write fails (EPIPE) and it exits 3 within 10s; the host is not killed by SIGPIPE", short=True)
def _(ctx):
    rd, wr = os.pipe()
    os.close(rd)
    try:
        r = ctx.wl(["run", ADV / "stdout-flood.wat", "0"], stdout=wr, timeout=60)
    finally:
        os.close(wr)
    ctx.expect(r, code=3, within=10)
    return r.summary()


@case(RUN, "stdout flood nobody reads, timeout",
      "stdout-flood.wat without end, stdout a pipe nobody reads (the guest blocks in fd_write), --timeout 500ms",
      "124 within 10s, `wall-clock timeout (500ms)`", short=True)
def _(ctx):
    rd, wr = os.pipe()
    try:
        r = ctx.wl(["run", "--timeout", "500ms", ADV / "stdout-flood.wat", "0"], stdout=wr, timeout=60)
    finally:
        os.close(wr)
        os.close(rd)
    ctx.expect(r, code=124, says="wall-clock timeout (500ms)", within=10)
    return r.summary()


@case(RUN, "endless stdout flood, fuel and timeout",
      "stdout-flood.wat without end to /dev/null with --fuel 10000000 --timeout 2s (fuel counts WebAssembly "
      "instructions, about 16 per 1 MiB write, not the host's work in fd_write)",
      "124 within 10s: the timeout ends it")
def _(ctx):
    r = ctx.wl(["run", "--fuel", "10000000", "--timeout", "2s", ADV / "stdout-flood.wat", "0"],
               stdout=subprocess.DEVNULL, timeout=60)
    ctx.expect(r, code=124, says="wall-clock timeout (2s)", within=10)
    return r.summary()


run_case(RUN, "endless stdout flood, timeout",
         "stdout-flood.wat without end to /dev/null with --timeout 1s",
         "124 within 10s",
         args=["run", "--timeout", "1s", ADV / "stdout-flood.wat", "0"],
         code=124, says="wall-clock timeout (1s)", within=10, wl={'stdout': subprocess.DEVNULL})


@case(RUN, "exit codes of the host's range",
      "hostile-p1 and hostile-p2 `exit 137` and `exit 126` (a guest posing as the host's memory-limit and bad-artifact codes)",
      "134 each, `outside of [0..126)`")
def _(ctx):
    out = []
    for g in ("hostile-p1.wasm", "hostile-p2.wasm"):
        for code in ("137", "126"):
            r = ctx.wl(["run", guest(g), "exit", code], timeout=60)
            ctx.expect(r, code=134, says="outside of [0..126)", label=f"{g} exit {code}")
            out.append(str(r.code))
    return "exits " + ", ".join(out)


# ===========================================================================
# Hostile clients against `serve`
# ===========================================================================

SERVE = "serve: hostile client"
POOL = 8
HEADER_TIMEOUT = 2
BODY_TIMEOUT = 2


def serve_manifest(dirpath: Path) -> Path:
    m = dirpath / "wasmlayer.toml"
    m.write_text(textwrap.dedent(f"""\
        [server]
        pool_size = {POOL}
        header_timeout = "{HEADER_TIMEOUT}s"
        body_timeout = "{BODY_TIMEOUT}s"

        [[route]]
        path = "/good"
        component = "{guest('http-hello.wasm')}"

        [[route]]
        path = "/bad"
        component = "{guest('http-hostile.wasm')}"
        timeout = "1s"
        max_memory = "16MiB"
        max_body = "64KiB"

        [[route]]
        path = "/fuel"
        component = "{guest('http-hostile.wasm')}"
        fuel = 50000000

        [[route]]
        path = "/echo"
        component = "{guest('http-echo.wasm')}"
        max_body = "1MiB"
        """))
    return m


def the_server(ctx: Ctx) -> Server:
    """The shared server of the serve cases, started on first use."""
    s = SUITE.serve
    if s is not None and s.alive():
        return s
    if s is not None:
        raise CaseFailed(f"the server died earlier (exit {s.proc.returncode}): {s.stderr()[-400:]}")
    m = serve_manifest(SUITE.tmp)
    s = Server(ctx, ["--listen", "127.0.0.1:0", "--admin", "127.0.0.1:0", m])
    SUITE.serve = s
    s.wait_ready({"port": r"serving http://127\.0\.0\.1:(\d+)", "admin": r"admin http://127\.0\.0\.1:(\d+)"})
    return s


def good(ctx: Ctx, s: Server, when: str, within: float = 2.0) -> str:
    """A request of another tenant: GET /good/x must be 200 within `within`."""
    start = time.monotonic()
    try:
        status, _, body = http_request(s.port, "/good/x", timeout=within + 5)
    except Exception as e:  # noqa: BLE001 - any failure is the finding
        ctx.check(False, f"good request {when}: {type(e).__name__}: {e}")
        return f"good {when}: {type(e).__name__}"
    took = time.monotonic() - start
    ctx.check(status == 200 and body.startswith(b"Hello"), f"good request {when}: {status} {body[:80]!r}")
    ctx.check(took <= within, f"good request {when} took {took:.2f}s")
    return f"good {when}: {status} in {took * 1000:.0f}ms"


def serve_alive(ctx: Ctx, s: Server) -> None:
    ctx.check(s.alive(), f"the server exited with {s.proc.returncode}: {s.stderr()[-300:]}")
    line = host_crash(s.stderr())
    if line:
        ctx.outcome.crashes.append(f"serve stderr: {line[:300]}")


@case(SERVE, "baseline", "start `serve` on a manifest (pool 8, header/body timeouts 2s; /good, /bad, /fuel, /echo) "
      "and GET /good/x", "200 `Hello...` within 2s", short=True)
def _(ctx):
    s = the_server(ctx)
    g = good(ctx, s, "at start")
    serve_alive(ctx, s)
    return g


def flood(ctx: Ctx, s: Server, n: int, path: str) -> tuple[dict, list, list]:
    statuses: dict = {}
    retry_missing = []
    errors = []
    lock = threading.Lock()

    def one():
        try:
            st, h, _ = http_request(s.port, path, timeout=30)
            with lock:
                statuses[st] = statuses.get(st, 0) + 1
                if st == 503 and h.get("retry-after") != "1":
                    retry_missing.append(h)
        except Exception as e:  # noqa: BLE001
            with lock:
                errors.append(f"{type(e).__name__}: {e}")

    threads = [threading.Thread(target=one, daemon=True) for _ in range(n)]
    for t in threads:
        t.start()
    return statuses, retry_missing, errors, threads


@case(SERVE, "request flood beyond the pool",
      f"64 (full: 200) concurrent GET /bad/sleep?800 against a pool of {POOL}; /healthz and a /good request meanwhile",
      "only 200s and 503s with `Retry-After: 1`, at least 8 200s, no error; /healthz answers 200 during; "
      "/good answers 200 within 2s after", short=True)
def _(ctx):
    s = the_server(ctx)
    n = 64 if SUITE.short else 200
    statuses, retry_missing, errors, threads = flood(ctx, s, n, "/bad/sleep?800")
    time.sleep(0.5)
    t0 = time.monotonic()
    try:
        hz = http_request(s.admin, "/healthz", timeout=5)[0]
    except Exception as e:  # noqa: BLE001
        hz = f"{type(e).__name__}"
    hz_ms = (time.monotonic() - t0) * 1000
    ctx.check(hz == 200 and hz_ms < 1000, f"/healthz during the flood: {hz} in {hz_ms:.0f}ms")
    # During: another tenant is answered at once (200 if a slot is free, else 503 with Retry-After).
    t0 = time.monotonic()
    st_during = http_request(s.port, "/good/x", timeout=5)[0]
    during_ms = (time.monotonic() - t0) * 1000
    ctx.check(st_during in (200, 503) and during_ms < 1000, f"/good during: {st_during} in {during_ms:.0f}ms")
    for t in threads:
        t.join(40)
    ctx.check(not errors, f"client errors: {errors[:3]}")
    ctx.check(set(statuses) <= {200, 503}, f"statuses {statuses}")
    ctx.check(statuses.get(200, 0) >= POOL, f"only {statuses.get(200, 0)} served: {statuses}")
    ctx.check(not retry_missing, f"503 without Retry-After: 1: {retry_missing[:2]}")
    g = good(ctx, s, "after")
    serve_alive(ctx, s)
    return f"{statuses}; /healthz {hz} in {hz_ms:.0f}ms; /good during {st_during} in {during_ms:.0f}ms; {g}"


def readable_of(socks: list, timeout: float) -> list:
    """The sockets of `socks` with something to read (or closed), waiting up
    to `timeout` seconds (poll: any number of descriptors)."""
    if not socks:
        time.sleep(timeout)
        return []
    p = select.poll()
    by_fd = {}
    for c in socks:
        p.register(c, select.POLLIN | select.POLLERR | select.POLLHUP)
        by_fd[c.fileno()] = c
    return [by_fd[fd] for fd, _ in p.poll(timeout * 1000)]


def trickle(ctx: Ctx, port: int, n: int, head: bytes, byte: bytes, every: float, limit: float) -> list[tuple[bytes, float]]:
    """Opens `n` connections sending `head`, then one `byte` on each every
    `every` seconds until the server answers and closes: (answer, seconds)."""
    socks = []
    for _ in range(n):
        c = socket.create_connection(("127.0.0.1", port), timeout=5)
        c.sendall(head)
        c.setblocking(False)
        socks.append(c)
    start = time.monotonic()
    answers = {c: b"" for c in socks}
    done: dict = {}
    next_send = start
    while len(done) < n and time.monotonic() - start < limit:
        now = time.monotonic()
        if now >= next_send:
            for c in socks:
                if c not in done:
                    try:
                        c.send(byte)
                    except (BlockingIOError, BrokenPipeError, ConnectionResetError, OSError):
                        pass
            next_send = now + every
        for c in readable_of([c for c in socks if c not in done], 0.05):
            try:
                chunk = c.recv(65536)
            except (BlockingIOError, ConnectionResetError, OSError):
                chunk = b""
            if chunk:
                answers[c] += chunk
            else:
                done[c] = time.monotonic() - start
    out = [(answers[c], done.get(c, float("inf"))) for c in socks]
    for c in socks:
        c.close()
    return out


@case(SERVE, "slowloris headers",
      "100 (full: 300) connections sending a request head one byte every 300ms for ever; a /good request meanwhile",
      f"each answered `408 request headers not received within {HEADER_TIMEOUT}s` and closed within "
      f"{HEADER_TIMEOUT + 3}s (trickling does not extend the deadline); /good 200 during and after", short=True)
def _(ctx):
    s = the_server(ctx)
    n = 100 if SUITE.short else 300
    result: list = []
    t = threading.Thread(target=lambda: result.extend(
        trickle(ctx, s.port, n, b"GET /good/x HTTP/1.1\r\nHost: x\r\nX-Slow: ", b"a", 0.3, 20)), daemon=True)
    t.start()
    time.sleep(0.5)
    g1 = good(ctx, s, "during")
    t.join(30)
    bad = [(a[:60], round(secs, 1)) for a, secs in result
           if not (a.startswith(b"HTTP/1.1 408") and b"request headers not received within" in a)]
    late = [secs for _, secs in result if secs > HEADER_TIMEOUT + 3]
    ctx.check(len(result) == n, f"{len(result)} of {n} connections came back")
    ctx.check(not bad, f"{len(bad)} not answered 408: {bad[:3]}")
    ctx.check(not late, f"{len(late)} held past {HEADER_TIMEOUT + 3}s (max {max(late, default=0):.1f}s)")
    g2 = good(ctx, s, "after")
    serve_alive(ctx, s)
    worst = max((secs for _, secs in result), default=0)
    return f"{n - len(bad)}/{n} got 408, slowest closed at {worst:.1f}s; {g1}; {g2}"


@case(SERVE, "slowloris bodies (slow uploads holding instances)",
      f"100 (full: 300) POST /bad/ok with Content-Length 1000, the body one byte every 300ms, against a pool of {POOL}",
      f"each answered `408 request body not received within {BODY_TIMEOUT}s` within {BODY_TIMEOUT + 3}s; "
      "/good 200 during (the pool is not held by uploads) and after", short=True)
def _(ctx):
    s = the_server(ctx)
    n = 100 if SUITE.short else 300
    result: list = []
    head = b"POST /bad/ok HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\nabc"
    t = threading.Thread(target=lambda: result.extend(trickle(ctx, s.port, n, head, b"b", 0.3, 20)), daemon=True)
    t.start()
    time.sleep(0.7)
    g1 = good(ctx, s, "during")
    t.join(30)
    bad = [(a[:60], round(secs, 1)) for a, secs in result
           if not (a.startswith(b"HTTP/1.1 408") and b"request body not received within" in a)]
    late = [secs for _, secs in result if secs > BODY_TIMEOUT + 3]
    ctx.check(len(result) == n, f"{len(result)} of {n} connections came back")
    ctx.check(not bad, f"{len(bad)} not answered 408: {bad[:3]}")
    ctx.check(not late, f"{len(late)} held past {BODY_TIMEOUT + 3}s")
    g2 = good(ctx, s, "after")
    serve_alive(ctx, s)
    return f"{n - len(bad)}/{n} got 408; {g1}; {g2}"


def hostile_exchange(ctx: Ctx, s: Server, label: str, data: bytes, expect: tuple, says: bytes | None = None,
                     timeout: float = 10) -> str:
    ans, ended = raw_exchange(s.port, data, timeout=timeout)
    st = status_of(ans)
    ok = ctx.check(st in expect, f"{label}: status {st} ({ended}), expected {expect}: {ans[:120]!r}")
    if says is not None and ok:
        ctx.check(says in ans, f"{label}: answer does not say {says!r}: {ans[:200]!r}")
    ctx.check(not ended.startswith("no close"), f"{label}: connection left open ({ended})")
    return f"{label}: {st}"


@case(SERVE, "oversized headers",
      "a 1 MiB header value; 5,000 headers; a 1 MiB request target",
      "each refused with 431 (or 414/400) and the connection closed; /good 200 after", short=True)
def _(ctx):
    s = the_server(ctx)
    out = [
        hostile_exchange(ctx, s, "1 MiB header", b"GET /good/x HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * (1 << 20) + b"\r\n\r\n",
                         (431, 400)),
        hostile_exchange(ctx, s, "5000 headers", b"GET /good/x HTTP/1.1\r\nHost: x\r\n" +
                         b"".join(b"X-H%d: v\r\n" % i for i in range(5000)) + b"\r\n", (431, 400)),
        hostile_exchange(ctx, s, "1 MiB target", b"GET /good/" + b"a" * (1 << 20) + b" HTTP/1.1\r\nHost: x\r\n\r\n",
                         (414, 431, 400)),
    ]
    out.append(good(ctx, s, "after"))
    serve_alive(ctx, s)
    return "; ".join(out)


@case(SERVE, "oversized bodies",
      "POST /bad/ok declaring Content-Length 100 MiB (max_body 64KiB) and sending 1 MiB; a chunked POST of 2 MiB; "
      "POST /echo with 1 MiB + 1 byte",
      "413 for each, promptly (within 5s); /good 200 after", short=True)
def _(ctx):
    s = the_server(ctx)
    out = []
    t0 = time.monotonic()
    out.append(hostile_exchange(ctx, s, "CL 100 MiB",
                                b"POST /bad/ok HTTP/1.1\r\nHost: x\r\nContent-Length: 104857600\r\n\r\n" + b"z" * (1 << 20),
                                (413,)))
    chunk = b"%x\r\n" % 65536 + b"z" * 65536 + b"\r\n"
    out.append(hostile_exchange(ctx, s, "chunked 2 MiB",
                                b"POST /bad/ok HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n" + chunk * 32 + b"0\r\n\r\n",
                                (413,)))
    out.append(hostile_exchange(ctx, s, "echo 1 MiB + 1",
                                b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n" % ((1 << 20) + 1) + b"z" * ((1 << 20) + 1),
                                (413,)))
    took = time.monotonic() - t0
    ctx.check(took < 15, f"took {took:.1f}s")
    out.append(good(ctx, s, "after"))
    serve_alive(ctx, s)
    return "; ".join(out)


MALFORMED = [
    ("not HTTP", b"THIS IS NOT HTTP\r\n\r\n", (400,)),
    ("binary junk", bytes((i * 37 + 11) % 256 for i in range(4096)), (400,)),
    ("HTTP/1.1 without Host", b"GET /good/x HTTP/1.1\r\n\r\n", (400,)),
    ("unknown version", b"GET /good/x HTTP/9.9\r\nHost: x\r\n\r\n", (400, 505)),
    ("negative Content-Length", b"POST /bad/ok HTTP/1.1\r\nHost: x\r\nContent-Length: -1\r\n\r\n", (400,)),
    ("two Content-Lengths", b"POST /bad/ok HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello", (400,)),
    ("header without a colon", b"GET /good/x HTTP/1.1\r\nHost: x\r\nNoColonHere\r\n\r\n", (400,)),
    ("NUL in a header", b"GET /good/x HTTP/1.1\r\nHost: x\r\nX-A: a\x00b\r\n\r\n", (400,)),
    ("obsolete line folding", b"GET /good/x HTTP/1.1\r\nHost: x\r\nX-A: a\r\n b\r\n\r\n", (400,)),
    ("Transfer-Encoding gzip", b"POST /bad/ok HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip\r\n\r\n", (400,)),
    ("bad chunk size", b"POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nhello\r\n0\r\n\r\n", (400,)),
    ("invalid Host bytes", b"GET /good/x HTTP/1.1\r\nHost: \xff\xfe\r\n\r\n", (400,)),
    ("space before colon", b"GET /good/x HTTP/1.1\r\nHost : x\r\n\r\n", (400,)),
]


@case(SERVE, "malformed HTTP",
      "13 malformed requests (garbage, binary junk, no Host, HTTP/9.9, bad/duplicate Content-Length, no colon, NUL, "
      "obs-fold, TE gzip, bad chunk size, invalid Host, space before colon), each on its own connection",
      "each answered 400 (505 for the version) by the host and closed; /good 200 after", short=True)
def _(ctx):
    s = the_server(ctx)
    out = [hostile_exchange(ctx, s, label, data, exp) for label, data, exp in MALFORMED]
    out.append(good(ctx, s, "after"))
    serve_alive(ctx, s)
    return "; ".join(out)


@case(SERVE, "request smuggling (Transfer-Encoding with Content-Length)",
      "POST with both Transfer-Encoding: chunked and Content-Length, followed on the same connection by GET /bad/trap",
      "one answer, 400 `Transfer-Encoding together with Content-Length`, connection closed; the trap never runs", short=True)
def _(ctx):
    s = the_server(ctx)
    before = s.stderr().count("unreachable")
    req = (b"POST /bad/ok HTTP/1.1\r\nHost: x\r\nContent-Length: 40\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"
           b"GET /bad/trap HTTP/1.1\r\nHost: x\r\n\r\n")
    ans, ended = raw_exchange(s.port, req)
    answers = ans.count(b"HTTP/1.1 ")
    ctx.check(answers == 1 and status_of(ans) == 400, f"{answers} answers: {ans[:200]!r}")
    ctx.check(b"Transfer-Encoding together with Content-Length" in ans, f"{ans[:200]!r}")
    time.sleep(0.5)
    ctx.escape(s.stderr().count("unreachable") == before, "the smuggled /bad/trap ran")
    g = good(ctx, s, "after")
    serve_alive(ctx, s)
    return f"{answers} answer: {status_of(ans)}, {ended}; trap not run; {g}"


@case(SERVE, "many idle connections",
      "300 (full: 1000) connections opened and left silent",
      f"/good 200 within 2s while they are open; each closed by the server without an answer within "
      f"{HEADER_TIMEOUT + 4}s", short=True)
def _(ctx):
    s = the_server(ctx)
    n = 300 if SUITE.short else 1000
    socks = [socket.create_connection(("127.0.0.1", s.port), timeout=5) for _ in range(n)]
    start = time.monotonic()
    g1 = good(ctx, s, "during")
    closed, answered = 0, 0
    deadline = start + HEADER_TIMEOUT + 4
    pending = list(socks)
    while pending and time.monotonic() < deadline:
        for c in readable_of(pending, 0.2):
            try:
                data = c.recv(1024)
            except ConnectionResetError:
                data = b""
            if data:
                answered += 1
            closed += 1
            pending.remove(c)
    for c in socks:
        c.close()
    ctx.check(closed == n, f"{n - closed} idle connections still open after {HEADER_TIMEOUT + 4}s")
    ctx.check(answered == 0, f"{answered} idle connections got an answer")
    g2 = good(ctx, s, "after")
    serve_alive(ctx, s)
    return f"{closed}/{n} closed by the server, {answered} answered; {g1}; {g2}"


@case(SERVE, "clients disconnecting mid-request",
      "close mid-headers; close mid-body; reset (SO_LINGER 0) mid-body; 8 full requests to /bad/sleep?700 "
      "closed right after sending (x3 rounds)",
      "the server goes on: instances in flight back to 0 within 5s, /good 200 after", short=True)
def _(ctx):
    s = the_server(ctx)
    for data, rst in [(b"GET /good/x HTTP/1.1\r\nHo", False),
                      (b"POST /bad/ok HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\nabc", False),
                      (b"POST /bad/ok HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\nabc", True)]:
        c = socket.create_connection(("127.0.0.1", s.port), timeout=5)
        c.sendall(data)
        if rst:
            c.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        c.close()
    for _ in range(3):
        socks = []
        for _ in range(POOL):
            c = socket.create_connection(("127.0.0.1", s.port), timeout=5)
            c.sendall(b"GET /bad/sleep?700 HTTP/1.1\r\nHost: x\r\n\r\n")
            socks.append(c)
        time.sleep(0.2)
        for c in socks:
            c.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            c.close()
    deadline = time.monotonic() + 5
    inflight = None
    while time.monotonic() < deadline:
        inflight = s.metric("wasmlayer_instances_in_flight")
        if inflight == 0:
            break
        time.sleep(0.1)
    ctx.check(inflight == 0, f"instances in flight: {inflight}")
    g = good(ctx, s, "after")
    serve_alive(ctx, s)
    return f"in flight back to {inflight:.0f}; {g}"


@case(SERVE, "timeouts answered on time under load",
      "8 concurrent GET /bad/loop (spinning guests, route timeout 1s)",
      "all 504 within 2.5s each; /healthz 200 during; /good 200 after")
def _(ctx):
    s = the_server(ctx)
    res = []

    def one():
        t0 = time.monotonic()
        try:
            st = http_request(s.port, "/bad/loop", timeout=20)[0]
        except Exception as e:  # noqa: BLE001
            st = type(e).__name__
        res.append((st, time.monotonic() - t0))

    ts = [threading.Thread(target=one, daemon=True) for _ in range(POOL)]
    for t in ts:
        t.start()
    time.sleep(0.3)
    hz = http_request(s.admin, "/healthz", timeout=5)[0]
    for t in ts:
        t.join(30)
    ctx.check(all(st == 504 for st, _ in res) and len(res) == POOL, f"statuses {[st for st, _ in res]}")
    worst = max((secs for _, secs in res), default=0)
    ctx.check(worst < 2.5, f"slowest 504 after {worst:.2f}s")
    ctx.check(hz == 200, f"/healthz {hz}")
    # Give the freed instances a moment to return to the pool.
    time.sleep(0.3)
    g = good(ctx, s, "after")
    serve_alive(ctx, s)
    return f"{len(res)}x {sorted(set(st for st, _ in res))}, slowest {worst:.2f}s; /healthz {hz}; {g}"


@case(SERVE, "fuel metered however a request ends",
      "GET /bad/loop (ended by the 1s timeout) and GET /fuel/loop (route fuel 50,000,000); then their access-log records",
      "504 and 500 `exhausted its fuel`; the records' fuel: the timed-out one > 50,000,000, the exhausted one exactly "
      "50,000,000", short=True)
def _(ctx):
    s = the_server(ctx)
    st1, _, _ = http_request(s.port, "/bad/loop?metered", timeout=20)
    st2, _, body2 = http_request(s.port, "/fuel/loop?metered", timeout=60)
    ctx.check(st1 == 504, f"/bad/loop: {st1}")
    ctx.check(st2 == 500 and b"exhausted its fuel" in body2, f"/fuel/loop: {st2} {body2[:100]!r}")
    rec1 = rec2 = None
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and not (rec1 and rec2):
        log = s.access_log()
        rec1 = next((r for r in log if r.get("path") == "/bad/loop?metered"), None)
        rec2 = next((r for r in log if r.get("path") == "/fuel/loop?metered"), None)
        time.sleep(0.1)
    f1 = rec1 and rec1.get("fuel")
    f2 = rec2 and rec2.get("fuel")
    ctx.check(isinstance(f1, int) and f1 > 50_000_000, f"timed-out record: {rec1}")
    ctx.check(f2 == 50_000_000, f"fuel-exhausted record: {rec2}")
    g = good(ctx, s, "after")
    serve_alive(ctx, s)
    return f"{st1} (fuel {f1}), {st2} (fuel {f2}); {g}"


@case(SERVE, "guest failures stay their own",
      "GET /bad/membomb (route max_memory 16MiB), GET /bad/trap",
      "500 naming `memory limit (16 MiB)` and 500 naming `unreachable`; /good 200 after")
def _(ctx):
    s = the_server(ctx)
    st1, _, b1 = http_request(s.port, "/bad/membomb", timeout=30)
    st2, _, b2 = http_request(s.port, "/bad/trap", timeout=30)
    ctx.check(st1 == 500 and b"memory limit (16 MiB)" in b1, f"membomb: {st1} {b1[:100]!r}")
    ctx.check(st2 == 500 and b"unreachable" in b2, f"trap: {st2} {b2[:100]!r}")
    g = good(ctx, s, "after")
    serve_alive(ctx, s)
    return f"membomb {st1} `{b1.decode(errors='replace').strip()[:60]}`; trap {st2}; {g}"


@case(SERVE, "stop after the hostile clients",
      "SIGTERM to the server that took every hostile client case above",
      "exit 0 within 15s (drained); no panic in its log", short=True)
def _(ctx):
    s = the_server(ctx)
    code, took = s.stop(timeout=15)
    SUITE.serve = None
    ctx.check(code == 0, f"exit {code} after {took:.1f}s: {s.stderr()[-300:]}")
    line = host_crash(s.stderr())
    if line:
        ctx.outcome.crashes.append(f"serve stderr: {line[:300]}")
    return f"exit {code} after {took:.1f}s"


# ===========================================================================
# Malformed input
# ===========================================================================

BAD = "malformed input"


def corrupt(data: bytes, at: float, n: int = 64) -> bytes:
    i = int(len(data) * at)
    return data[:i] + b"\xff" * n + data[i + n:]


def read_leb(data: bytes, i: int) -> tuple[int, int]:
    n = shift = 0
    while True:
        b = data[i]
        i += 1
        n |= (b & 0x7F) << shift
        shift += 7
        if not b & 0x80:
            return n, i


def sections(data: bytes) -> list[tuple[int, int, int]]:
    """Top-level sections of a module or component: (id, payload start, size)."""
    out, i = [], 8
    while i < len(data):
        sid = data[i]
        size, start = read_leb(data, i + 1)
        out.append((sid, start, size))
        i = start + size
    return out


def corrupt_code(module: bytes) -> bytes:
    """The module with 16 bytes of 0xff (no valid opcode) at the start of its
    first function body's instructions."""
    for sid, start, _ in sections(module):
        if sid == 10:
            _, i = read_leb(module, start)  # function count
            _, i = read_leb(module, i)  # first body's size
            groups, i = read_leb(module, i)  # local declarations
            for _ in range(groups):
                _, i = read_leb(module, i)
                i += 1
            return module[:i] + b"\xff" * 16 + module[i + 16:]
    raise CaseFailed("no code section")


def corrupt_inner_module(component: bytes) -> bytes:
    """The component with the header of its first core module garbled."""
    for sid, start, _ in sections(component):
        if sid == 1:
            return component[:start] + b"\xde\xad\xbe\xef\xde\xad\xbe\xef" + component[start + 8:]
    raise CaseFailed("no core module section")


def corrupt_section_size(data: bytes) -> bytes:
    """The first section's size made 2^32 - 1."""
    _, start, _ = sections(data)[0]
    return data[:9] + b"\xff\xff\xff\xff\x0f" + data[start:]


@case(BAD, "truncated and corrupted modules",
      "hostile-p1.wasm cut in half; with 0xff bytes in place of its first function's code; with its first "
      "section's size made 2^32-1; 4 KiB of random bytes; the "
      "4-byte magic alone; an empty file; unbalanced WAT — each through `run`, `inspect` and `compile`",
      "126 each, `error:` naming the cause (invalid WebAssembly module / not a WebAssembly module / empty file ...)",
      short=True)
def _(ctx):
    src = guest("hostile-p1.wasm").read_bytes()
    files = {
        "truncated.wasm": (src[: len(src) // 2], "invalid WebAssembly module"),
        "corrupted.wasm": (corrupt_code(src), "invalid WebAssembly module"),
        "bad-size.wasm": (corrupt_section_size(src), "invalid WebAssembly module"),
        "random.bin": (bytes((i * 2654435761 >> 13) & 0xFF for i in range(4096)), "not a WebAssembly module"),
        "header-only.wasm": (b"\0asm", "truncated WebAssembly header"),
        "empty.wasm": (b"", "empty file"),
        "unbalanced.wat": (b"(module (func (export \"_start\")", "invalid WebAssembly"),
    }
    out = []
    for name, (data, says) in files.items():
        p = ctx.tmp / name
        p.write_bytes(data)
        for cmd in (["run", p], ["inspect", p], ["compile", p, "-o", ctx.tmp / "out.cwasm"]):
            r = ctx.wl(cmd, timeout=60)
            label = f"{cmd[0]} {name}"
            ctx.expect(r, code=126, says=says if cmd[0] != "compile" else None, label=label)
            ctx.check(r.err.startswith("error: "), f"{label}: stderr does not start with `error: `")
            out.append(f"{cmd[0]} {name}: {r.code}")
        ctx.check(not (ctx.tmp / "out.cwasm").exists(), f"compile {name} wrote output")
        (ctx.tmp / "out.cwasm").unlink(missing_ok=True)
    return "; ".join(out[:6]) + f"; ... ({len(out)} runs)"


@case(BAD, "truncated and corrupted components",
      "hostile-p2.wasm less its last 100 bytes; cut in half; its first core module's header garbled; its first "
      "section's size made 2^32-1; the component header with a version of a future format — through `run` and `inspect`",
      "126 each, `invalid WebAssembly component` (or `unsupported` for the version)", short=True)
def _(ctx):
    src = guest("hostile-p2.wasm").read_bytes()
    files = {
        "short.wasm": src[:-100],
        "half.wasm": src[: len(src) // 2],
        "inner-module.wasm": corrupt_inner_module(src),
        "bad-size.wasm": corrupt_section_size(src),
        "future.wasm": b"\0asm\x0e\x00\x02\x00" + src[8:],
    }
    out = []
    for name, data in files.items():
        p = ctx.tmp / name
        p.write_bytes(data)
        for cmd in ("run", "inspect"):
            r = ctx.wl([cmd, p], timeout=60)
            ctx.expect(r, code=126, label=f"{cmd} {name}")
            ctx.check(r.err.startswith("error: ") and ("component" in r.err or "WebAssembly" in r.err),
                      f"{cmd} {name}: unclear: {r.err[:200]}")
            out.append(f"{cmd} {name}: {r.summary(60)}")
    return "; ".join(out[:2]) + f"; ... ({len(out)} runs, all 126)"


@case(BAD, "truncated and corrupted .cwasm",
      "hostile-p1 compiled with `wasmlayer compile`: truncated by half; 64 bytes of 0xff at 50%; its last byte "
      "flipped; run without --allow-precompiled; compiled without --fuel and run with --fuel; a text file named .cwasm",
      "126 each with a one-line cause (checksum, without --allow-precompiled, other engine settings)", short=True)
def _(ctx):
    good_cwasm = ctx.tmp / "good.cwasm"
    r = ctx.wl(["compile", guest("hostile-p1.wasm"), "-o", good_cwasm], timeout=120)
    if not ctx.check(r.code == 0, f"compile: {r.summary()}"):
        return r.summary()
    src = good_cwasm.read_bytes()
    flipped = bytearray(src)
    flipped[-1] ^= 0x55
    cases = {
        "truncated": (src[: len(src) // 2], ["--allow-precompiled"]),
        "corrupted": (corrupt(src, 0.5), ["--allow-precompiled"]),
        "last-byte": (bytes(flipped), ["--allow-precompiled"]),
        "not-allowed": (src, []),
        "other-engine": (src, ["--allow-precompiled", "--fuel", "1000000"]),
        "text": (b"just some notes\n", ["--allow-precompiled"]),
    }
    out = []
    for name, (data, flags) in cases.items():
        p = ctx.tmp / f"{name}.cwasm"
        p.write_bytes(data)
        r = ctx.wl(["run", *flags, p, "exit", "3"], timeout=60)
        ctx.expect(r, code=126, label=name)
        ctx.check(r.err.startswith("error: ") and len(r.err.strip().splitlines()) == 1,
                  f"{name}: not one clear line: {r.err[:300]}")
        out.append(f"{name}: {r.summary(70)}")
    # Control: the intact file runs.
    r = ctx.wl(["run", "--allow-precompiled", good_cwasm, "exit", "3"], timeout=60)
    ctx.check(r.code == 3, f"control: intact .cwasm: {r.summary()}")
    return "; ".join(out)


@case(BAD, "files that are not artifacts",
      "run a directory, /dev/zero, a missing file; `run /dev/stdin` fed 300 MiB of `(`",
      "126 `is a directory`, 126 `unrecognised header` at once, 127 `file not found`, 126 `longer than 256 MiB`")
def _(ctx):
    r1 = ctx.wl(["run", ctx.tmp], timeout=60)
    ctx.expect(r1, code=126, says="is a directory")
    r2 = ctx.wl(["run", "/dev/zero"], timeout=60)
    ctx.expect(r2, code=126, says="unrecognised header", within=20)
    r3 = ctx.wl(["run", ctx.tmp / "missing.wasm"], timeout=60)
    ctx.expect(r3, code=127, says="file not found")
    r4 = ctx.wl(["run", "/dev/stdin"], input_bytes=b"(" * (300 << 20), timeout=120)
    ctx.expect(r4, code=126, says="longer than 256 MiB", within=90)
    return f"{r1.code}, {r2.code} ({r2.secs:.1f}s), {r3.code}, {r4.code} ({r4.secs:.1f}s)"


def manifest_case(ctx: Ctx, text: str | bytes, code, says, files: dict | None = None) -> Ran:
    d = Path(tempfile.mkdtemp(dir=ctx.tmp))
    for name, data in (files or {}).items():
        (d / name).write_bytes(data)
    m = d / "wasmlayer.toml"
    if isinstance(text, bytes):
        m.write_bytes(text)
    else:
        m.write_text(text)
    r = ctx.wl(["serve", "--listen", "127.0.0.1:0", m], timeout=30)
    ctx.expect(r, code=code, says=says, label=text[:40] if isinstance(text, str) else "binary")
    return r


BAD_MANIFESTS = [
    ("TOML syntax error", "[[route]\npath = \"/\"\n", 2, "wasmlayer.toml"),
    ("path without `/`", "[[route]]\npath = \"nope\"\ncomponent = \"x.wasm\"\n", 2, "must start with `/`"),
    ("missing component", "[[route]]\npath = \"/\"\ncomponent = \"missing.wasm\"\n", 127, "missing.wasm"),
    ("p1 module as component", "[[route]]\npath = \"/\"\ncomponent = \"HOSTILE_P1\"\n", 126, "wasi:http component"),
    ("garbage component", "[[route]]\npath = \"/\"\ncomponent = \"junk.wasm\"\n", 126, "junk.wasm"),
    ("unknown key", "[[route]]\npath = \"/\"\ncomponent = \"HELLO\"\nfrobnicate = 1\n", 2, "frobnicate"),
    ("pool_size 0", "[server]\npool_size = 0\n[[route]]\npath = \"/\"\ncomponent = \"HELLO\"\n", 2, "pool"),
    ("negative pool_size", "[server]\npool_size = -5\n[[route]]\npath = \"/\"\ncomponent = \"HELLO\"\n", 2, "pool_size"),
    ("bad max_memory", "[[route]]\npath = \"/\"\ncomponent = \"HELLO\"\nmax_memory = \"lots\"\n", 2, "`lots`"),
    ("timeout 0s", "[[route]]\npath = \"/\"\ncomponent = \"HELLO\"\ntimeout = \"0s\"\n", 2, "timeout"),
    ("no routes", "[server]\npool_size = 4\n", 2, "route"),
    ("duplicate route", "[[route]]\npath = \"/a\"\ncomponent = \"HELLO\"\n[[route]]\npath = \"/a\"\ncomponent = \"HELLO\"\n", 2, "/a"),
    ("bad listen address", "[server]\nlisten = \"nowhere\"\n[[route]]\npath = \"/\"\ncomponent = \"HELLO\"\n", 2, "listen"),
    ("binary garbage", b"\x00\xff\xfe[[route]]\x00", 2, "not UTF-8"),
]


@case(BAD, "bad serve manifests",
      "`serve` on 14 broken manifests: TOML syntax, route path, missing/p1/garbage component, unknown key, pool_size "
      "0 and -5, bad max_memory, timeout 0s, no routes, a duplicate route, a bad listen address, binary garbage",
      "non-zero (2 usage, 126 artifact, 127 missing) with one `error:` line naming the file, key or value", short=True)
def _(ctx):
    out = []
    junk = b"\0asm\x01\0\0\0" + b"\xff" * 64
    for label, text, code, says in BAD_MANIFESTS:
        if isinstance(text, str):
            text = text.replace("HOSTILE_P1", str(guest("hostile-p1.wasm"))).replace("HELLO", str(guest("http-hello.wasm")))
        r = manifest_case(ctx, text, code, says, files={"junk.wasm": junk})
        ctx.check(r.err.startswith("error: "), f"{label}: {r.err[:200]}")
        out.append(f"{label}: {r.summary(70)}")
    return "; ".join(out)


BAD_CAPS = [
    ("TOML syntax error", "[[dir]\nhost = \"box\"\n", "caps.toml"),
    ("dir host not a string", "[[dir]]\nhost = 5\n", "caps.toml"),
    ("directory that does not exist", "dir = [\"/nonexistent-dir::/x\"]\n", "/nonexistent-dir"),
    ("invalid network pattern", "allow_net = [\"not a pattern\"]\n", "invalid network pattern"),
    ("invalid env name", "[env]\n\"=x\" = \"1\"\n", "invalid environment variable name"),
    ("unknown key", "frobnicate = true\n", "frobnicate"),
    ("guest path granted twice", "dir = [\"box::/data\", \"box::/data:ro\"]\n", "granted twice"),
    ("args of the wrong type", "args = \"--verbose\"\n", "--verbose"),
    ("binary garbage", b"\x00\xff\xfe\x01", "caps.toml"),
]


@case(BAD, "bad capability files",
      "`run --caps` with 9 broken files (syntax, wrong types, a missing directory, a bad network pattern, a bad env name, "
      "an unknown key, a guest path granted twice, binary) and a missing file",
      "2 each, an `error:` naming the file, the bad value or key; the guest never runs", short=True)
def _(ctx):
    (ctx.tmp / "box").mkdir()
    g = guest("hostile-p1.wasm")
    out = []
    for label, text, says in BAD_CAPS:
        p = ctx.tmp / "caps.toml"
        p.write_bytes(text if isinstance(text, bytes) else text.encode())
        r = ctx.wl(["run", "--caps", p, g, "envall"], timeout=30)
        ctx.expect(r, code=2, says=says, label=label)
        ctx.check(r.err.startswith("error: "), f"{label}: no `error:` line: {r.err[:300]}")
        ctx.check(r.out == b"", f"{label}: the guest ran")
        out.append(f"{label}: {r.summary(70)}")
    r = ctx.wl(["run", "--caps", ctx.tmp / "missing.toml", g], timeout=30)
    ctx.expect(r, code=2, says="capability file not found", label="missing file")
    out.append(f"missing: {r.summary(60)}")
    return "; ".join(out)


SLOW_REGO = "package slow\n\nr := numbers.range(1, 20000)\n\nx := count([1 | some i in r; some j in r])\n"
BLOWUP_REGO = "package rg\n\nrange := count(numbers.range(1, 1000000000))\n\n" \
              "a := concat(\"\", [\"a\" | some _ in numbers.range(1, 20000)])\n\ngrow := count(replace(a, \"a\", a))\n"


@case(BAD, "bad policies",
      "`policy eval` of: Rego with a syntax error; an unknown entrypoint; a quadratic rule (20,000^2); garbage .wasm; "
      "a truncated .wasm; an input that is not JSON; an input nested 100,000 deep",
      "65 naming file:line / the entrypoint; 124 `wall-clock timeout`; 65 `not a valid WebAssembly module`; "
      "2 `not valid JSON` (the nesting too)", short=True)
def _(ctx):
    t = ctx.tmp
    (t / "bad.rego").write_text("package bad\n\nallow if {\n  input.x ==\n}\n")
    (t / "good.rego").write_text("package good\n\nallow if input.user == \"alice\"\n")
    (t / "slow.rego").write_text(SLOW_REGO)
    (t / "garbage.wasm").write_text("not wasm at all")
    (t / "truncated.wasm").write_bytes(b"\0asm\x01\0\0\0\x01\x05")
    (t / "in.json").write_text("{\"user\": ")
    (t / "deep.json").write_text("[" * 100_000 + "]" * 100_000)
    out = []
    for label, args, code, says in [
        ("syntax error", [t / "bad.rego"], 65, "bad.rego:"),
        ("unknown entrypoint", [t / "good.rego", "-e", "good/nothing"], 65, "good/nothing"),
        ("quadratic rule", [t / "slow.rego", "-e", "slow/x"], 124, "wall-clock timeout"),
        ("garbage .wasm", [t / "garbage.wasm"], 65, "garbage.wasm"),
        ("truncated .wasm", [t / "truncated.wasm"], 65, "not a valid WebAssembly module"),
        ("input not JSON", [t / "good.rego", "-i", t / "in.json"], 2, "not valid JSON"),
        ("input nested 100000 deep", [t / "good.rego", "-i", t / "deep.json"], 2, "not valid JSON"),
    ]:
        r = ctx.wl(["policy", "eval", *args], timeout=60, capped=True)
        ctx.expect(r, code=code, says=says, within=30, label=label)
        out.append(f"{label}: {r.summary(70)}")
    return "; ".join(out)


@case(BAD, "Rego past the memory limit",
      "`policy eval` of rules building a 24 GB array (range 1..1e9) and a string doubling past 256 MiB; "
      "`run --policy` with the first as the admission rule (address space capped at 6 GB)",
      "137 `memory limit (256 MiB)` within 20s each; the guest never runs", short=True)
def _(ctx):
    p = ctx.tmp / "r.rego"
    p.write_text(BLOWUP_REGO)
    out = []
    for rule in ("rg/range", "rg/grow"):
        r = ctx.wl(["policy", "eval", p, "-e", rule], timeout=60, capped=True)
        ctx.expect(r, code=137, says="memory limit (256 MiB)", within=20, label=rule)
        out.append(f"{rule}: {r.summary(70)} ({r.secs:.1f}s)")
    adm = ctx.tmp / "adm.rego"
    adm.write_text("package wasmlayer.admission\n\ndefault allow := false\n\nallow if count(numbers.range(1, 1000000000)) > 0\n")
    r = ctx.wl(["run", "--policy", adm, guest("hostile-p1.wasm"), "envall"], timeout=60, capped=True)
    ctx.expect(r, code=137, says="memory limit (256 MiB)", within=20, label="run --policy")
    ctx.check(r.out == b"", "the guest ran")
    out.append(f"run --policy: {r.summary(70)}")
    return "; ".join(out)


def policy_module() -> bytes:
    """A policy module for bundles: the OPA-Wasm ABI fixture of the policy
    tests (tests/fixtures/policies/abi.wat, as text, which the host loads like
    a binary module); entrypoint `echo/data` returns the data."""
    wat = (FIXTURES / "policies/abi.wat").read_text()
    return wat.replace("MINOR_VERSION", "2").replace("BUILTINS", "{}").replace("EXTRA_IMPORT", "").encode()


def tar_gz(entries: list[tuple[tarfile.TarInfo, bytes | None]]) -> bytes:
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.USTAR_FORMAT) as tf:
        for info, data in entries:
            tf.addfile(info, io.BytesIO(data) if data is not None else None)
    return gzip.compress(raw.getvalue())


def file_entry(name: str, data: bytes) -> tuple[tarfile.TarInfo, bytes]:
    i = tarfile.TarInfo(name)
    i.size = len(data)
    i.mode = 0o644
    return i, data


def space_bundle(entries: list[tuple[str, int]]) -> bytes:
    """A gzipped tar of `entries` (name, MiB), each `{}` then spaces, made in
    a moment whatever its size: one MiB of spaces is compressed once and its
    output repeated, as a decompression bomb is made."""
    c = zlib.compressobj(9, zlib.DEFLATED, -15)
    body = bytearray()
    crc = 0
    total = 0
    spaces = b" " * (1 << 20)
    first = b"{}" + spaces[2:]
    crc_spaces_per_mib = None
    for name, size in entries:
        h = tarfile.TarInfo(name)
        h.size = size << 20
        h.mode = 0o644
        hb = h.tobuf(format=tarfile.USTAR_FORMAT)
        body += c.compress(hb) + c.flush(zlib.Z_SYNC_FLUSH)
        crc = zlib.crc32(hb, crc)
        body += c.compress(first) + c.flush(zlib.Z_SYNC_FLUSH)
        crc = zlib.crc32(first, crc)
        steady = c.compress(spaces) + c.flush(zlib.Z_SYNC_FLUSH)
        for _ in range(1, size):
            body += steady
            crc = zlib.crc32(spaces, crc)
        total += len(hb) + (size << 20)
    end = b"\0" * 1024
    body += c.compress(end) + c.flush(zlib.Z_FINISH)
    crc = zlib.crc32(end, crc)
    total += 1024
    return bytes([0x1F, 0x8B, 8, 0, 0, 0, 0, 0, 0, 0xFF]) + bytes(body) + struct.pack("<II", crc, total & 0xFFFFFFFF)


@case(BAD, "bad policy bundles",
      "`policy eval` of: gzip garbage; a valid bundle cut in half; a bundle with no policy.wasm; a bundle whose "
      "data.json is not JSON",
      "65 each with a one-line cause (`not a valid bundle`, `no policy.wasm`, the entry named)", short=True)
def _(ctx):
    wasm = policy_module()
    valid = tar_gz([file_entry("policy.wasm", wasm), file_entry("data.json", b"{\"x\": 1}")])
    bundles = {
        "garbage": (b"\x1f\x8bgarbage", "garbage.tar.gz"),
        "truncated": (valid[: len(valid) // 2], "truncated.tar.gz"),
        "no-wasm": (tar_gz([file_entry("data.json", b"{}")]), "no policy.wasm"),
        "bad-data": (tar_gz([file_entry("policy.wasm", wasm), file_entry("a/data.json", b"{nope")]), "/a/data.json"),
    }
    out = []
    for name, (data, says) in bundles.items():
        p = ctx.tmp / f"{name}.tar.gz"
        p.write_bytes(data)
        r = ctx.wl(["policy", "eval", p, "-e", "echo/data"], timeout=60, capped=True)
        ctx.expect(r, code=65, says=says, label=name)
        out.append(f"{name}: {r.summary(70)}")
    p = ctx.tmp / "valid.tar.gz"
    p.write_bytes(valid)
    r = ctx.wl(["policy", "eval", "--compact", p, "-e", "echo/data"], timeout=60)
    ctx.check(r.code == 0 and '"result":{"x":1}' in r.text, f"control: valid bundle: {r.summary()} {r.text[:100]}")
    return "; ".join(out)


@case(BAD, "policy bundle decompression bombs",
      "a 2 MB bundle declaring four 500 MiB data.json entries; 20 entries of 20 MiB of spaces (ratio); through "
      "`policy eval` and `run --policy` (address space capped at 6 GB)",
      "65 `refused` within 10s: the first names `/a/data.json` and `256 MiB`, the second `200 times its compressed size`",
      short=True)
def _(ctx):
    bomb = ctx.tmp / "bomb.tar.gz"
    bomb.write_bytes(space_bundle([(f"{c}/data.json", 500) for c in "abcd"]))
    ratio = ctx.tmp / "many.tar.gz"
    ratio.write_bytes(space_bundle([(f"d{i}/data.json", 20) for i in range(20)]))
    out = [f"bomb {bomb.stat().st_size >> 10} KiB"]
    for args in (["policy", "eval", bomb], ["run", "--policy", bomb, guest("hostile-p1.wasm"), "envall"]):
        r = ctx.wl(args, timeout=60, capped=True)
        ctx.expect(r, code=65, says=("refused", "/a/data.json", "256 MiB"), within=10, label=args[0])
        out.append(f"{args[0]}: {r.summary(80)} ({r.secs:.1f}s)")
    r = ctx.wl(["policy", "eval", ratio], timeout=60, capped=True)
    ctx.expect(r, code=65, says=("refused", "200 times its compressed size"), within=10, label="ratio")
    out.append(f"ratio: {r.summary(80)} ({r.secs:.1f}s)")
    return "; ".join(out)


@case(BAD, "policy bundle path traversal",
      "a bundle holding policy.wasm and entries `../../escape/data.json`, `/abs-escape/data.json`, a symlink "
      "`data.json` -> /etc/passwd and a hard link `x/data.json` -> /etc/passwd, evaluated from a scratch directory",
      "65 naming the entry that points outside the bundle; nothing written on disk, no host file read", short=True)
def _(ctx):
    wasm = policy_module()
    sym = tarfile.TarInfo("data.json")
    sym.type = tarfile.SYMTYPE
    sym.linkname = "/etc/passwd"
    hard = tarfile.TarInfo("x/data.json")
    hard.type = tarfile.LNKTYPE
    hard.linkname = "/etc/passwd"
    work = ctx.tmp / "a/b/c"
    work.mkdir(parents=True)
    p = work / "traversal.tar.gz"
    p.write_bytes(tar_gz([
        file_entry("policy.wasm", wasm),
        file_entry("../../escape/data.json", b"{\"escaped\": true}"),
        file_entry("/abs-escape/data.json", b"{\"abs\": true}"),
        (sym, None),
        (hard, None),
    ]))
    before = tree(ctx.tmp)
    r = ctx.wl(["policy", "eval", "--compact", p, "-e", "echo/data"], timeout=60, cwd=work)
    after = tree(ctx.tmp)
    ctx.escape(after == before, f"files appeared: {sorted(after - before)}")
    ctx.escape(not Path("/abs-escape").exists(), "/abs-escape created")
    ctx.escape("root:" not in r.text, "/etc/passwd read into the result")
    ctx.expect(r, code=65, says="../../escape/data.json", label="traversal")
    return r.summary(100)


def admission_review(uid: str = "adv-1", **override) -> dict:
    review = json.loads((K8S_REVIEWS / "allowed-pod.json").read_text())
    review["request"]["uid"] = uid
    review.update(override)
    return review


@case(BAD, "malformed AdmissionReviews for `policy eval`",
      "`policy eval examples/policies/k8s -e kubernetes/admission/deny` with -i: half a review; a review nested "
      "100,000 deep; an empty file; a YAML review with a syntax error",
      "2 `not valid JSON` / `not valid YAML` naming the file, never a crash", short=True)
def _(ctx):
    t = ctx.tmp
    text = json.dumps(admission_review())
    (t / "half.json").write_text(text[: len(text) // 2])
    (t / "deep.json").write_text("{\"request\": " + "[" * 100_000 + "]" * 100_000 + "}")
    (t / "empty.json").write_text("")
    (t / "bad.yaml").write_text("request:\n  uid: [unclosed\n  object: {\n")
    out = []
    for name, says in (("half.json", "not valid JSON"), ("deep.json", "not valid JSON"),
                       ("empty.json", "not valid JSON"), ("bad.yaml", "not valid YAML")):
        r = ctx.wl(["policy", "eval", K8S_POLICY, "-i", t / name, "-e", "kubernetes/admission/deny"], timeout=60)
        ctx.expect(r, code=2, says=(says, name), label=name)
        out.append(f"{name}: {r.summary(70)}")
    # Control: a real review is evaluated.
    r = ctx.wl(["policy", "eval", "--compact", K8S_POLICY, "-i", K8S_REVIEWS / "denied-privileged.json",
                "-e", "kubernetes/admission/deny"], timeout=60)
    ctx.check(r.code == 0 and "privileged" in r.text, f"control: {r.summary()} {r.text[:200]}")
    return "; ".join(out)


Webhook = Server


def tls_files(ctx: Ctx) -> tuple[Path, Path]:
    d = SUITE.tmp / "tls"
    if not (d / "server.key").exists():
        d.mkdir(exist_ok=True)
        r = subprocess.run(
            ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
             "-keyout", "server.key", "-out", "server.crt", "-days", "2", "-subj", "/CN=localhost",
             "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost"],
            cwd=d, capture_output=True, timeout=60)
        if r.returncode != 0:
            raise CaseFailed(f"openssl: {r.stderr.decode()[:300]}")
    return d / "server.crt", d / "server.key"


def https_post(port: int, path: str, body: bytes, ctype: str = "application/json", method: str = "POST",
               timeout: float = 30) -> tuple[int, bytes]:
    sslctx = ssl.create_default_context()
    sslctx.check_hostname = False
    sslctx.verify_mode = ssl.CERT_NONE
    conn = http.client.HTTPSConnection("127.0.0.1", port, timeout=timeout, context=sslctx)
    try:
        conn.request(method, path, body=body if method == "POST" else None, headers={"Content-Type": ctype})
        r = conn.getresponse()
        return r.status, r.read()
    finally:
        conn.close()


def https_declared(port: int, path: str, length: int, timeout: float = 30) -> tuple[int | None, bytes]:
    """Sends only the head of a POST declaring a body of `length` bytes and
    reads the answer: a server must refuse a body it will not take without
    waiting for it."""
    sslctx = ssl.create_default_context()
    sslctx.check_hostname = False
    sslctx.verify_mode = ssl.CERT_NONE
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as raw:
        with sslctx.wrap_socket(raw) as s:
            s.sendall(b"POST %s HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
                      b"Content-Length: %d\r\n\r\n" % (path.encode(), length))
            buf = b""
            while b"\r\n\r\n" not in buf:
                chunk = s.recv(65536)
                if not chunk:
                    break
                buf += chunk
    return status_of(buf), buf


def start_webhook(ctx: Ctx, policy: Path, capped: bool = False) -> Server:
    crt, key = tls_files(ctx)
    args = ["policy", "webhook", "--policy", policy, "--listen", "127.0.0.1:0", "--tls-cert", crt, "--tls-key", key]
    hook = Webhook(ctx, args, name="webhook", cmd="")
    hook.wait_ready({"port": r"webhook listening on https://127\.0\.0\.1:(\d+)"})
    return hook


@case(BAD, "malformed AdmissionReviews for the webhook",
      "`policy webhook` (examples/policies/k8s) sent: not JSON; a Pod instead of a review; apiVersion v1beta1; a "
      "review without uid; a JSON array; a review nested 100,000 deep; a POST declaring 4 MiB; text/plain; a GET; plain HTTP "
      "on the TLS port; a broken TLS handshake",
      "400 (413 for the size, 415 for text/plain, 405 for GET) each with the reason; then a valid review is allowed "
      "(200) and the webhook stops with 0 on SIGTERM", short=True)
def _(ctx):
    hook = start_webhook(ctx, K8S_POLICY)
    out = []
    try:
        no_uid = admission_review()
        del no_uid["request"]["uid"]
        pod = admission_review()["request"]["object"]
        for label, body, ctype, method, code, says in [
            ("not JSON", b"{\"apiVersion\": ", "application/json", "POST", 400, b"not valid JSON"),
            ("a Pod", json.dumps(pod).encode(), "application/json", "POST", 400, b"not an AdmissionReview"),
            ("v1beta1", json.dumps(admission_review(apiVersion="admission.k8s.io/v1beta1")).encode(),
             "application/json", "POST", 400, b"admission.k8s.io/v1"),
            ("no uid", json.dumps(no_uid).encode(), "application/json", "POST", 400, b"uid"),
            ("array", b"[1, 2, 3]", "application/json", "POST", 400, None),
            ("nested 100000 deep", b"{\"request\": " + b"[" * 100_000 + b"]" * 100_000 + b"}", "application/json",
             "POST", 400, None),
            ("declared 4 MiB", None, "application/json", "POST", 413, None),
            ("text/plain", b"{}", "text/plain", "POST", 415, None),
            ("GET", b"", "application/json", "GET", 405, None),
        ]:
            try:
                if body is None:
                    st, body_out = https_declared(hook.port, "/validate", 4 << 20)
                else:
                    st, body_out = https_post(hook.port, "/validate", body, ctype, method)
            except Exception as e:  # noqa: BLE001
                st, body_out = f"{type(e).__name__}", b""
            ctx.check(st == code, f"{label}: {st} {body_out[:120]!r}, expected {code}")
            if says and st == code:
                ctx.check(says in body_out, f"{label}: {body_out[:200]!r} does not say {says!r}")
            out.append(f"{label}: {st}")
        ans, ended = raw_exchange(hook.port, b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n", timeout=10)
        ctx.check(status_of(ans) == 400 and b"HTTPS" in ans, f"plain HTTP: {ans[:120]!r} ({ended})")
        out.append(f"plain HTTP: {status_of(ans)}")
        raw_exchange(hook.port, bytes([0x16, 0x03, 0x01, 0x00, 0x05, 1, 2, 3, 4, 5, 6, 7, 8]), timeout=5)
        st, body_out = https_post(hook.port, "/validate", json.dumps(admission_review("after")).encode())
        resp = json.loads(body_out).get("response", {}) if st == 200 else {}
        ctx.check(st == 200 and resp.get("allowed") is True and resp.get("uid") == "after",
                  f"valid review after: {st} {body_out[:200]!r}")
        out.append(f"valid review after: {st} allowed={resp.get('allowed')}")
        ctx.check(hook.alive(), f"webhook exited: {hook.stderr()[-300:]}")
    finally:
        code, took = hook.stop()
        ctx.check(code == 0, f"webhook exit {code} on SIGTERM")
        line = host_crash(hook.stderr())
        if line:
            ctx.outcome.crashes.append(f"webhook stderr: {line[:300]}")
    out.append(f"SIGTERM: exit {code}")
    return "; ".join(out)


@case(BAD, "webhook policy past the memory limit",
      "`policy webhook` with a policy whose deny rule builds a 24 GB array for pods labelled blowup=range; two such "
      "reviews, then a normal one (address space capped at 6 GB)",
      "each blow-up denied (allowed=false, status 500 `memory limit (256 MiB)`) within 20s; the normal review allowed; "
      "the webhook still running")
def _(ctx):
    d = ctx.tmp / "pol"
    d.mkdir()
    (d / "policy.rego").write_text(textwrap.dedent("""\
        package kubernetes.admission

        deny contains "never" if {
        	input.request.object.metadata.labels.blowup == "range"
        	count(numbers.range(1, 1000000000)) > 0
        }
        """))
    crt, key = tls_files(ctx)
    hook = Webhook(ctx, ["sh", "-c", 'ulimit -v 6000000 && exec "$0" "$@"', str(BIN), "policy", "webhook",
                         "--policy", d, "--listen", "127.0.0.1:0", "--tls-cert", crt, "--tls-key", key],
                   name="webhook-capped", raw=True)
    out = []
    try:
        hook.wait_ready({"port": r"webhook listening on https://127\.0\.0\.1:(\d+)"})
        for i in range(2):
            rv = admission_review(f"blowup-{i}")
            rv["request"]["object"]["metadata"]["labels"]["blowup"] = "range"
            t0 = time.monotonic()
            st, body = https_post(hook.port, "/validate", json.dumps(rv).encode(), timeout=60)
            took = time.monotonic() - t0
            resp = json.loads(body).get("response", {}) if st == 200 else {}
            msg = (resp.get("status") or {}).get("message", "")
            ctx.check(st == 200 and resp.get("allowed") is False and "memory limit (256 MiB)" in msg,
                      f"blow-up {i}: {st} {body[:200]!r}")
            ctx.check(took < 20, f"blow-up {i} took {took:.1f}s")
            out.append(f"blow-up {i}: allowed={resp.get('allowed')} `{msg[:50]}` ({took:.1f}s)")
        st, body = https_post(hook.port, "/validate", json.dumps(admission_review("normal")).encode())
        resp = json.loads(body).get("response", {}) if st == 200 else {}
        ctx.check(resp.get("allowed") is True, f"normal review: {st} {body[:200]!r}")
        out.append(f"normal: allowed={resp.get('allowed')}")
        ctx.check(hook.alive(), "webhook exited")
    finally:
        code, _ = hook.stop()
        line = host_crash(hook.stderr())
        if line:
            ctx.outcome.crashes.append(f"webhook stderr: {line[:300]}")
    return "; ".join(out)


# ===========================================================================
# Earlier faults, reproduced
# ===========================================================================

REG = "regression"


@case(REG, "cache entries replaced by FIFOs",
      "run hostile-p1 once with --cache-dir, replace the cached object and every index entry by FIFOs, run again",
      "both runs exit 0 within 60s (`not a regular file`, recompiled): a miss, never a hang", short=True)
def _(ctx):
    cache = ctx.tmp / "c"
    cache.mkdir(mode=0o700)
    args = ["run", "-v", "--cache-dir", cache, guest("hostile-p1.wasm"), "exit", "0"]
    r1 = ctx.wl(args, timeout=120)
    ctx.check(r1.code == 0, f"first run: {r1.summary()}")
    replaced = 0
    for p in cache.rglob("*"):
        if p.is_file():
            p.unlink()
            os.mkfifo(p, 0o600)
            replaced += 1
    r2 = ctx.wl(args, timeout=60)
    ctx.expect(r2, code=0, says="not a regular file", within=60)
    return f"{replaced} entries made FIFOs; second run {r2.summary(60)} ({r2.secs:.1f}s)"


@case(REG, "cache directory others may write",
      "run with --cache-dir of mode 0777",
      "the run still works (exit 0) and nothing is written into that directory")
def _(ctx):
    cache = ctx.tmp / "open"
    cache.mkdir()
    os.chmod(cache, 0o777)
    r = ctx.wl(["run", "-v", "--cache-dir", cache, guest("hostile-p1.wasm"), "exit", "0"], timeout=120)
    ctx.check(r.code == 0, f"{r.summary()}")
    ctx.check(not any(cache.iterdir()), f"wrote into a world-writable cache: {list(cache.iterdir())[:3]}")
    return f"{r.summary(80)}; directory left empty"


@case(REG, "limits outside the enforceable range",
      "--timeout 1ns / 0s / 8761h, --max-memory 18446744073709551616 / 17179869184GiB, --fuel -1, --fuel lots",
      "2 each, an `error:` naming the flag (or the value `-1`, taken for a flag), the guest never runs", short=True)
def _(ctx):
    out = []
    for flag, value in [("--timeout", "1ns"), ("--timeout", "0s"), ("--timeout", "8761h"),
                        ("--max-memory", "18446744073709551616"), ("--max-memory", "17179869184GiB"),
                        ("--fuel", "-1"), ("--fuel", "lots")]:
        r = ctx.wl(["run", flag, value, guest("hostile-p1.wasm"), "envall"], timeout=30)
        ctx.expect(r, code=2, says=flag if value != "-1" else "'-1'", label=f"{flag} {value}")
        ctx.check(r.out == b"", f"{flag} {value}: the guest ran")
        out.append(f"{flag} {value}: {r.code}")
    return "; ".join(out)


run_case(REG, "the shortest timeout",
         "hostile-p1 `loop` with --timeout 1ms",
         "124 within 10s",
         args=["run", "--timeout", "1ms", guest("hostile-p1.wasm"), "loop"],
         code=124, says="wall-clock timeout (1ms)", within=10)


# ===========================================================================
# Driver
# ===========================================================================


def run_case(c: Case) -> Outcome:
    out = Outcome(c)
    ctx = Ctx(SUITE, out)
    result: dict = {}

    def body():
        try:
            result["observed"] = c.fn(ctx)
        except CaseFailed as e:
            result["error"] = str(e)
        except Exception as e:  # noqa: BLE001 - a broken case is a failure, reported as such
            result["error"] = f"driver error: {type(e).__name__}: {e}\n{traceback.format_exc(limit=3)}"

    start = time.monotonic()
    t = threading.Thread(target=body, daemon=True)
    t.start()
    t.join(c.budget)
    out.secs = time.monotonic() - start
    if t.is_alive():
        out.hangs.append(f"the case did not finish within {c.budget:.0f}s")
        kill_all()
        out.observed = "HANG"
    else:
        out.observed = str(result.get("observed") or "")
        if "error" in result:
            out.failures.append(result["error"])
            if not out.observed:
                out.observed = result["error"].splitlines()[0][:200]
    return out


def verdict(o: Outcome) -> str:
    if o.passed:
        return "PASS"
    kinds = [k for k, v in (("CRASH", o.crashes), ("HANG", o.hangs), ("ESCAPE", o.escapes)) if v]
    return "FAIL" + (f" ({', '.join(kinds)})" if kinds else "")


def md(text: str) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def print_table(outcomes: list[Outcome]) -> None:
    print()
    print("| # | category | case | what was tried | expected | observed | result |")
    print("|---|---|---|---|---|---|---|")
    for i, o in enumerate(outcomes, 1):
        c = o.case
        print(f"| {i} | {md(c.category)} | {md(c.name)} | {md(c.tried)} | {md(c.expected)} | "
              f"{md(o.observed)} ({o.secs:.1f}s) | {verdict(o)} |")
    failed = [o for o in outcomes if not o.passed]
    if failed:
        print("\nFailures:")
        for o in failed:
            print(f"- {o.case.category} / {o.case.name}:")
            for kind, items in (("crash", o.crashes), ("hang", o.hangs), ("escape", o.escapes), ("failed", o.failures)):
                for item in items:
                    print(f"    {kind}: {item.strip()[:600]}")


def main() -> int:
    global SUITE
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--short", action="store_true", help="a representative subset of every category (CI)")
    ap.add_argument("-k", dest="only", action="append", default=[],
                    help="only cases whose category or name contains this text (repeatable)")
    ap.add_argument("--keep", action="store_true", help="keep the scratch directory")
    ap.add_argument("--list", action="store_true", help="list the cases and exit")
    a = ap.parse_args()
    unknown = set(REPRODUCES) - {c.name for c in CASES}
    assert not unknown, f"REPRODUCES names no case: {unknown}"
    cases = [c for c in CASES if (c.short or not a.short)]
    if a.only:
        cases = [c for c in cases if any(k.lower() in f"{c.category} {c.name}".lower() for k in a.only)]
    if a.list:
        for c in cases:
            print(f"{c.category:24} {c.name}{'  [short]' if c.short else ''}")
        return 0
    for need in [BIN] + [guest(g) for g in ("hostile-p1.wasm", "hostile-p2.wasm", "hello-p3.wasm",
                                          "http-hello.wasm", "http-hostile.wasm", "http-echo.wasm")]:
        if not Path(need).exists():
            print(f"error: {need} is missing: run scripts/adversarial.sh (it builds the binary and the guests)",
                  file=sys.stderr)
            return 2
    SUITE = Suite(short=a.short, keep=a.keep)
    signal.signal(signal.SIGTERM, lambda *_: (_ for _ in ()).throw(KeyboardInterrupt()))
    mode = "short" if a.short else "full"
    print(f"adversarial suite ({mode}): {len(cases)} cases against {BIN}", flush=True)
    started = time.monotonic()
    outcomes = []
    try:
        for i, c in enumerate(cases, 1):
            o = run_case(c)
            outcomes.append(o)
            print(f"[{i:3}/{len(cases)}] {verdict(o):14} {c.category} / {c.name} ({o.secs:.1f}s)", flush=True)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
    finally:
        if SUITE.serve is not None:
            SUITE.serve.stop(timeout=5)
        SUITE.cleanup()
    took = time.monotonic() - started
    print_table(outcomes)
    passed = sum(o.passed for o in outcomes)
    crashes = sum(len(o.crashes) for o in outcomes)
    hangs = sum(len(o.hangs) for o in outcomes)
    escapes = sum(len(o.escapes) for o in outcomes)
    print()
    print(f"cases tried: {len(outcomes)}, passed: {passed}, failed: {len(outcomes) - passed}; "
          f"crashes: {crashes}, hangs: {hangs}, escapes: {escapes}; {took:.0f}s")
    print(f"adversarial: {passed} passed, {len(outcomes) - passed} failed")
    return 0 if passed == len(outcomes) == len(cases) else 1


if __name__ == "__main__":
    sys.exit(main())
