#!/usr/bin/env bash
# Policy evaluation latency and module size: the same policies and inputs,
# in the same run, through
#   compiled:    our OPA-Wasm host on the module `wasmlayer policy build`
#                compiles from the Rego (Wasm code, crates/policy/src/compile);
#   interpreter: our host on the `policy build --interpreter` module (regorus
#                inside the module);
#   native:      regorus natively, in our process (`policy bench` on the .rego);
#   OPA:         our host on OPA's own module (`opa build -t wasm`) of the same
#                source, where one exists (tests/fixtures/policies/opa), with
#                the data given at load time (`-d`); "-" elsewhere;
#   SDK:         OPA's JavaScript SDK (@open-policy-agent/opa-wasm on Node.js)
#                on our compiled module.
# Each engine evaluates the same input COUNT times after up to 1,000 untimed
# evaluations, each evaluation timed alone; the input document is serialised
# once, as the webhook serialises a review once for all its rules (Wasm
# modules, in our host and in the SDK, are given the same JSON text each
# time; regorus the same value), and the result set is read back every
# time. The script fails unless every
# engine gives the same result set (OPA's module serialises sets in its own
# hash order, so its answer is compared with arrays' order ignored). Prints
# p50/p99 per engine, then module sizes and p50 ratios (compiled vs OPA,
# compiled vs interpreter). Writes target/bench/policy.json and
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


