#!/usr/bin/env node
// Evaluates a policy module with OPA's JavaScript SDK (@open-policy-agent/opa-wasm),
// so tests can compare its results with other evaluators.
//
//   node opa-eval.js POLICY.wasm CASES.json
//
// CASES.json: {"data": <object, optional>, "abi_minor": <number, optional>,
//   "cases": [{"entrypoint": "example/allow", "input": <any, optional>}, ...]}
// Prints one JSON line describing the module, {"entrypoints": {...},
// "builtins": [...]}, then one line per case, in order: {"result": <OPA
// result set>} or {"error": "<message>"}.
"use strict";

const fs = require("fs");
const { loadPolicy } = require("@open-policy-agent/opa-wasm");

function message(e) {
  if (e instanceof Error) return e.message;
  if (typeof e === "string") return e;
  if (e && typeof e.message === "string") return e.message;
  return JSON.stringify(e);
}

// Rego print() output goes to the host's console.log; keep stdout for results.
const out = (line) => process.stdout.write(line + "\n");
console.log = (...args) => console.error(...args);

async function main() {
  const [wasmPath, casesPath] = process.argv.slice(2);
  if (!wasmPath || !casesPath) {
    console.error("usage: node opa-eval.js POLICY.wasm CASES.json");
    process.exit(2);
  }
  const bytes = fs.readFileSync(wasmPath);
  const spec = JSON.parse(fs.readFileSync(casesPath, "utf8"));
  // Builtins a module may ask its host for that the SDK does not provide
  // itself, passed as custom builtins the way an SDK user passes them:
  // `policy build` leaves `regex.*` to the host (docs/policy.md).
  const customBuiltins = {
    "regex.match": (pattern, value) => new RegExp(pattern, "u").test(value),
  };
  const policy = await loadPolicy(bytes, undefined, customBuiltins);
  const exports = policy.wasmInstance.exports;
  const builtinsAddr = exports.builtins();
  const dumped = exports.opa_json_dump(builtinsAddr);
  const mem = new Uint8Array(policy.mem.buffer);
  let end = dumped;
  while (mem[end] !== 0) end++;
  const builtins = Object.keys(JSON.parse(Buffer.from(mem.subarray(dumped, end)).toString("utf8")));
  out(JSON.stringify({ entrypoints: policy.entrypoints, builtins }));

  // ABI minor version 1 makes the SDK evaluate through the context API
  // (opa_eval_ctx_*, eval) instead of 1.2's one-call opa_eval.
  if (spec.abi_minor !== undefined) policy.minorVersion = spec.abi_minor;
  if (spec.data !== undefined && spec.data !== null) policy.setData(spec.data);
  for (const c of spec.cases || []) {
    try {
      const result = Object.prototype.hasOwnProperty.call(c, "input")
        ? policy.evaluate(c.input, c.entrypoint)
        : policy.evaluate(undefined, c.entrypoint);
      out(JSON.stringify({ result }));
    } catch (e) {
      out(JSON.stringify({ error: message(e) }));
    }
  }
}

main().catch((e) => {
  console.error(`opa-eval: ${message(e)}`);
  process.exit(1);
});
