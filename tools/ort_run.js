#!/usr/bin/env node
// Runs an ONNX model in ONNX Runtime (npm onnxruntime-node) on NPY inputs and writes NPY outputs.
//   node tools/ort_run.js MODEL.onnx --input NAME=x.npy ... --output NAME=y.npy ... [--threads N]
// onnxruntime-node is looked up in $GRAFT_ORT_DIR/node_modules (default ~/.cache/graft-ort),
// where `npm install --ignore-scripts onnxruntime-node` puts it.
'use strict';
const fs = require('fs');
const path = require('path');
const os = require('os');

const ortDir = process.env.GRAFT_ORT_DIR || path.join(os.homedir(), '.cache', 'graft-ort');
const ort = require(path.join(ortDir, 'node_modules', 'onnxruntime-node'));

const TYPES = {'<f4': ['float32', Float32Array], '<i8': ['int64', BigInt64Array]};

function readNpy(file) {
  const b = fs.readFileSync(file);
  if (b.toString('latin1', 0, 6) !== '\x93NUMPY') throw new Error(`${file}: not an .npy file`);
  const major = b[6];
  const headerLen = major === 1 ? b.readUInt16LE(8) : b.readUInt32LE(8);
  const offset = major === 1 ? 10 : 12;
  const header = b.toString('latin1', offset, offset + headerLen);
  const descr = /'descr':\s*'([^']+)'/.exec(header)[1];
  if (/'fortran_order':\s*True/.test(header)) throw new Error(`${file}: Fortran order`);
  const dims = /'shape':\s*\(([^)]*)\)/.exec(header)[1].split(',').map((s) => s.trim()).filter((s) => s).map(Number);
  const [type, Ctor] = TYPES[descr] || (() => { throw new Error(`${file}: dtype ${descr}`); })();
  const data = b.subarray(offset + headerLen);
  const copy = new Uint8Array(data.length);
  copy.set(data);
  return new ort.Tensor(type, new Ctor(copy.buffer), dims);
}

function writeNpy(file, tensor) {
  const descr = {float32: '<f4', int64: '<i8'}[tensor.type];
  if (!descr) throw new Error(`cannot write ${tensor.type}`);
  const shape = tensor.dims.length === 1 ? `${tensor.dims[0]},` : tensor.dims.join(', ');
  let header = `{'descr': '${descr}', 'fortran_order': False, 'shape': (${shape}), }`;
  header += ' '.repeat((64 - ((10 + header.length + 1) % 64)) % 64) + '\n';
  const pre = Buffer.alloc(10);
  pre.write('\x93NUMPY', 0, 'latin1');
  pre[6] = 1;
  pre[7] = 0;
  pre.writeUInt16LE(header.length, 8);
  const body = Buffer.from(tensor.data.buffer, tensor.data.byteOffset, tensor.data.byteLength);
  const tmp = `${file}.tmp${process.pid}`;
  fs.writeFileSync(tmp, Buffer.concat([pre, Buffer.from(header, 'latin1'), body]));
  fs.renameSync(tmp, file);
}

async function main() {
  const args = process.argv.slice(2);
  if (args.length < 1) throw new Error('usage: ort_run.js MODEL.onnx --input NAME=x.npy --output NAME=y.npy [--threads N]');
  const model = args[0];
  const feeds = {};
  const outputs = [];
  let threads = 2;
  for (let i = 1; i < args.length; i += 2) {
    const [name, file] = (args[i + 1] || '').split('=');
    if (args[i] === '--input') feeds[name] = readNpy(file);
    else if (args[i] === '--output') outputs.push([name, file]);
    else if (args[i] === '--threads') threads = Number(args[i + 1]);
    else throw new Error(`unknown argument ${args[i]}`);
  }
  const session = await ort.InferenceSession.create(model, {
    graphOptimizationLevel: 'all', intraOpNumThreads: threads, interOpNumThreads: 1});
  const results = await session.run(feeds);
  for (const [name, file] of outputs) {
    if (!results[name]) throw new Error(`no output '${name}'`);
    writeNpy(file, results[name]);
  }
}

main().catch((e) => { console.error(`ort_run: ${e.message}`); process.exit(1); });
