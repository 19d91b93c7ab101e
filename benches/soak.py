#!/usr/bin/env python3
"""Soak of `wasmlayer serve` (run by benches/soak.sh; Python 3.11 stdlib only).

Serves benches/soak/app.toml (a good route and hostile ones, each with fuel,
timeout and memory limits), drives it with wrk and benches/soak.lua (a
unique id per request, the route chosen from a fixed pattern), in two runs:
a warm-up (10 % of the requests) and the main run. Then checks:

- every request wrk sent has exactly one access-log record (none lost, none
  duplicated, none the client did not send), on the route its id names,
  with the status and error its route must give, and wrk had every response;
- per route, requests sent == responses received == access-log records ==
  the metrics' request counters, and the metrics' duration counts, fuel sums
  and response body bytes equal the log's;
- every request was metered (fuel and memory peak in its record), and a
  request out of fuel burnt exactly its route's fuel;
- the server's resident memory (VmRSS, sampled every second) is flat after
  the warm-up: idle after the warm-up against idle at the end, and under load
  right after the warm-up against the end of the run, each under 10 % growth;
- no guest ran on after its deadline (a /time/sleep guest resumed after
  its 20 ms deadline wakes from its 100 ms sleep, finds its response gone
  and panics: its message goes to the server's stderr);
- the server logged no panic and exited 0 on SIGTERM.

Prints the figures and exits 1 when a check fails.
"""
import argparse
import datetime
import json
import os
import platform
import random
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request

# kind -> (route, path, status, error text the record must contain)
KINDS = {
    "o": ("/ok", "/ok/hello", 200, None),
    "f": ("/fuel", "/fuel/loop", 500, "exhausted its fuel"),
    "t": ("/trap", "/trap/trap", 500, "guest trapped"),
    "m": ("/mem", "/mem/membomb", 500, "memory limit"),
    "s": ("/time", "/time/sleep", 504, "wall-clock timeout"),
    "l": ("/time", "/time/loop", 504, "wall-clock timeout"),
}
ROUTES = ["/ok", "/fuel", "/time", "/trap", "/mem"]
# Requests per 100 of each kind: 85 % good, 15 % hostile.
DEFAULT_MIX = "o:85,f:4,t:4,m:3,s:3,l:1"
# The /fuel route's fuel in benches/soak/app.toml: what an exhausted request burns.
FUEL_ROUTE_FUEL = 2_000_000
RSS_GROWTH_LIMIT = 0.10
ID_RE = re.compile(r"[?&]id=([a-z])-(\d+)-(\d+)(?:&|$)")


def parse_args():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("requests", type=int, nargs="?", default=1_000_000)
    p.add_argument("--binary", required=True)
    p.add_argument("--manifest", required=True)
    p.add_argument("--lua", required=True)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--connections", type=int, default=32)
    p.add_argument("--warmup", type=float, default=0.10, help="fraction of the requests in the warm-up run")
    p.add_argument("--mix", default=DEFAULT_MIX)
    p.add_argument("--json", help="write the figures here")
    p.add_argument("--keep", action="store_true", help="keep the work directory (access log, server stderr)")
    p.add_argument("--stall", type=float, default=60.0,
                   help="seconds without a new access-log record after which a run is stopped")
    return p.parse_args()


def make_pattern(mix):
    letters = []
    for part in mix.split(","):
        kind, n = part.split(":")
        if kind not in KINDS:
            sys.exit(f"error: unknown kind {kind!r} in the mix (one of {''.join(KINDS)})")
        letters += [kind] * int(n)
    random.Random(20261204).shuffle(letters)
    return "".join(letters)


