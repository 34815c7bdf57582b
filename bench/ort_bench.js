#!/usr/bin/env node
// ONNX Runtime (npm onnxruntime-node) latency on one ONNX file, for bench/compare.sh:
//   node bench/ort_bench.js MODEL.onnx --batch N --threads T --runs R --warmup W
// All graph optimisations on, T intra-op threads, sequential execution. Prints one JSON line
// with median_ms, p90_ms, p99_ms, images_per_s. onnxruntime-node is looked up in
// $GRAFT_ORT_DIR/node_modules (default ~/.cache/graft-ort).
'use strict';
const path = require('path');
const os = require('os');
const ortDir = process.env.GRAFT_ORT_DIR || path.join(os.homedir(), '.cache', 'graft-ort');
const ort = require(path.join(ortDir, 'node_modules', 'onnxruntime-node'));

function arg(name, fallback) {
  const i = process.argv.indexOf(name);
  return i > 0 ? Number(process.argv[i + 1]) : fallback;
}

async function main() {
  const model = process.argv[2];
  const batch = arg('--batch', 1), threads = arg('--threads', 2), runs = arg('--runs', 50), warmup = arg('--warmup', 5);
  const session = await ort.InferenceSession.create(model, {
    graphOptimizationLevel: 'all', intraOpNumThreads: threads, interOpNumThreads: 1, executionMode: 'sequential',
  });
  const feeds = {};
  for (const name of session.inputNames) {
    const meta = session.inputMetadata ? session.inputMetadata.find((m) => m.name === name) : null;
    let dims = meta && meta.shape ? meta.shape.map((d, i) => (typeof d === 'number' && d > 0 ? d : i === 0 ? batch : NaN)) : null;
    if (!dims || dims.some((d) => Number.isNaN(d))) throw new Error(`${model}: cannot tell the shape of input ${name}`);
    dims[0] = batch;
    const n = dims.reduce((a, b) => a * b, 1);
    const data = new Float32Array(n);
    for (let i = 0; i < n; ++i) data[i] = Math.random();
    feeds[name] = new ort.Tensor('float32', data, dims);
  }
  for (let i = 0; i < warmup; ++i) await session.run(feeds);
  const ms = [];
  for (let i = 0; i < runs; ++i) {
    const t0 = process.hrtime.bigint();
    await session.run(feeds);
    ms.push(Number(process.hrtime.bigint() - t0) / 1e6);
  }
  ms.sort((a, b) => a - b);
  const pct = (q) => {
    const pos = q * (ms.length - 1), lo = Math.floor(pos), hi = Math.min(lo + 1, ms.length - 1);
    return ms[lo] + (pos - lo) * (ms[hi] - ms[lo]);
  };
  const median = pct(0.5);
  console.log(JSON.stringify({engine: 'onnxruntime', version: ort.env.versions ? ort.env.versions.common : '', model, batch,
                              threads, median_ms: median, p90_ms: pct(0.9), p99_ms: pct(0.99),
                              images_per_s: (1000 * batch) / median}));
}
main().catch((e) => { console.error(`ort_bench: ${e.message}`); process.exit(1); });
