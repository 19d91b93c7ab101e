#!/usr/bin/env node
// Evaluation latency of a policy module through OPA's JavaScript SDK
// (@open-policy-agent/opa-wasm, installed in tests/node), timed the way
// `wasmlayer policy bench` times its engines: the same input evaluated
// COUNT times after up to 1,000 untimed evaluations, each timed alone. As
// there, the input is serialised once: the SDK is given its JSON text as an
// ArrayBuffer (which it copies into the module as it is).
//
//   node benches/policy-sdk.js POLICY.wasm INPUT.json ENTRYPOINT [COUNT] [DATA.json]
//
// Prints one JSON object: {"engine", "count", "load_ms", "p50_us", "p90_us",
// "p99_us", "mean_us", "result"}.
"use strict";

const fs = require("fs");
const path = require("path");
const { loadPolicy } = require(path.join(__dirname, "..", "tests", "node", "node_modules", "@open-policy-agent", "opa-wasm"));

async function main() {
  const [wasmPath, inputPath, entrypoint, countArg, dataPath] = process.argv.slice(2);
  if (!wasmPath || !inputPath || !entrypoint) {
    console.error("usage: node policy-sdk.js POLICY.wasm INPUT.json ENTRYPOINT [COUNT] [DATA.json]");
    process.exit(2);
  }
  const count = Number(countArg || 10000);
  const text = new TextEncoder().encode(JSON.stringify(JSON.parse(fs.readFileSync(inputPath, "utf8"))));
  const input = text.buffer.slice(text.byteOffset, text.byteOffset + text.byteLength);
  const t0 = process.hrtime.bigint();
  // `regex.match` is left to the host by `policy build`; the SDK takes it
  // as a custom builtin (as tests/node/opa-eval.js gives it).
  const customBuiltins = {
    "regex.match": (pattern, value) => new RegExp(pattern, "u").test(value),
  };
  const policy = await loadPolicy(fs.readFileSync(wasmPath), undefined, customBuiltins);
  if (dataPath) policy.setData(JSON.parse(fs.readFileSync(dataPath, "utf8")));
  const loadMs = Number(process.hrtime.bigint() - t0) / 1e6;
  const result = policy.evaluate(input, entrypoint);
  for (let i = 0; i < Math.min(count, 1000); i++) policy.evaluate(input, entrypoint);
  const ns = new Array(count);
  for (let i = 0; i < count; i++) {
    const t = process.hrtime.bigint();
    policy.evaluate(input, entrypoint);
    ns[i] = Number(process.hrtime.bigint() - t);
  }
  ns.sort((a, b) => a - b);
  const pct = (p) => ns[Math.round((ns.length - 1) * p)] / 1000;
  const mean = ns.reduce((a, b) => a + b, 0) / ns.length / 1000;
  console.log(JSON.stringify({
    engine: "opa-wasm-sdk", count, load_ms: loadMs,
    p50_us: pct(0.5), p90_us: pct(0.9), p99_us: pct(0.99), mean_us: mean, result,
  }));
}

main().catch((e) => {
  console.error(`error: ${e && e.message ? e.message : e}`);
  process.exit(1);
});
