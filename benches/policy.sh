#!/usr/bin/env bash
# Policy evaluation latency: the same policies and inputs through our
# OPA-Wasm host (a module built by `wasmlayer policy build`), through the
# Rego interpreter natively (regorus, in our process), and through OPA's
# JavaScript SDK (@open-policy-agent/opa-wasm on Node.js) on the same
# module, in the same run. Each engine evaluates the same input COUNT times
# after up to 1,000 untimed evaluations, each evaluation timed alone; the
# table shows p50/p99 and the ratios. Writes target/bench/policy.json and
# target/bench/policy.png.
#
#   bash benches/policy.sh [COUNT]   (default 20000)
set -euo pipefail
COUNT="${1:-20000}"
. "$(dirname "${BASH_SOURCE[0]}")/common.sh"

K8S="$ROOT/examples/policies/k8s"
REVIEWS="$ROOT/examples/policies/k8s-reviews"

# The webhook's input document: the AdmissionReview with the request also under `review`.
as_input() {
    python3 -c 'import json,sys; r=json.load(open(sys.argv[1])); r["review"]=r["request"]; json.dump(r, sys.stdout)' "$1"
}
as_input "$REVIEWS/denied-missing-labels.json" >"$WORK/review-labels.json"
as_input "$REVIEWS/denied-privileged.json" >"$WORK/review-privileged.json"
as_input "$REVIEWS/allowed-pod.json" >"$WORK/review-allowed.json"

cat >"$WORK/simple.rego" <<'REGO'
package example

default allow := false

allow if {
	input.user in data.admins
	input.action in {"read", "list"}
}
REGO
echo '{"admins": ["alice", "bob"]}' >"$WORK/simple-data.json"
echo '{"user": "alice", "action": "read"}' >"$WORK/simple-input.json"

# name | rego sources | entrypoint | input
# required-labels: Gatekeeper style (`violation` over input.review), a pod
# missing a label; deny-denied and deny-allowed: every `deny` rule (privileged containers and
# the Wasm RuntimeClass rule) on a pod with two privileged containers, and on
# an allowed pod; simple-allow: a small RBAC rule.
ALL="$K8S/lib.rego $K8S/required_labels.rego $K8S/privileged.rego $K8S/wasm_runtime_class.rego $K8S/data.json"
CASES=(
    "required-labels|$ALL|kubernetes/admission/violation|$WORK/review-labels.json"
    "deny-denied|$ALL|kubernetes/admission/deny|$WORK/review-privileged.json"
    "deny-allowed|$ALL|kubernetes/admission/deny|$WORK/review-allowed.json"
    "simple-allow|$WORK/simple.rego $WORK/simple-data.json|example/allow|$WORK/simple-input.json"
)

printf '%-15s %9s | %10s %10s | %10s %10s | %10s %10s | %8s %8s\n' \
    case "module" "wasm p50" "p99" "native p50" "p99" "sdk p50" "p99" "sdk/wasm" "nat/wasm"
echo "[" >"$OUT/policy.json"
first=1
for c in "${CASES[@]}"; do
    IFS='|' read -r name sources ep input <<<"$c"
    # shellcheck disable=SC2086
    "$W" policy build $sources -e "$ep" -o "$WORK/$name.wasm" 2>/dev/null
    size=$(stat -c %s "$WORK/$name.wasm")
    wasm=$("$W" policy bench "$WORK/$name.wasm" -i "$input" -e "$ep" -n "$COUNT" --json)
    # shellcheck disable=SC2086
    native=$("$W" policy bench $sources -i "$input" -e "$ep" -n "$COUNT" --json)
    sdk=$(node "$ROOT/benches/policy-sdk.js" "$WORK/$name.wasm" "$input" "$ep" "$COUNT")
    python3 - "$name" "$size" "$wasm" "$native" "$sdk" "$OUT/policy.json" "$first" <<'PY'
import json, sys
name, size = sys.argv[1], int(sys.argv[2])
wasm, native, sdk = (json.loads(a) for a in sys.argv[3:6])
same = wasm["result"] == native["result"] == sdk["result"]
if not same:
    sys.exit(f"error: {name}: engines disagree: {wasm['result']} / {native['result']} / {sdk['result']}")
print(f"{name:<15} {size/1024:8.0f}K | {wasm['p50_us']:8.2f}µs {wasm['p99_us']:8.2f}µs | "
      f"{native['p50_us']:8.2f}µs {native['p99_us']:8.2f}µs | {sdk['p50_us']:8.2f}µs {sdk['p99_us']:8.2f}µs | "
      f"{sdk['p50_us']/wasm['p50_us']:7.2f}x {native['p50_us']/wasm['p50_us']:7.2f}x")
row = {"case": name, "module_bytes": size, "wasm": wasm, "native": native, "sdk": sdk}
for r in (wasm, native, sdk):
    r.pop("result", None)
with open(sys.argv[6], "a") as f:
    f.write(("" if sys.argv[7] == "1" else ",\n") + json.dumps(row))
PY
    first=0
done
echo "]" >>"$OUT/policy.json"
echo "(same results from all three engines in every case; ratios > 1 mean our Wasm host is faster)"
echo "wrote $OUT/policy.json"
python3 "$ROOT/benches/plot_policy.py" "$OUT/policy.json" "$OUT/policy.png"
