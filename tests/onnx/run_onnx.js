#!/usr/bin/env node
// Runs an ONNX model exported by tools/ffc_onnx.py with onnxruntime-node on the CPU execution
// provider: an independent runtime for checking the export against tools/ffc_nets.py.
//
//   node run_onnx.js MODEL.onnx INPUT.f32 N S OUTPUT.f32
//
// INPUT.f32 holds N*3*S*S little-endian float32 values (the images, NCHW, already normalised),
// fed as the input "input" [N, 3, S, S]; the output "embedding" is written to OUTPUT.f32 as raw
// little-endian float32, row after row. Prints the input and output dimensions. Exit status 0,
// 1 on errors, 2 on usage errors. Install once with `npm install --ignore-scripts` in this folder
// (package-lock.json pins onnxruntime-node; --ignore-scripts skips its install script, which
// downloads GPU binaries: the CPU binaries ship inside the package).

'use strict';

const fs = require('fs');
const path = require('path');

function usage(message) {
  process.stderr.write(`run_onnx: ${message}\n` +
                       'usage: node run_onnx.js MODEL.onnx INPUT.f32 N S OUTPUT.f32\n');
  process.exit(2);
}

function positiveInt(text, name) {
  const v = Number(text);
  if (!Number.isInteger(v) || v < 1) {
    usage(`${name} must be a positive integer, got '${text}'`);
  }
  return v;
}

// Little-endian float32 values of a file, whatever the host's byte order.
function readFloats(file, count) {
  const bytes = fs.readFileSync(file);
  if (bytes.length !== count * 4) {
    throw new Error(`${file} holds ${bytes.length} bytes; N*3*S*S float32 values are ` +
                    `${count * 4} bytes`);
  }
  const out = new Float32Array(count);
  for (let i = 0; i < count; ++i) {
    out[i] = bytes.readFloatLE(4 * i);
  }
  return out;
}

function writeFloats(file, values) {
  const bytes = Buffer.alloc(values.length * 4);
  for (let i = 0; i < values.length; ++i) {
    bytes.writeFloatLE(values[i], 4 * i);
  }
  // Atomically: a temporary file in the same folder, then renamed.
  const tmp = path.join(path.dirname(path.resolve(file)),
                        `.${path.basename(file)}.tmp.${process.pid}`);
  fs.writeFileSync(tmp, bytes);
  fs.renameSync(tmp, file);
}

async function main() {
  const args = process.argv.slice(2);
  if (args.length !== 5) {
    usage(`expected 5 arguments, got ${args.length}`);
  }
  const [model, input, nText, sText, output] = args;
  const n = positiveInt(nText, 'N');
  const s = positiveInt(sText, 'S');
  if (!fs.existsSync(model)) {
    throw new Error(`${model}: no such file (tools/ffc_onnx.py writes one)`);
  }
  let ort;
  try {
    ort = require('onnxruntime-node');
  } catch (e) {
    throw new Error(`cannot load onnxruntime-node (${e.message.split('\n')[0]}); run ` +
                    `\`npm install --ignore-scripts\` in ${__dirname}`);
  }
  const dims = [n, 3, s, s];
  const data = readFloats(input, n * 3 * s * s);
  const session = await ort.InferenceSession.create(model, {executionProviders: ['cpu']});
  if (!session.inputNames.includes('input') || !session.outputNames.includes('embedding')) {
    throw new Error(`${model}: inputs [${session.inputNames}], outputs ` +
                    `[${session.outputNames}]; expected the input "input" and the output ` +
                    '"embedding" (tools/ffc_onnx.py)');
  }
  let results;
  try {
    results = await session.run({input: new ort.Tensor('float32', data, dims)});
  } catch (e) {
    throw new Error(`${model} on input [${dims.join(', ')}]: ${e.message}` +
                    ' (a model exported without --dynamic-batch takes its --batch only)');
  }
  const embedding = results.embedding;
  if (embedding.type !== 'float32') {
    throw new Error(`${model}: the output "embedding" is ${embedding.type}, not float32`);
  }
  writeFloats(output, embedding.data);
  console.log(`run_onnx: ${model}: input [${dims.join(', ')}] -> embedding ` +
              `[${embedding.dims.join(', ')}], wrote ${output}`);
}

main().catch((e) => {
  process.stderr.write(`run_onnx: ${e.message}\n`);
  process.exit(1);
});