def budgets(total, threads):
    return [total // threads + (1 if t < total % threads else 0) for t in range(threads)]


def kind_of(pattern, tid, n):
    return pattern[(n + 37 * tid) % len(pattern)]


def rss_kb(pid):
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


class Sampler(threading.Thread):
    """VmRSS of the server and the access log's record count, every second."""

    def __init__(self, pid, log_path):
        super().__init__(daemon=True)
        self.pid, self.log_path = pid, log_path
        self.samples = []  # (seconds since start, rss KB, phase, log records)
        self.phase = "start"
        self.records = 0
        self.last_growth = time.monotonic()
        self._offset = 0
        self._halt = threading.Event()
        self.t0 = time.monotonic()
        self.lock = threading.Lock()

    def count_records(self):
        with self.lock:
            with open(self.log_path, "rb") as f:
                f.seek(self._offset)
                while True:
                    chunk = f.read(1 << 22)
                    if not chunk:
                        break
                    self._offset += len(chunk)
                    n = chunk.count(b"\n")
                    if n:
                        self.records += n
                        self.last_growth = time.monotonic()
            return self.records

    def run(self):
        while not self._halt.is_set():
            rss = rss_kb(self.pid)
            records = self.count_records()
            if rss is not None:
                self.samples.append((time.monotonic() - self.t0, rss, self.phase, records))
            self._halt.wait(1.0)

    def stop(self):
        self._halt.set()
        self.join()


def http_get(url, timeout=5):
    with urllib.request.urlopen(url, timeout=timeout) as r:
        return r.status, r.read().decode()


def start_server(args, work):
    log = open(os.path.join(work, "access.log"), "wb")
    err = open(os.path.join(work, "server.err"), "wb")
    env = {k: v for k, v in os.environ.items() if k not in ("RUST_LOG", "RUST_BACKTRACE")}
    cmd = [args.binary, "serve", "--listen", "127.0.0.1:0", "--admin", "127.0.0.1:0",
           "--cache-dir", os.path.join(work, "cache"), args.manifest]
    proc = subprocess.Popen(cmd, stdout=log, stderr=err, stdin=subprocess.DEVNULL, env=env)
    port = admin = None
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and (port is None or admin is None):
        if proc.poll() is not None:
            sys.exit(f"error: the server exited ({proc.returncode}):\n" + open(err.name).read())
        text = open(err.name).read()
        m = re.search(r"^serving http://127\.0\.0\.1:(\d+)", text, re.M)
        a = re.search(r"^admin http://127\.0\.0\.1:(\d+)", text, re.M)
        port = int(m.group(1)) if m else None
        admin = int(a.group(1)) if a else None
        time.sleep(0.05)
    if port is None or admin is None:
        proc.kill()
        sys.exit("error: the server did not report its addresses within 120 s")
    # Ready: asked on the admin port only, so that the app's log and
    # counters hold the soak's requests and nothing else.
    while True:
        try:
            if http_get(f"http://127.0.0.1:{admin}/readyz")[0] == 200:
                break
        except OSError:
            pass
        time.sleep(0.05)
    return proc, port, admin, cmd


def run_wrk(args, phase, total, pattern, port, work, sampler, server):
    """One wrk run of `total` requests; returns wrk's figures (wrk.json) and its text."""
    out = os.path.join(work, f"wrk-{phase}")
    os.makedirs(out)
    cmd = ["wrk", "-t", str(args.threads), "-c", str(args.connections), "-d", "24h",
           "--timeout", "10s", "-s", args.lua, f"http://127.0.0.1:{port}",
           "--", phase, str(total), pattern, out, str(args.threads)]
    stdout = open(os.path.join(out, "stdout"), "w")
    start = time.monotonic()
    proc = subprocess.Popen(cmd, stdout=stdout, stderr=subprocess.STDOUT)
    stalled = None
    while True:
        done = [f for f in os.listdir(out) if f.startswith("done-")]
        if len(done) == args.threads:
            break
        if proc.poll() is not None:
            break
        if server.poll() is not None:
            stalled = f"the server exited ({server.returncode}) during the run"
            break
        if time.monotonic() - max(sampler.last_growth, start) > args.stall:
            stalled = f"no new access-log record for {args.stall:.0f} s; run stopped"
            break
        time.sleep(0.1)
    # wrk's main thread sleeps for -d; SIGINT ends the sleep, and it prints
    # its figures and calls the script's done().
    if proc.poll() is None:
        proc.send_signal(signal.SIGINT)
    try:
        proc.wait(timeout=60)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
    stdout.close()
    text = open(os.path.join(out, "stdout")).read()
    try:
        figures = json.load(open(os.path.join(out, "wrk.json")))
    except (OSError, ValueError) as e:
        sys.exit(f"error: wrk wrote no figures ({e}); its output:\n{text}")
    figures["wall_s"] = time.monotonic() - start
    figures["stalled"] = stalled
    figures["text"] = text
    return figures


def wait_for_records(sampler, expected, quiet=10.0):
    """Until the log holds `expected` records, or none arrived for `quiet` s."""
    while True:
        n = sampler.count_records()
        if n >= expected or time.monotonic() - sampler.last_growth > quiet:
            return n
        time.sleep(0.1)


def idle_rss(pid, settle=2.0):
    time.sleep(settle)
    reads = []
    for _ in range(3):
        reads.append(rss_kb(pid))
        time.sleep(0.5)
    return int(statistics.median(reads))


def parse_metrics(text):
    """{(name, frozenset(labels)): value} of the classic text format."""
    out = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        m = re.match(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})?\s+(\S+)$", line)
        if not m:
            continue
        labels = frozenset(re.findall(r'(\w+)="((?:[^"\\]|\\.)*)"', m.group(2) or ""))
        out[(m.group(1), labels)] = float(m.group(3))
    return out


