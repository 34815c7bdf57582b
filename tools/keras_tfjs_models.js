// Generates small Keras functional models with TensorFlow.js (an implementation of Keras layer
// semantics independent of graft), random weights and BatchNorm statistics, and writes for each:
//   OUT/NAME/model.json + weights.bin   TF.js layers format (Keras config + weight manifest)
//   OUT/NAME/x.npy                      an input batch, NHWC as Keras takes it
//   OUT/NAME/y.npy                      TensorFlow.js' output for it
// NAME_q8 is the same model with weights quantised to uint8 (TF.js dequantises them on load).
//
//   GRAFT_TFJS_DIR=~/.cache/graft-tfjs node tools/keras_tfjs_models.js OUT
//   … node tools/keras_tfjs_models.js --predict DIR   (DIR/model.json on DIR/x.npy -> DIR/y.npy)
// Needs @tensorflow/tfjs installed under $GRAFT_TFJS_DIR (npm install --ignore-scripts).
'use strict';
const path = require('path');
const fs = require('fs');
const tfDir = process.env.GRAFT_TFJS_DIR || path.join(process.env.HOME, '.cache', 'graft-tfjs');
const tf = require(path.join(tfDir, 'node_modules', '@tensorflow', 'tfjs'));
const L = tf.layers;

const out = process.argv[2];
if (!out) {
  console.error('usage: keras_tfjs_models.js OUT_DIR | --predict DIR');
  process.exit(2);
}

function readNpy(file) {
  const b = fs.readFileSync(file);
  const headerLength = b.readUInt16LE(8);
  const header = b.toString('latin1', 10, 10 + headerLength);
  if (!/'descr': '<f4'/.test(header)) throw new Error(`${file}: expected float32`);
  const shape = header.match(/'shape': \(([^)]*)\)/)[1].split(',').filter((s) => s.trim()).map(Number);
  const start = 10 + headerLength;
  const data = new Float32Array(b.buffer.slice(b.byteOffset + start, b.byteOffset + b.length));
  return tf.tensor(data, shape);
}

async function predict(dir) {
  const json = JSON.parse(fs.readFileSync(path.join(dir, 'model.json')));
  const specs = [];
  const chunks = [];
  for (const g of json.weightsManifest) {
    specs.push(...g.weights);
    for (const p of g.paths) chunks.push(fs.readFileSync(path.join(dir, p)));
  }
  const data = Buffer.concat(chunks);
  const model = await tf.loadLayersModel(tf.io.fromMemory({
    modelTopology: json.modelTopology,
    weightSpecs: specs,
    weightData: data.buffer.slice(data.byteOffset, data.byteOffset + data.byteLength),
  }));
  writeNpy(path.join(dir, 'y.npy'), model.predict(readNpy(path.join(dir, 'x.npy'))));
}

// A deterministic generator, so the fixtures are the same on every run.
let seed = 12345;
function rand() {
  seed = (seed * 1103515245 + 12345) % 2147483648;
  return seed / 2147483648;
}
function randomTensor(shape, lo, hi) {
  const n = shape.reduce((a, b) => a * b, 1);
  const v = new Float32Array(n);
  for (let i = 0; i < n; ++i) v[i] = lo + (hi - lo) * rand();
  return tf.tensor(v, shape);
}

function writeNpy(file, tensor) {
  const shape = tensor.shape;
  const data = Buffer.from(new Float32Array(tensor.dataSync()).buffer);
  let header = `{'descr': '<f4', 'fortran_order': False, 'shape': (${shape.join(', ')}${shape.length === 1 ? ',' : ''}), }`;
  const total = 10 + header.length + 1;
  header += ' '.repeat((64 - (total % 64)) % 64) + '\n';
  const pre = Buffer.alloc(10);
  pre.write('\x93NUMPY', 0, 'latin1');
  pre[6] = 1;
  pre[7] = 0;
  pre.writeUInt16LE(header.length, 8);
  fs.writeFileSync(file, Buffer.concat([pre, Buffer.from(header, 'latin1'), data]));
}

// Every weight random (BatchNorm variances positive), as trained weights would be.
function randomise(model) {
  const weights = model.weights.map((w) => {
    const name = w.originalName || w.name;
    if (/moving_variance/.test(name)) return randomTensor(w.shape, 0.5, 1.5);
    if (/gamma/.test(name)) return randomTensor(w.shape, 0.5, 1.5);
    return randomTensor(w.shape, -0.5, 0.5);
  });
  model.setWeights(weights);
}

