#!/usr/bin/env bash
# Soak of `wasmlayer serve`: REQUESTS requests (default 1,000,000) with wrk
# through benches/soak/app.toml, a good route (http-hello, 200) and hostile
# ones on http-hostile (out of fuel 500, past a 20 ms timeout 504, a trap
# 500, over its memory limit 500), 85 % good and 15 % hostile, every route
# with fuel, timeout and memory limits, metering, the access log and the
# metrics on. Each request carries a unique id (`?id=`), and the access log,
# the metrics and what wrk sent and received are matched per request and per
# route; the server's VmRSS is sampled every second and must stay flat after
# a warm-up (10 % of the requests). Exits 1 when a check fails.
#
#   bash benches/soak.sh [REQUESTS]
#
# Environment:
#   WASMLAYER    the binary (default: target/release/wasmlayer, built or
#                updated first by scripts/build-release.sh; when set, used as is)
#   THREADS      wrk threads (default 2)
#   CONNECTIONS  wrk connections (default 32)
#   SOAK_MIX     requests per 100 by kind (default o:85,f:4,t:4,m:3,s:3,l:1;
#                o good, f out of fuel, t trap, m memory, s sleep and l loop past the timeout)
#   KEEP=1       keep the work directory (access log, server stderr, metrics)
#
# Writes target/bench/soak.json. Installs wrk (Debian package) if missing.
set -euo pipefail
REQUESTS="${1:-1000000}"
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

if ! command -v wrk >/dev/null 2>&1; then
    SUDO=""
    [ "$(id -u)" = 0 ] || SUDO=sudo
    echo "[soak] installing wrk" >&2
    $SUDO apt-get install -y wrk >&2 || { $SUDO apt-get update >&2 && $SUDO apt-get install -y wrk >&2; }
fi

if [ -z "${WASMLAYER:-}" ]; then
    bash scripts/build-release.sh >&2
    WASMLAYER="$ROOT/target/release/wasmlayer"
fi
[ -x "$WASMLAYER" ] || { echo "error: $WASMLAYER is not an executable" >&2; exit 2; }
WASMLAYER="$(cd "$(dirname "$WASMLAYER")" && pwd)/$(basename "$WASMLAYER")"

bash scripts/build-guests.sh rust >/dev/null
for g in http-hello.wasm http-hostile.wasm; do
    [ -f "target/guests/$g" ] || { echo "error: target/guests/$g missing after scripts/build-guests.sh" >&2; exit 2; }
done

KEEP_FLAG=()
[ -z "${KEEP:-}" ] || KEEP_FLAG=(--keep)
exec python3 "$ROOT/benches/soak.py" "$REQUESTS" \
    --binary "$WASMLAYER" \
    --manifest "$ROOT/benches/soak/app.toml" \
    --lua "$ROOT/benches/soak.lua" \
    --threads "${THREADS:-2}" \
    --connections "${CONNECTIONS:-32}" \
    --mix "${SOAK_MIX:-o:85,f:4,t:4,m:3,s:3,l:1}" \
    --json "$ROOT/target/bench/soak.json" \
    "${KEEP_FLAG[@]}"