def metric(ms, name, **labels):
    return ms.get((name, frozenset(labels.items())))


def analyse_log(path, pattern, sent_by_phase):
    """Reads the access log; returns per-route figures and the problems found."""
    seen = {key: bytearray(n + 1) for key, n in sent_by_phase.items()}
    per_route = {}
    problems = []
    foreign = dup = records = bad_json = 0
    samples = {"foreign": [], "dup": [], "wrong": []}
    wrong = 0
    kinds_seen = {k: 0 for k in KINDS}
    walls = {k: [] for k in KINDS}
    fuel_exact = fuel_off = unmetered = not_started = 0

    def note(kind, text):
        if len(samples[kind]) < 5:
            samples[kind].append(text)

    with open(path, "rb") as f:
        for raw in f:
            records += 1
            try:
                r = json.loads(raw)
            except ValueError:
                bad_json += 1
                note("foreign", raw[:200].decode(errors="replace"))
                continue
            route = r.get("route")
            status = r.get("status")
            pr = per_route.setdefault(route, {"records": 0, "status": {}, "fuel_sum": 0, "fuel_n": 0,
                                              "memory_n": 0, "bytes_out": 0, "bytes_in": 0})
            pr["records"] += 1
            pr["status"][status] = pr["status"].get(status, 0) + 1
            if r.get("fuel") is not None:
                pr["fuel_sum"] += r["fuel"]
                pr["fuel_n"] += 1
            if r.get("memory_peak") is not None:
                pr["memory_n"] += 1
            pr["bytes_out"] += r.get("bytes_out") or 0
            pr["bytes_in"] += r.get("bytes_in") or 0
            m = ID_RE.search(r.get("path") or "")
            key = (m.group(1), int(m.group(2))) if m else None
            if key not in seen or not 1 <= int(m.group(3)) < len(seen[key]):
                foreign += 1
                note("foreign", raw[:200].decode(errors="replace"))
                continue
            n = int(m.group(3))
            c = seen[key][n]
            seen[key][n] = min(c + 1, 255)
            if c:
                dup += 1
                note("dup", raw[:200].decode(errors="replace"))
                continue
            kind = kind_of(pattern, key[1], n)
            kinds_seen[kind] += 1
            exp_route, exp_path, exp_status, exp_error = KINDS[kind]
            err = r.get("error")
            ok = (route == exp_route and r["path"].split("?")[0] == exp_path and status == exp_status
                  and ((exp_error is None and err is None) or (exp_error is not None and err and exp_error in err)))
            if not ok:
                wrong += 1
                note("wrong", f"expected {exp_route} {exp_path} {exp_status} {exp_error!r}: " + raw[:300].decode(errors="replace"))
            # Metered: fuel and memory peak in the record. A timed-out request
            # whose guest had not started by its deadline burnt nothing.
            if r.get("fuel") is None or r.get("memory_peak") is None or (kind not in "sl" and not r["fuel"] > 0):
                unmetered += 1
            if kind in "sl" and r.get("fuel") == 0:
                not_started += 1
            if kind == "f":
                if r.get("fuel") == FUEL_ROUTE_FUEL:
                    fuel_exact += 1
                else:
                    fuel_off += 1
            if ok:
                walls[kind].append(r["wall_us"])
    lost = sum(b.count(0) - 1 for b in seen.values())  # index 0 is never an id
    lost_samples = []
    for (ph, tid), b in seen.items():
        i = b.find(0, 1)
        while i != -1 and len(lost_samples) < 5:
            lost_samples.append(f"{ph}-{tid}-{i}")
            i = b.find(0, i + 1)
    return {
        "records": records, "bad_json": bad_json, "foreign": foreign, "duplicates": dup, "lost": lost,
        "wrong": wrong, "unmetered": unmetered, "not_started": not_started, "fuel_exact": fuel_exact, "fuel_off": fuel_off,
        "per_route": per_route, "kinds": kinds_seen, "walls": walls,
        "samples": samples, "lost_samples": lost_samples,
    }


