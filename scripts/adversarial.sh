#!/usr/bin/env bash
# The adversarial suite: hostile guests (`run`), hostile HTTP clients
# (`serve`, `policy webhook`) and malformed input (modules, components,
# .cwasm, manifests, capability files, policies, bundles, AdmissionReviews),
# each case with a deadline, judged on crashes, hangs, escapes and the
# clarity of the error. Prints a table of every case and exits non-zero if
# any fails.
#
#   bash scripts/adversarial.sh            # every case (70; about 1.5 minutes after the build)
#   bash scripts/adversarial.sh --short    # a representative subset (44), for CI (under a minute)
#   bash scripts/adversarial.sh -k serve   # only cases whose category or name contains `serve`
#
# Builds target/debug/wasmlayer (cargo build --workspace --bins) and the Rust
# example guests (scripts/build-guests.sh rust) first when they are out of
# date; the driver is scripts/adversarial.py (Python 3, standard library).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

for tool in cargo python3 openssl; do
    command -v "$tool" >/dev/null 2>&1 || { echo "error: $tool not found in PATH (scripts/setup.sh installs what is needed)" >&2; exit 1; }
done

started=$(date +%s)
echo "[adversarial] building target/debug/wasmlayer (cargo build --workspace --bins: the feature set the tests build with)"
cargo build --workspace --bins
echo "[adversarial] building the example guests (scripts/build-guests.sh rust)"
bash scripts/build-guests.sh rust
built=$(date +%s)
echo "[adversarial] build steps took $((built - started))s"

status=0
python3 scripts/adversarial.py "$@" || status=$?
echo "[adversarial] suite took $(($(date +%s) - built))s"
exit "$status"
