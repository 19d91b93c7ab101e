#!/usr/bin/env bash
# Regenerates crates/cli/startup-order.txt: the functions of `wasmlayer` that
# warm starts of the hello p1, p2 and p3 guests execute, as recorded by
# valgrind's callgrind. Release builds link these first and together when
# lld is available (crates/cli/build.rs), so that the code a start runs lies
# on few pages: most of a start's peak memory is the binary's mapped code.
#
# Run it after changing dependencies (their symbol names change with their
# versions); names it lists that a build no longer has are skipped.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
if ! command -v valgrind >/dev/null; then
    echo "[order] installing valgrind (Debian)"
    sudo=""; [ "$(id -u)" -eq 0 ] || sudo="sudo"
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends valgrind >/dev/null
fi
bash scripts/build-guests.sh rust >/dev/null
bash scripts/build-release.sh
W="$ROOT/target/release/wasmlayer"
WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT
export XDG_CACHE_HOME="$WORK/cache"
unset RUST_BACKTRACE RUST_LOG
outs=()
for g in hello-p1 hello-p2 hello-p3; do
    "$W" run "target/guests/$g.wasm" >/dev/null 2>&1   # fill the compile cache
    valgrind --tool=callgrind --demangle=no --callgrind-out-file="$WORK/$g.out" \
        "$W" run "target/guests/$g.wasm" >/dev/null 2>&1
    outs+=("$WORK/$g.out")
done
nm --defined-only "$W" >"$WORK/nm.txt"
python3 - "$W" "$WORK/nm.txt" "${outs[@]}" >crates/cli/startup-order.txt <<'PY'
import re, sys
from collections import defaultdict
# Functions of the binary, in the order they first ran. callgrind names a
# function by one of the symbols at its address; every symbol there is listed
# (the linker orders by the one the section is named after).
binary, nm, seen, order = sys.argv[1], sys.argv[2], set(), []
at, names = {}, defaultdict(list)
for line in open(nm):
    p = line.split()
    if len(p) == 3 and p[1] in "tTwW":
        at[p[2]] = p[0]
        names[p[0]].append(p[2])
for path in sys.argv[3:]:
    obs, fns, ob = {}, {}, None
    for line in open(path, errors="replace"):
        line = line.rstrip("\n")
        m = re.match(r"^(ob|cob)=\((\d+)\)(?: (.*))?$", line)
        if m:
            kind, i, name = m.groups()
            if name:
                obs[i] = name
            if kind == "ob":
                ob = obs.get(i)
            continue
        # Names are given once, at first use, by fn= or cfn= (a callee).
        m = re.match(r"^(c?fn)=\((\d+)\)(?: (.*))?$", line)
        if m:
            kind, i, name = m.groups()
            if name:
                fns[i] = name
            if kind == "cfn":
                continue
            name = fns.get(i)
            # Only the binary's own symbols (callgrind names code it has no
            # symbol for by its address).
            if ob == binary and name in at and name not in seen:
                for alias in names[at[name]]:
                    if alias not in seen:
                        seen.add(alias)
                        order.append(alias)
                seen.add(name)
print("\n".join(order))
PY
echo "[order] crates/cli/startup-order.txt: $(wc -l <crates/cli/startup-order.txt) functions"