function quantise(specs, data) {
  const f = new Float32Array(data);
  const qspecs = [];
  const chunks = [];
  let offset = 0;
  for (const s of specs) {
    const n = s.shape.reduce((a, b) => a * b, 1);
    const v = f.subarray(offset, offset + n);
    offset += n;
    let lo = Infinity;
    let hi = -Infinity;
    for (const x of v) {
      lo = Math.min(lo, x);
      hi = Math.max(hi, x);
    }
    const scale = hi > lo ? (hi - lo) / 255 : 1;
    const q = new Uint8Array(n);
    for (let i = 0; i < n; ++i) q[i] = Math.round((v[i] - lo) / scale);
    chunks.push(Buffer.from(q.buffer));
    qspecs.push({...s, quantization: {dtype: 'uint8', scale, min: lo}});
  }
  return {specs: qspecs, data: Buffer.concat(chunks)};
}

async function save(model, name, inputShape) {
  let artifacts;
  await model.save(tf.io.withSaveHandler(async (a) => {
    artifacts = a;
    return {modelArtifactsInfo: {dateSaved: new Date(), modelTopologyType: 'JSON'}};
  }));
  const x = randomTensor([2, ...inputShape], -1, 1);
  const variants = [[name, artifacts.weightSpecs, Buffer.from(artifacts.weightData)]];
  const q = quantise(artifacts.weightSpecs, artifacts.weightData);
  variants.push([name + '_q8', q.specs, q.data]);
  for (const [vname, specs, data] of variants) {
    const dir = path.join(out, vname);
    fs.mkdirSync(dir, {recursive: true});
    const json = {
      format: 'layers-model',
      generatedBy: 'graft tools/keras_tfjs_models.js',
      modelTopology: artifacts.modelTopology,
      weightsManifest: [{paths: ['weights.bin'], weights: specs}],
    };
    fs.writeFileSync(path.join(dir, 'model.json'), JSON.stringify(json));
    fs.writeFileSync(path.join(dir, 'weights.bin'), data);
    // TF.js' own reading of exactly these files gives the expected output.
    const loaded = await tf.loadLayersModel(tf.io.fromMemory({
      modelTopology: artifacts.modelTopology,
      weightSpecs: specs,
      weightData: data.buffer.slice(data.byteOffset, data.byteOffset + data.byteLength),
    }));
    writeNpy(path.join(dir, 'x.npy'), x);
    writeNpy(path.join(dir, 'y.npy'), loaded.predict(x));
  }
}

