// The demo page: frames from a clip or images -> Deblurrer (../js/strcnn.mjs) on onnxruntime-web -> before/after.
// With ?golden it instead runs the golden sequence and publishes the comparison as window.golden (for tests).
import * as ort from './node_modules/onnxruntime-web/dist/ort.wasm.min.mjs';
import { maxAbsDifference } from '../js/golden.mjs';
import { Deblurrer, toRGBA } from '../js/strcnn.mjs';

ort.env.wasm.wasmPaths = new URL('./node_modules/onnxruntime-web/dist/', import.meta.url).href;
ort.env.wasm.numThreads = 1;  // threads need cross-origin isolation, which a plain static server does not give

const params = new URLSearchParams(location.search);
const MAX_WIDTH = 480, MAX_FRAMES = Number(params.get('frames') ?? 75), FPS = 25;
const $ = (id) => document.getElementById(id);
const status = (text) => { $('status').textContent = text; };

async function load(onnxUrl) {
  const [bytes, sidecar] = await Promise.all([
    fetch(onnxUrl).then((r) => r.arrayBuffer()),
    fetch(onnxUrl.replace(/\.onnx$/, '.json')).then((r) => r.json()),
  ]);
  return { deblurrer: await Deblurrer.create(ort, new Uint8Array(bytes), sidecar), sidecar };
}

function pixels(source, width, height) {
  const canvas = new OffscreenCanvas(width, height);
  const context = canvas.getContext('2d', { willReadFrequently: true });
  context.drawImage(source, 0, 0, width, height);
  return { width, height, rgba: context.getImageData(0, 0, width, height).data };
}

async function* videoFrames(url) {
  const video = Object.assign(document.createElement('video'), { src: url, muted: true, preload: 'auto' });
  await new Promise((resolve, reject) => { video.onloadeddata = resolve; video.onerror = () => reject(new Error('cannot decode this video')); });
  const scale = Math.min(1, MAX_WIDTH / video.videoWidth);
  const [width, height] = [Math.round(video.videoWidth * scale), Math.round(video.videoHeight * scale)];
  const count = Math.min(MAX_FRAMES, Math.floor(video.duration * FPS));
  for (let i = 0; i < count; i++) {
    video.currentTime = (i + 0.5) / FPS;
    await new Promise((resolve) => { video.onseeked = resolve; });
    yield pixels(video, width, height);
  }
}

async function* imageFrames(urls) {
  for (const url of urls) {
    const image = await createImageBitmap(await fetch(url).then((r) => r.blob()),
      { colorSpaceConversion: 'none', premultiplyAlpha: 'none' });
    const scale = Math.min(1, MAX_WIDTH / image.width);
    yield pixels(image, Math.round(image.width * scale), Math.round(image.height * scale));
  }
}

function show(canvas, frame) {
  canvas.width = frame.width;
  canvas.height = frame.height;
  canvas.getContext('2d').putImageData(new ImageData(new Uint8ClampedArray(frame.rgba), frame.width, frame.height), 0, 0);
}

/** Deblur a frame source, showing progress; returns {before, after} frame lists and the planar outputs. */
async function run(deblurrer, frames) {
  const before = [], after = [], planar = [];
  const started = performance.now();
  const emit = (sharp) => {
    planar.push(sharp);
    after.push({ width: sharp.width, height: sharp.height, rgba: toRGBA(sharp, sharp.width, sharp.height) });
    show($('before'), before[after.length - 1]);
    show($('after'), after[after.length - 1]);
    status(`frame ${after.length}: ${(after.length / ((performance.now() - started) / 1000)).toFixed(2)} fps`);
  };
  deblurrer.reset();
  for await (const frame of frames) {
    before.push(frame);
    const sharp = await deblurrer.push(frame);
    if (sharp) emit(sharp);
  }
  for (const sharp of await deblurrer.flush()) emit(sharp);
  const scrub = $('scrub');
  Object.assign(scrub, { max: after.length - 1, value: after.length - 1, disabled: false });
  scrub.oninput = () => { show($('before'), before[scrub.value]); show($('after'), after[scrub.value]); };
  return { before, after, planar };
}

async function golden() {
  const base = '../golden/';
  const manifest = await fetch(base + 'golden.json').then((r) => r.json());
  const { deblurrer } = await load(base + manifest.model);
  const expected = new Float32Array(await fetch(base + manifest.expected).then((r) => r.arrayBuffer()));
  const { planar } = await run(deblurrer, imageFrames(manifest.frames.map((f) => base + f)));
  const { width, height } = manifest;
  const worst = maxAbsDifference(planar, expected, width, height);
  status(`golden: ${planar.length} frames, max abs difference from Python ${worst.toExponential(2)}`);
  return { frames: planar.length, expectedFrames: manifest.frames.length, worst, tolerance: manifest.tolerance };
}

async function main() {
  if (params.has('golden')) {
    window.golden = await golden().catch((e) => ({ error: String(e) }));
    return;
  }
  const { deblurrer, sidecar } = await load('../../weights/strcnn_dtb.onnx');
  status(`model ready (${sidecar.trained ? 'trained' : 'UNTRAINED: random weights, output is not deblurred'}). Pick a clip.`);
  const go = (frames) => run(deblurrer, frames).catch((e) => status(`error: ${e.message}`));
  $('sample').onclick = () => go(videoFrames('../sample.mp4'));
  $('pick').onchange = (event) => {
    const files = [...event.target.files].sort((a, b) => a.name.localeCompare(b.name));
    if (files.length === 1 && files[0].type.startsWith('video/')) go(videoFrames(URL.createObjectURL(files[0])));
    else go(imageFrames(files.map((f) => URL.createObjectURL(f))));
  };
  if (params.has('sample')) await go(videoFrames('../sample.mp4'));
  window.ready = true;
}

main();