def pct(values, p):
    if not values:
        return float("nan")
    v = sorted(values)
    return v[min(len(v) - 1, int(round(p / 100 * (len(v) - 1))))]


def main():
    args = parse_args()
    if args.requests < 100:
        sys.exit("error: at least 100 requests")
    pattern = make_pattern(args.mix)
    warm_n = max(1, int(args.requests * args.warmup))
    main_n = args.requests - warm_n
    work = tempfile.mkdtemp(prefix="wasmlayer-soak-")
    failures = []

    def check(ok, what):
        if not ok:
            failures.append(what)
        return ok

    cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), "?")
    started = datetime.datetime.now().astimezone()
    print(f"soak: {args.requests:,} requests through `wasmlayer serve` ({args.binary})")
    print(f"date {started:%Y-%m-%d %H:%M %Z}; machine: {os.cpu_count()} cores, {cpu}, Linux {platform.release()}")
    print(f"wrk -t{args.threads} -c{args.connections} (benches/soak.lua); mix per 100: {args.mix} "
          f"(o ok, f fuel, t trap, m memory, s sleep past timeout, l loop past timeout)")
    print(f"warm-up run {warm_n:,} requests, main run {main_n:,}; work dir {work}")

    server, port, admin, cmd = start_server(args, work)
    try:
        return soak(args, pattern, warm_n, main_n, work, started, cpu, failures, check, server, port, admin, cmd)
    finally:
        if server.poll() is None:
            server.kill()
            server.wait()