const models = {
  // Convolutions: same padding at odd sizes and strides, dilation, depth multipliers,
  // separable and transposed convolutions, BatchNorm with trained statistics.
  conv: () => {
    const x = tf.input({shape: [13, 11, 3]});
    let y = L.conv2d({filters: 8, kernelSize: 3, strides: 2, padding: 'same', activation: 'relu'}).apply(x);
    y = L.depthwiseConv2d({kernelSize: [3, 2], depthMultiplier: 2, padding: 'same', useBias: true}).apply(y);
    y = L.batchNormalization({epsilon: 0.01}).apply(y);
    y = L.reLU({maxValue: 6}).apply(y);
    y = L.separableConv2d({filters: 6, kernelSize: 3, padding: 'same', strides: 2,
                           activation: 'elu'}).apply(y);
    y = L.conv2dTranspose({filters: 4, kernelSize: 3, strides: 2, padding: 'same'}).apply(y);
    y = L.conv2d({filters: 5, kernelSize: 3, dilationRate: 2, padding: 'same', activation: 'sigmoid'}).apply(y);
    y = L.conv2dTranspose({filters: 3, kernelSize: [3, 2], strides: [2, 1], padding: 'valid'}).apply(y);
    y = L.conv2d({filters: 4, kernelSize: [2, 3], strides: [3, 2], padding: 'valid', useBias: false}).apply(y);
    y = L.globalAveragePooling2d({}).apply(y);
    y = L.dense({units: 5, activation: 'softmax'}).apply(y);
    return [tf.model({inputs: x, outputs: y}), [13, 11, 3]];
  },
  // Pooling with same padding (the average excludes the padding), padding, cropping,
  // upsampling, Flatten -> Dense in channels-last order.
  pool: () => {
    const x = tf.input({shape: [15, 14, 4]});
    const a = L.maxPooling2d({poolSize: 3, strides: 2, padding: 'same'}).apply(x);
    const b = L.averagePooling2d({poolSize: 3, strides: 2, padding: 'same'}).apply(x);
    const c = L.averagePooling2d({poolSize: [2, 3], strides: [2, 2], padding: 'valid'}).apply(x);
    let y = L.concatenate({}).apply([a, b]);
    y = L.zeroPadding2d({padding: [[1, 2], [0, 1]]}).apply(y);
    y = L.cropping2D({cropping: [[0, 1], [2, 0]]}).apply(y);
    y = L.upSampling2d({size: [2, 1]}).apply(y);
    y = L.conv2d({filters: 3, kernelSize: 1}).apply(y);
    y = L.flatten().apply(y);
    const z = L.flatten().apply(L.maxPooling2d({poolSize: 2, padding: 'valid'}).apply(c));
    y = L.concatenate({}).apply([y, z]);
    y = L.dense({units: 7, activation: 'tanh'}).apply(y);
    return [tf.model({inputs: x, outputs: y}), [15, 14, 4]];
  },
  // Merges and activations.
  merge: () => {
    const x = tf.input({shape: [9, 7, 4]});
    const a = L.conv2d({filters: 4, kernelSize: 3, padding: 'same', activation: 'swish'}).apply(x);
    const b = L.conv2d({filters: 4, kernelSize: 1, activation: 'hardSigmoid'}).apply(x);
    const c = L.conv2d({filters: 4, kernelSize: 3, padding: 'same', activation: 'gelu'}).apply(x);
    let y = L.add().apply([a, b, c]);
    const m = L.multiply().apply([a, b]);
    const v = L.average().apply([b, c, m]);
    const mx = L.maximum().apply([a, c]);
    const mn = L.minimum().apply([b, v]);
    y = L.concatenate({axis: -1}).apply([y, m, v, mx, mn]);
    y = L.leakyReLU({alpha: 0.1}).apply(y);
    y = L.prelu({sharedAxes: [1, 2]}).apply(y);
    y = L.conv2d({filters: 6, kernelSize: 1, activation: 'tanh'}).apply(y);
    y = L.prelu({}).apply(y);
    y = L.elu({}).apply(y);
    y = L.activation({activation: 'relu6'}).apply(y);
    y = L.concatenate({axis: 1}).apply([y, L.activation({activation: 'sigmoid'}).apply(y)]);
    y = L.concatenate({axis: 2}).apply([y, y]);
    y = L.softmax({axis: -1}).apply(y);
    return [tf.model({inputs: x, outputs: y}), [9, 7, 4]];
  },
  // Permute, Reshape, Dense on N-D input (channels last), LayerNormalization, Rescaling,
  // Dense on an image, GlobalMaxPooling2D.
  reshape: () => {
    const x = tf.input({shape: [6, 5, 3]});
    let y = L.rescaling({scale: 0.5, offset: 0.25}).apply(x);
    y = L.dense({units: 4, activation: 'relu'}).apply(y);
    y = L.permute({dims: [2, 1, 3]}).apply(y);
    y = L.reshape({targetShape: [15, 8]}).apply(y);
    y = L.dense({units: 6}).apply(y);
    y = L.layerNormalization({epsilon: 1e-3}).apply(y);
    y = L.reshape({targetShape: [3, 5, 6]}).apply(y);
    y = L.layerNormalization({}).apply(y);
    y = L.conv2d({filters: 4, kernelSize: 2}).apply(y);
    y = L.permute({dims: [3, 1, 2]}).apply(y);
    y = L.globalMaxPooling2d({}).apply(y);
    y = L.dense({units: 3}).apply(y);
    return [tf.model({inputs: x, outputs: y}), [6, 5, 3]];
  },
  // A functional model used as a layer inside another (the usual transfer-learning save).
  nested: () => {
    const ix = tf.input({shape: [10, 10, 3]});
    let iy = L.conv2d({filters: 6, kernelSize: 3, strides: 2, padding: 'same', name: 'base_conv'}).apply(ix);
    iy = L.batchNormalization({name: 'base_bn'}).apply(iy);
    iy = L.activation({activation: 'relu', name: 'base_relu'}).apply(iy);
    const base = tf.model({inputs: ix, outputs: iy, name: 'base'});
    const x = tf.input({shape: [10, 10, 3]});
    let y = base.apply(x);
    y = L.globalAveragePooling2d({}).apply(y);
    y = L.dropout({rate: 0.3}).apply(y);
    y = L.dense({units: 4, activation: 'softmax', name: 'head'}).apply(y);
    return [tf.model({inputs: x, outputs: y}), [10, 10, 3]];
  },
  // The same kind of base model inside a Sequential.
  nested_sequential: () => {
    const ix = tf.input({shape: [8, 9, 2]});
    let iy = L.conv2d({filters: 5, kernelSize: 3, padding: 'same', name: 'inner_conv'}).apply(ix);
    iy = L.batchNormalization({name: 'inner_bn'}).apply(iy);
    const base = tf.model({inputs: ix, outputs: iy, name: 'inner'});
    const model = tf.sequential({layers: [
      L.inputLayer({inputShape: [8, 9, 2]}), base, L.flatten(), L.dense({units: 3}),
    ]});
    return [model, [8, 9, 2]];
  },
};

(async () => {
  if (out === '--predict') {
    await predict(process.argv[3]);
    return;
  }
  for (const [name, make] of Object.entries(models)) {
    const [model, shape] = make();
    randomise(model);
    await save(model, name, shape);
  }
  console.log(`wrote ${Object.keys(models).length * 2} models to ${out}`);
})().catch((e) => {
  console.error(e);
  process.exit(1);
});
