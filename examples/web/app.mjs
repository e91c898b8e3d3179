// The demo page: frames from a clip, images or the camera -> Deblurrer (../js/strcnn.mjs) on onnxruntime-web ->
// before/after. WebGPU where the browser has it, WebAssembly otherwise (?wasm forces it).
// With ?golden it instead runs the golden sequence (on WebAssembly) and publishes the comparison as window.golden;
// with ?camera&check it runs the camera for a few frames and publishes checks of the stream as window.cameraCheck
// (tests). ?model=NAME runs a shipped model (weights/models.json names them and the default), ?model=URL another
// .onnx (with its .json beside it); ?width=N sets the camera frames' width; ?strength=S (0 to 1) the share of the
// model's correction applied, as the page's slider does.
import { maxAbsDifference } from '../js/golden.mjs';
import { Deblurrer, modelLocation, toRGBA } from '../js/strcnn.mjs';

const params = new URLSearchParams(location.search);
const WEIGHTS = '../../weights/';
const MAX_WIDTH = 480, MAX_FRAMES = Number(params.get('frames') ?? 75), FPS = 25;
const CAMERA_WIDTH = Number(params.get('width') ?? 320);  // camera frames are scaled down to this width
const $ = (id) => document.getElementById(id);
const status = (text) => { $('status').textContent = text; };

// WebGPU needs an adapter, not just the API: a browser without a usable GPU has navigator.gpu but no adapter
const webgpu = !params.has('golden') && !params.has('wasm') && 'gpu' in navigator
  && (await navigator.gpu.requestAdapter().catch(() => null)) !== null;
const BACKEND = webgpu ? 'WebGPU' : 'WebAssembly';
const dist = new URL('./node_modules/onnxruntime-web/dist/', import.meta.url).href;
const ort = await import(`${dist}${webgpu ? 'ort.webgpu.min.mjs' : 'ort.wasm.min.mjs'}`);
ort.env.wasm.wasmPaths = dist;
ort.env.wasm.numThreads = 1;  // threads need cross-origin isolation, which a plain static server does not give