FIX="$ROOT/tests/fixtures/policies"
# Case INDEX's input from a fixture's cases.json, written to FILE.
case_input() {
    python3 -c 'import json,sys; json.dump(json.load(open(sys.argv[1]))["cases"][int(sys.argv[2])]["input"], open(sys.argv[3], "w"))' \
        "$1/cases.json" "$2" "$3"
}
# A fixture's sources for `policy build` and native evaluation: its .rego
# files and its data.json, if any.
sources_of() {
    local s
    s=$(ls "$1"/*.rego | tr '\n' ' ')
    [ -f "$1/data.json" ] && s="$s$1/data.json"
    echo "$s"
}
GK="$FIX/build/required-labels"
case_input "$GK" 0 "$WORK/gk-labels-input.json"
GKV0="$FIX/build/gatekeeper-v0-images"
GKV0R="$FIX/build/gatekeeper-v0-resources"
case_input "$GKV0" 7 "$WORK/gk-privileged-input.json"
case_input "$GKV0R" 0 "$WORK/gk-limits-input.json"
OPA="$FIX/opa"
case_input "$OPA/example" 0 "$WORK/opa-example-input.json"
case_input "$OPA/rbac" 0 "$WORK/opa-rbac-admin-input.json"
case_input "$OPA/rbac" 4 "$WORK/opa-rbac-deny-input.json"
case_input "$OPA/multi" 0 "$WORK/opa-multi-input.json"

# name | rego sources (and data) | entrypoint | input | OPA's module | its data | Rego v0
# required-labels: Gatekeeper style (`violation` over input.review), a pod
# missing a label; deny-denied and deny-allowed: every `deny` rule (privileged containers and
# the Wasm RuntimeClass rule) on a pod with two privileged containers, and on
# an allowed pod; simple-allow: a small RBAC rule; gatekeeper-labels: the
# Gatekeeper library's k8srequiredlabels template (fixture build/required-labels,
# its first case: a Namespace missing two labels). The opa-* cases are OPA's
# own compiled sample policies (tests/fixtures/policies/opa, see its README),
# with OPA's module as one more engine: opa-example (`hello`: input against
# data), opa-rbac-admin (the package `app/rbac` for an admin: the sample's
# own test input), opa-rbac-deny (a customer updating a cat: her grants do not
# allow it; OPA writes the set of grants in another order),
# opa-multi (the package prefix `example` of multi-entrypoint sample).
# gk-privileged and gk-limits: policies in the form of Gatekeeper's library,
# in Rego v0 (`--v0-compatible`; fixtures build/gatekeeper-v0-*): privileged
# containers with image exemptions (five containers), and container limits
# (CPU and memory quantities parsed with regex.match, to_number and
# suffix tables; eight containers).
ALL="$K8S/lib.rego $K8S/required_labels.rego $K8S/privileged.rego $K8S/wasm_runtime_class.rego $K8S/data.json"
CASES=(
    "required-labels|$ALL|kubernetes/admission/violation|$WORK/review-labels.json||"
    "deny-denied|$ALL|kubernetes/admission/deny|$WORK/review-privileged.json||"
    "deny-allowed|$ALL|kubernetes/admission/deny|$WORK/review-allowed.json||"
    "simple-allow|$WORK/simple.rego $WORK/simple-data.json|example/allow|$WORK/simple-input.json||"
    "gatekeeper-labels|$(sources_of "$GK")|k8srequiredlabels/violation|$WORK/gk-labels-input.json||"
    "opa-example|$(sources_of "$OPA/example")|example/hello|$WORK/opa-example-input.json|$OPA/example/opa.wasm|$OPA/example/data.json"
    "opa-rbac-admin|$(sources_of "$OPA/rbac")|app/rbac|$WORK/opa-rbac-admin-input.json|$OPA/rbac/opa.wasm|$OPA/rbac/data.json"
    "opa-rbac-deny|$(sources_of "$OPA/rbac")|app/rbac|$WORK/opa-rbac-deny-input.json|$OPA/rbac/opa.wasm|$OPA/rbac/data.json"
    "opa-multi|$(sources_of "$OPA/multi")|example|$WORK/opa-multi-input.json|$OPA/multi/opa.wasm|"
    "gk-privileged|$(sources_of "$GKV0")|k8spspprivileged/violation|$WORK/gk-privileged-input.json|||v0"
    "gk-limits|$(sources_of "$GKV0R")|k8scontainerlimits/violation|$WORK/gk-limits-input.json|||v0"
)

# A command whose messages (regorus's warnings, `built ...`) are shown only
# when it fails.
quiet() {
    "$@" 2>"$WORK/stderr.log" || { cat "$WORK/stderr.log" >&2; exit 1; }
}

echo "p50 / p99 per evaluation, µs"
printf '%-18s | %17s | %17s | %17s | %17s | %17s\n' \
    case "compiled" "interpreter" "native regorus" "OPA's module" "npm SDK"
echo "[" >"$OUT/policy.json"
first=1
for c in "${CASES[@]}"; do
    IFS='|' read -r name sources ep input opa opadata v0 <<<"$c"
    v0=${v0:+--v0-compatible}
    # shellcheck disable=SC2086
    quiet "$W" policy build $v0 $sources -e "$ep" -o "$WORK/$name.wasm"
    # shellcheck disable=SC2086
    quiet "$W" policy build $v0 --interpreter $sources -e "$ep" -o "$WORK/$name-interp.wasm"
    compiled=$("$W" policy bench "$WORK/$name.wasm" -i "$input" -e "$ep" -n "$COUNT" --json)
    interp=$("$W" policy bench "$WORK/$name-interp.wasm" -i "$input" -e "$ep" -n "$COUNT" --json)
    # shellcheck disable=SC2086
    native=$(quiet "$W" policy bench $v0 $sources -i "$input" -e "$ep" -n "$COUNT" --json)
    opa_run=null
    if [ -n "$opa" ]; then
        opa_run=$("$W" policy bench "$opa" ${opadata:+-d "$opadata"} -i "$input" -e "$ep" -n "$COUNT" --json)
    fi
    sdk=$(node "$ROOT/benches/policy-sdk.js" "$WORK/$name.wasm" "$input" "$ep" "$COUNT")
    python3 - "$name" "$ep" "$WORK/$name.wasm" "$WORK/$name-interp.wasm" "$opa" \
        "$compiled" "$interp" "$native" "$opa_run" "$sdk" "$OUT/policy.json" "$first" <<'PY'
import json, os, sys
name, ep, compiled_wasm, interp_wasm, opa_wasm = sys.argv[1:6]
compiled, interp, native, opa, sdk = (json.loads(a) for a in sys.argv[6:11])
ours = {"compiled": compiled, "interpreter": interp, "native": native, "sdk": sdk}
if any(r["result"] != compiled["result"] for r in ours.values()):
    sys.exit(f"error: {name}: engines disagree: " + json.dumps({k: r["result"] for k, r in ours.items()}))

def canon(v):
    """The value with every array sorted: OPA's module writes sets in hash order."""
    if isinstance(v, list):
        return sorted((canon(x) for x in v), key=lambda x: json.dumps(x, sort_keys=True))
    if isinstance(v, dict):
        return {k: canon(x) for k, x in v.items()}
    return v

opa_note = ""
if opa is not None and opa["result"] != compiled["result"]:
    if canon(opa["result"]) != canon(compiled["result"]):
        sys.exit(f"error: {name}: OPA's module disagrees: {opa['result']} / ours {compiled['result']}")
    opa_note = "*"

def cell(r):
    return f"{r['p50_us']:8.2f} {r['p99_us']:8.2f}" if r else f"{'-':>8} {'-':>8}"

print(f"{name:<18} | {cell(compiled)} | {cell(interp)} | {cell(native)} | {cell(opa)}{opa_note or ' '}| {cell(sdk)}")
sizes = {
    "compiled": os.path.getsize(compiled_wasm),
    "interpreter": os.path.getsize(interp_wasm),
    "opa": os.path.getsize(opa_wasm) if opa_wasm else None,
}
for r in (compiled, interp, native, opa, sdk):
    if r:
        r.pop("result", None)
row = {"case": name, "entrypoint": ep, "module_bytes": sizes["compiled"], "sizes": sizes,
       "compiled": compiled, "interpreter": interp, "native": native, "opa": opa, "sdk": sdk,
       "opa_set_order_differs": bool(opa_note)}
with open(sys.argv[11], "a") as f:
    f.write(("" if sys.argv[12] == "1" else ",\n") + json.dumps(row))
PY
    first=0
done
echo "]" >>"$OUT/policy.json"
python3 - "$OUT/policy.json" <<'PY'
import json, sys
rows = json.load(open(sys.argv[1]))
print("(the same result set from every engine in every case"
      + ("; *: OPA's module wrote the same sets in another order)" if any(r["opa_set_order_differs"] for r in rows) else ")"))
print()
kib = lambda b: f"{b / 1024:7.1f}K" if b else f"{'-':>8}"
def ratio(r, k):
    return f"{r[k]['p50_us'] / r['compiled']['p50_us']:8.2f}x" if r[k] else f"{'-':>9}"
print("module size, and p50 of each engine over the compiled module's p50 (> 1: compiled is faster)")
print(f"{'case':<18} | {'compiled':>8} {'interp':>8} {'OPA':>8} | {'OPA':>9} {'interp':>9} {'native':>9} {'SDK':>9}")
for r in rows:
    s = r["sizes"]
    print(f"{r['case']:<18} | {kib(s['compiled'])} {kib(s['interpreter'])} {kib(s['opa'])} | "
          f"{ratio(r, 'opa')} {ratio(r, 'interpreter')} {ratio(r, 'native')} {ratio(r, 'sdk')}")
PY
echo "wrote $OUT/policy.json"
python3 "$ROOT/benches/plot_policy.py" "$OUT/policy.json" "$OUT/policy.png"
