// npm test: the golden sequence through onnxruntime-node equals what the Python runtime returned (1e-4), at full
// and at partial strength, and the shipped models load by name.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { maxAbsDifference } from '../js/golden.mjs';
import { deblurFrames, loadDeblurrer } from './deblur.mjs';

const golden = path.join(path.dirname(fileURLToPath(import.meta.url)), '..', 'golden');
const manifest = JSON.parse(fs.readFileSync(path.join(golden, 'golden.json'), 'utf8'));
const { width, height } = manifest;

const deblurrer = await loadDeblurrer(path.join(golden, manifest.model));
for (const [strength, file] of [[1, manifest.expected], [manifest.partial.strength, manifest.partial.expected]]) {
  const buffer = fs.readFileSync(path.join(golden, file));
  const expected = new Float32Array(buffer.buffer, buffer.byteOffset, buffer.length / 4);
  deblurrer.strength = strength;
  const sharp = await deblurFrames(deblurrer, manifest.frames.map((f) => path.join(golden, f)));
  assert.equal(sharp.length, manifest.frames.length, 'one output per input frame');
  const worst = maxAbsDifference(sharp, expected, width, height);
  console.log(`onnxruntime-node vs Python on ${sharp.length} golden frames ${width}x${height} at strength ${strength}: `
    + `max abs difference ${worst.toExponential(2)}`);
  assert.ok(worst <= manifest.tolerance, `strength ${strength}: max abs difference ${worst} > ${manifest.tolerance}`);
}
for (const [name, width] of [['full', 64], ['fast', 32]]) {
  const deblurrer = await loadDeblurrer(name);
  assert.deepEqual(deblurrer.channels, [width / 2, width], `${name} is the width-${width} network`);
  const out = await deblurFrames(deblurrer, manifest.frames.map((f) => path.join(golden, f)));
  assert.equal(out.length, manifest.frames.length, `${name}: one output per input frame`);
  console.log(`${name} by name: ${out.length} frames`);
}