async function load(onnxUrl) {
  const [bytes, sidecar] = await Promise.all([
    fetch(onnxUrl).then((r) => r.arrayBuffer()),
    fetch(onnxUrl.replace(/\.onnx$/, '.json')).then((r) => r.json()),
  ]);
  const options = { executionProviders: [webgpu ? 'webgpu' : 'wasm'] };
  return { deblurrer: await Deblurrer.create(ort, new Uint8Array(bytes), sidecar, options), sidecar };
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

const nextVideoFrame = (video) => new Promise((resolve) => (video.requestVideoFrameCallback
  ? video.requestVideoFrameCallback(resolve) : requestAnimationFrame(resolve)));

let camera = null;  // the running camera: { stop() }

/** Deblur the camera live: the newest camera frame each time the model is free (frames that come meanwhile are
 * not shown), one stream whose recurrent state goes from frame to frame. Shows the output rate and the latency
 * from capture to display, which includes the model's look-ahead of one frame. Stops after `limit` outputs or
 * on stop(); resolves to the frames pushed and the planar outputs. */
async function live(deblurrer, limit = Infinity) {
  const stream = await navigator.mediaDevices.getUserMedia({ video: { width: { ideal: 640 } }, audio: false });
  const video = Object.assign(document.createElement('video'), { srcObject: stream, muted: true, playsInline: true });
  await video.play();
  const scale = Math.min(1, CAMERA_WIDTH / video.videoWidth);
  const [width, height] = [2 * Math.round(video.videoWidth * scale / 2), 2 * Math.round(video.videoHeight * scale / 2)];
  let running = true;
  camera = { stop: () => { running = false; } };
  $('camera').textContent = 'Stop the camera';
  // the frames are kept only for a bounded run (the check); an open-ended one keeps none, so memory stays flat
  const keep = Number.isFinite(limit), inputs = [], outputs = [];
  const waiting = [];  // frames pushed whose output is still to come
  const started = performance.now();
  let count = 0;
  deblurrer.reset();
  try {
    while (running && count < limit) {
      await nextVideoFrame(video);
      const frame = pixels(video, width, height);
      if (keep) inputs.push(frame);
      waiting.push({ frame, at: performance.now() });
      const sharp = await deblurrer.push(frame);
      if (!sharp) continue;
      const { frame: before, at } = waiting.shift();
      count += 1;
      if (keep) outputs.push(sharp);
      show($('before'), before);
      show($('after'), { width, height, rgba: toRGBA(sharp, width, height) });
      const fps = count / ((performance.now() - started) / 1000);
      status(`camera ${width}x${height} on ${BACKEND}: ${count} frames, ${fps.toFixed(2)} fps, latency `
        + `${(performance.now() - at).toFixed(0)} ms (capture to display)`);
    }
  } finally {
    stream.getTracks().forEach((track) => track.stop());
    camera = null;
    $('camera').textContent = 'Use the camera';
  }
  return { inputs, outputs, width, height };
}

/** The checks of a short camera run: frames flow, the output differs from the input, and the state goes from
 * frame to frame (a stream replayed from the first frame gives the same output; one started a frame before the
 * compared frame, so with the same window but a shorter history, does not). */
async function checkCamera(deblurrer, sidecar) {
  const { inputs, outputs, width, height } = await live(deblurrer, Number(params.get('frames') ?? 6));
  const replay = async (frames) => {
    deblurrer.reset();
    const out = [];
    for (const frame of frames) { const sharp = await deblurrer.push(frame); if (sharp) out.push(sharp); }
    return out;
  };
  const differ = (a, b) => a.data.reduce((worst, v, i) => Math.max(worst, Math.abs(v - b.data[i])), 0);
  const k = 2;  // the compared output: input k, with the window of inputs k-1, k, k+1
  const again = await replay(inputs.slice(0, k + 2));
  const later = await replay(inputs.slice(k - 1, k + 2));
  const input = toPlanarLike(inputs[k], outputs[k]);
  return {
    backend: BACKEND, model: sidecar.name, trained: sidecar.trained, width, height, frames: outputs.length,
    changed: differ(outputs[k], input), replayed: differ(outputs[k], again[k]), fresh: differ(outputs[k], later[1]),
  };
}

/** An input frame as planar floats laid out like an output (for comparing the two). */
function toPlanarLike(frame, like) {
  const data = new Float32Array(like.data.length), plane = like.H * like.W;
  for (let y = 0; y < frame.height; y++) {
    for (let x = 0; x < frame.width; x++) {
      for (let c = 0; c < 3; c++) data[c * plane + y * like.W + x] = frame.rgba[4 * (y * frame.width + x) + c] / 255;
    }
  }
  return { data };
}

/** The golden sequence at full and at partial strength against the Python runtime's output: the frame count
 * and the largest difference over both. */
async function golden() {
  const base = '../golden/';
  const manifest = await fetch(base + 'golden.json').then((r) => r.json());
  const { deblurrer } = await load(base + manifest.model);
  const { width, height } = manifest;
  let worst = 0, frames = Infinity;
  for (const [strength, file] of [[1, manifest.expected], [manifest.partial.strength, manifest.partial.expected]]) {
    const expected = new Float32Array(await fetch(base + file).then((r) => r.arrayBuffer()));
    deblurrer.strength = strength;
    const { planar } = await run(deblurrer, imageFrames(manifest.frames.map((f) => base + f)));
    worst = Math.max(worst, maxAbsDifference(planar, expected, width, height));
    frames = Math.min(frames, planar.length);
  }
  status(`golden: ${frames} frames at strengths 1 and ${manifest.partial.strength}, max abs difference from Python ${worst.toExponential(2)}`);
  return { frames, expectedFrames: manifest.frames.length, worst, tolerance: manifest.tolerance };
}

/** The model picker: the shipped models by name (and the ?model= URL when one is given); picking one reloads
 * the page with it. */
function pickModel(manifest, model) {
  const names = Object.hasOwn(manifest.models, model) ? Object.keys(manifest.models) : [...Object.keys(manifest.models), model];
  $('model').replaceChildren(...names.map((name) => new Option(name, name, false, name === model)));
  $('model').onchange = () => {
    params.set('model', $('model').value);
    location.search = params.toString();
  };
}

async function main() {
  if (params.has('golden')) {
    window.golden = await golden().catch((e) => ({ error: String(e) }));
    return;
  }
  const manifest = await fetch(`${WEIGHTS}models.json`).then((r) => r.json());
  const model = params.get('model') ?? manifest.default;
  pickModel(manifest, model);
  const { deblurrer, sidecar } = await load(modelLocation(manifest, model, WEIGHTS));
  const strength = $('strength');
  strength.value = params.get('strength') ?? 1;
  strength.oninput = () => {  // takes effect from the next frame, also mid-clip and on the camera
    deblurrer.strength = Number(strength.value);
    $('strength-value').textContent = Number(strength.value).toFixed(2);
  };
  strength.oninput();
  $('backend').textContent = `running on ${BACKEND}${webgpu ? '' : ' (this browser offers no WebGPU adapter)'}`;
  if (params.has('camera') && params.has('check')) {
    window.cameraCheck = await checkCamera(deblurrer, sidecar).catch((e) => ({ error: String(e) }));
    return;
  }
  status(`model ready (${sidecar.trained ? 'trained' : 'UNTRAINED: random weights, output is not deblurred'}). Pick a clip.`);
  // one stream at a time: the clip and the camera share the Deblurrer and its state
  let busy = false;
  const exclusive = async (task) => {
    if (busy) { status('busy: wait for the clip to finish, or stop the camera'); return; }
    busy = true;
    try { await task(); } finally { busy = false; }
  };
  const go = (frames) => exclusive(() => run(deblurrer, frames).catch((e) => status(`error: ${e.message}`)));
  $('camera').onclick = () => (camera ? camera.stop()
    : exclusive(() => live(deblurrer).catch((e) => status(`camera: ${e.message}`))));
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