def soak(args, pattern, warm_n, main_n, work, started, cpu, failures, check, server, port, admin, cmd):
    print(f"server pid {server.pid}: {' '.join(cmd)}")
    sampler = Sampler(server.pid, os.path.join(work, "access.log"))
    sampler.start()
    rss_start = idle_rss(server.pid, settle=1.0)

    runs = {}
    sent_by_phase = {}
    rss_warm = rss_end = None
    for phase, total in (("w", warm_n), ("m", main_n)):
        sampler.phase = phase
        fig = run_wrk(args, phase, total, pattern, port, work, sampler, server)
        runs[phase] = fig
        for t in fig["threads"]:
            sent_by_phase[(phase, t["tid"])] = t["sent"]
        sent_so_far = sum(sent_by_phase.values())
        sampler.phase = phase + "-drain"
        wait_for_records(sampler, sent_so_far)
        sampler.phase = phase + "-idle"
        if phase == "w":
            rss_warm = idle_rss(server.pid)
        else:
            rss_end = idle_rss(server.pid)
        if fig["stalled"]:
            check(False, f"{'warm-up' if phase == 'w' else 'main'} run: {fig['stalled']}")
            break

    # Counters: every record's counters are incremented right after its line
    # is written; scraped once the log is complete.
    metrics_text = ""
    for _ in range(5):
        metrics_text = http_get(f"http://127.0.0.1:{admin}/metrics")[1]
        ms = parse_metrics(metrics_text)
        total_counted = sum(v for (n, _), v in ms.items() if n == "wasmlayer_requests_total")
        if total_counted >= sampler.count_records():
            break
        time.sleep(1)
    open(os.path.join(work, "metrics.txt"), "w").write(metrics_text)

    sampler.stop()
    rss_max_kb = max((s[1] for s in sampler.samples), default=0)
    server.send_signal(signal.SIGTERM)
    try:
        server_rc = server.wait(timeout=30)
    except subprocess.TimeoutExpired:
        server.kill()
        server_rc = "killed after 30 s"
    err_text = open(os.path.join(work, "server.err"), errors="replace").read()

    # --- the client's side ---------------------------------------------------
    sent_kind = {k: 0 for k in KINDS}
    got_route = {r: 0 for r in ROUTES + ["other"]}
    other_samples = []
    sent = completed = 0
    errors = {"connect": 0, "read": 0, "write": 0, "timeout": 0}
    for fig in runs.values():
        for k in errors:
            errors[k] += fig["errors"][k]
        for t in fig["threads"]:
            sent += t["sent"]
            completed += t["completed"]
            for k, v in t["sent_by_kind"].items():
                sent_kind[k] += v
            for r, v in t["got_by_route"].items():
                got_route[r] = got_route.get(r, 0) + v
            other_samples += t["other_samples"]
    sent_route = {r: 0 for r in ROUTES}
    for k, v in sent_kind.items():
        sent_route[KINDS[k][0]] += v
    wrk_complete = sum(fig["requests"] for fig in runs.values())
    duration_s = sum(fig["duration_us"] for fig in runs.values()) / 1e6

    log = analyse_log(os.path.join(work, "access.log"), pattern, sent_by_phase)
    ms = parse_metrics(metrics_text)

    print()
    print(f"requests sent      {sent:>10,}   (asked {args.requests:,})")
    print(f"responses received {completed:>10,}   (wrk counted {wrk_complete:,}; "
          f"socket errors connect {errors['connect']}, read {errors['read']}, write {errors['write']}, timeout {errors['timeout']})")
    print(f"access-log records {log['records']:>10,}")
    print(f"duplicates         {log['duplicates']:>10,}")
    print(f"lost               {log['lost']:>10,}   (sent, no record)")
    print(f"not sent by wrk    {log['foreign']:>10,}   (record without a known id; unparsable lines: {log['bad_json']})")
    print(f"wrong outcome      {log['wrong']:>10,}   (route, path, status or error not the one its id asks for)")
    print(f"unmetered          {log['unmetered']:>10,}   (record without fuel or memory peak; fuel 0 outside /time)")
    print(f"/time requests past their deadline before their guest started (fuel 0): {log['not_started']:,}")
    print(f"out of fuel, fuel burnt == {FUEL_ROUTE_FUEL:,}: {log['fuel_exact']:,} of {log['fuel_exact'] + log['fuel_off']:,}")
    check(sent == args.requests, f"sent {sent} != asked {args.requests}")
    check(completed == sent, f"responses {completed} != sent {sent}")
    check(wrk_complete == completed, f"wrk counted {wrk_complete} responses, the script {completed}")
    check(not any(errors.values()), f"wrk socket errors {errors}")
    check(log["records"] == sent, f"records {log['records']} != sent {sent}")
    check(log["duplicates"] == 0, f"{log['duplicates']} duplicated records: {log['samples']['dup']}")
    check(log["lost"] == 0, f"{log['lost']} lost records, e.g. ids {log['lost_samples']}")
    check(log["foreign"] == 0 and log["bad_json"] == 0, f"{log['foreign']} records not sent by wrk: {log['samples']['foreign']}")
    check(log["wrong"] == 0, f"{log['wrong']} records with the wrong outcome: {log['samples']['wrong']}")
    check(log["unmetered"] == 0, f"{log['unmetered']} records without metering")
    check(log["fuel_off"] == 0, f"{log['fuel_off']} out-of-fuel records whose fuel is not {FUEL_ROUTE_FUEL}")
    check(got_route["other"] == 0, f"{got_route['other']} responses of no expected kind: {other_samples}")

    print()
    hdr = f"{'route':<7} {'sent':>9} {'received':>9} {'log':>9} {'metrics':>9}  {'status mix (log)':<22} {'fuel sum log = metrics':>24} {'body bytes out':>15}"
    print(hdr)
    for route in ROUTES:
        pr = log["per_route"].get(route, {"records": 0, "status": {}, "fuel_sum": 0, "fuel_n": 0, "bytes_out": 0, "memory_n": 0})
        statuses = {}
        for (name, labels), v in ms.items():
            d = dict(labels)
            if name == "wasmlayer_requests_total" and d.get("route") == route:
                statuses[int(d["status"])] = int(v)
        counted = sum(statuses.values())
        mix = " ".join(f"{s}:{n:,}" for s, n in sorted(pr["status"].items()))
        fuel_m = metric(ms, "wasmlayer_request_fuel_sum", route=route)
        fuel_cnt = metric(ms, "wasmlayer_request_fuel_count", route=route)
        dur_cnt = metric(ms, "wasmlayer_request_duration_seconds_count", route=route)
        mem_cnt = metric(ms, "wasmlayer_request_memory_bytes_count", route=route)
        out_m = metric(ms, "wasmlayer_response_body_bytes_total", route=route)
        fuel_same = fuel_m is not None and int(fuel_m) == pr["fuel_sum"] and fuel_m == float(pr["fuel_sum"])
        print(f"{route:<7} {sent_route[route]:>9,} {got_route[route]:>9,} {pr['records']:>9,} {counted:>9,}  {mix:<22} "
              f"{pr['fuel_sum']:>14,} {'=' if fuel_same else '!='} {'' if fuel_same else fuel_m}  {pr['bytes_out']:>13,}")
        check(sent_route[route] == got_route[route] == pr["records"] == counted,
              f"{route}: sent {sent_route[route]}, received {got_route[route]}, log {pr['records']}, metrics {counted}")
        check(statuses == {s: n for s, n in pr["status"].items()},
              f"{route}: metrics by status {statuses} != log {pr['status']}")
        check(dur_cnt == pr["records"], f"{route}: duration histogram count {dur_cnt} != log {pr['records']}")
        check(fuel_same and fuel_cnt == pr["fuel_n"], f"{route}: fuel sum/count metrics {fuel_m}/{fuel_cnt} != log {pr['fuel_sum']}/{pr['fuel_n']}")
        check(mem_cnt == pr["memory_n"], f"{route}: memory histogram count {mem_cnt} != log {pr['memory_n']}")
        check(out_m == pr["bytes_out"], f"{route}: response bytes metric {out_m} != log {pr['bytes_out']}")
    other_routes = sorted(r for r in log["per_route"] if r not in ROUTES)
    check(not other_routes, f"records on other routes: {other_routes}")
    rejected = {dict(l).get("result"): v for (n, l), v in ms.items() if n == "wasmlayer_rejected_total" and v}
    in_flight = metric(ms, "wasmlayer_instances_in_flight")
    reloads = {dict(l).get("result"): v for (n, l), v in ms.items() if n == "wasmlayer_reloads_total" and v}
    print(f"metrics: rejected {rejected or 0}, instances in flight at the end {in_flight}, reloads {reloads or 0}")
    check(not rejected, f"requests refused before a guest: {rejected}")
    check(in_flight == 0, f"instances in flight after the run: {in_flight}")
    k = log["kinds"]
    print("kinds (log): " + ", ".join(f"{KINDS[x][1]} {k[x]:,}" for x in KINDS))
    # A record is written when the response has been sent and the instance
    # has ended: for /time, its wall time is when the guest was stopped.
    print("wall time of a record (arrival to the instance's end and the response's last byte), p50 / p99 / max ms:")
    for x in KINDS:
        w = log["walls"][x]
        if w:
            print(f"  {KINDS[x][1]:<13} {pct(w, 50) / 1000:8.2f} {pct(w, 99) / 1000:8.2f} {max(w) / 1000:8.2f}")
    slept = sum(1 for w in log["walls"]["s"] + log["walls"]["l"] if w >= 100_000)
    print(f"/time records ending 100 ms or more after arrival (5x the deadline): {slept:,} "
          f"of {len(log['walls']['s']) + len(log['walls']['l']):,}")

    # --- resident memory -----------------------------------------------------
    main_load = [s for s in sampler.samples if s[2] == "m"]
    window = max(1, len(main_load) // 10)
    load_early = statistics.median(s[1] for s in main_load[:window]) if main_load else 0
    load_late = statistics.median(s[1] for s in main_load[-window:]) if main_load else 0
    if rss_warm is None or rss_end is None:
        check(False, "the run stopped before the end: no idle RSS at the end")
        rss_warm, rss_end = rss_warm or 1, rss_end or 1
    idle_growth = (rss_end - rss_warm) / rss_warm
    load_growth = (load_late - load_early) / load_early if load_early else float("inf")
    print()
    print(f"RSS idle: at start {rss_start / 1024:.1f} MiB, after the warm-up ({warm_n:,} requests) {rss_warm / 1024:.1f} MiB, "
          f"at the end {rss_end / 1024:.1f} MiB: {idle_growth:+.1%} since the warm-up")
    print(f"RSS under load (median of the first and last {window} s of the main run): "
          f"{load_early / 1024:.1f} MiB -> {load_late / 1024:.1f} MiB: {load_growth:+.1%}; "
          f"max over the soak {rss_max_kb / 1024:.1f} MiB ({len(sampler.samples)} samples, 1 s apart)")
    check(idle_growth < RSS_GROWTH_LIMIT, f"idle RSS grew {idle_growth:+.1%} after the warm-up (limit {RSS_GROWTH_LIMIT:.0%})")
    # Under load, RSS moves with the instances alive at the moment (a membomb
    # holds 16 MiB): compared only over windows of at least 10 samples.
    if window >= 10:
        check(load_growth < RSS_GROWTH_LIMIT, f"RSS under load grew {load_growth:+.1%} over the main run (limit {RSS_GROWTH_LIMIT:.0%})")
    else:
        print(f"(RSS under load not checked: windows of {window} sample(s); a main run of 100 s or more has 10)")

    # --- throughput and the server's end ---------------------------------------
    # Guests' stderr goes to the server's stderr too. A guest's panic message
    # names the thread '<unnamed>'; the server's threads are all named
    # (main, tokio-runtime-worker, guest).
    host_panics = guest_panics = 0
    guest_messages = {}
    for m in re.finditer(r"^thread '([^']*)'.*? panicked at (.*)\n(.*)$", err_text, re.M):
        if m.group(1) == "<unnamed>":
            guest_panics += 1
            what = f"{m.group(2)} {m.group(3)}"
            guest_messages[what] = guest_messages.get(what, 0) + 1
        else:
            host_panics += 1
    panics = host_panics
    print()
    for phase, fig in runs.items():
        lat = fig["latency_us"]
        print(f"{'warm-up' if phase == 'w' else 'main'} run: {fig['requests']:,} responses in {fig['duration_us'] / 1e6:.1f} s, "
              f"{fig['requests'] / (fig['duration_us'] / 1e6):,.0f} req/s; latency p50 {lat['p50'] / 1000:.2f} ms, "
              f"p90 {lat['p90'] / 1000:.2f} ms, p99 {lat['p99'] / 1000:.2f} ms, max {lat['max'] / 1000:.1f} ms")
    print(f"total: {completed:,} responses in {duration_s:.1f} s of load, {completed / duration_s:,.0f} req/s; "
          f"soak wall time {(datetime.datetime.now().astimezone() - started).total_seconds():.0f} s")
    print(f"server: exit code on SIGTERM {server_rc}; stderr {err_text.count(chr(10)):,} lines, "
          f"host panics {host_panics}, guest panic messages {guest_panics}")
    for what, n in sorted(guest_messages.items(), key=lambda kv: -kv[1])[:3]:
        print(f"  guest panic x{n:,}: {what}")
    check(server_rc == 0, f"server exit code {server_rc} on SIGTERM")
    check(panics == 0, f"the server panicked {panics} time(s) (see its stderr)")
    # No guest of this app panics while it runs within its limits; a
    # /time/sleep guest resumed after its deadline finds its response gone
    # and panics writing the body.
    check(guest_panics == 0, f"{guest_panics} guest(s) ran on after their deadline or failed otherwise (panic messages on stderr)")

    summary = {
        "date": started.isoformat(timespec="seconds"),
        "machine": f"{os.cpu_count()} cores, {cpu}, Linux {platform.release()}",
        "binary": args.binary, "requests": args.requests, "mix": args.mix,
        "wrk": f"-t{args.threads} -c{args.connections}", "warmup_requests": warm_n,
        "sent": sent, "received": completed, "records": log["records"], "duplicates": log["duplicates"],
        "lost": log["lost"], "foreign": log["foreign"], "wrong": log["wrong"],
        "sent_by_route": sent_route, "received_by_route": {r: got_route[r] for r in ROUTES},
        "log_by_route": {r: log["per_route"].get(r, {}).get("records", 0) for r in ROUTES},
        "status_by_route": {r: log["per_route"].get(r, {}).get("status", {}) for r in ROUTES},
        "rss_kb": {"start": rss_start, "after_warmup": rss_warm, "end": rss_end, "max": rss_max_kb,
                   "load_early": load_early, "load_late": load_late},
        "rss_samples": [(round(t, 1), r, p, n) for t, r, p, n in sampler.samples],
        "duration_s": duration_s, "req_per_s": completed / duration_s,
        "latency_us": {p: f["latency_us"] for p, f in runs.items()},
        "server_exit": server_rc, "host_panics": host_panics, "guest_panics": guest_panics,
        "wall_us": {KINDS[x][1]: {"p50": pct(w, 50), "p99": pct(w, 99), "max": max(w, default=None)}
                    for x, w in log["walls"].items()},
        "time_records_over_100ms": slept,
        "failures": failures,
    }
    if args.json:
        os.makedirs(os.path.dirname(os.path.abspath(args.json)), exist_ok=True)
        json.dump(summary, open(args.json, "w"), indent=1)
        print(f"figures: {args.json}")
    if args.keep:
        print(f"kept: {work} (access.log, server.err, metrics.txt, wrk-*/)")
    else:
        shutil.rmtree(work, ignore_errors=True)
    print()
    if failures:
        print(f"FAIL: {len(failures)} check(s) failed")
        for f in failures:
            print(f"  - {f}")
        return 1
    print("PASS: every request accounted for exactly once; RSS flat after the warm-up")
    return 0


if __name__ == "__main__":
    sys.exit(main())
