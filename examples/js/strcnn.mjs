// STRCNN+DTB in JavaScript: the strcnn-onnx contract streamed frame by frame with the recurrent state passed
// explicitly from step to step. Works with onnxruntime-node and onnxruntime-web alike: pass in the `ort`
// module. Frames are {width, height, rgba} (Uint8Array or Uint8ClampedArray, as canvases and PNG decoders give).

/** The .onnx that `model` names: a shipped model's name (a key of the `models` of weights/models.json, e.g. full
 * or fast) becomes its fp32 file under `weights` (a path or URL ending in /); anything else is the model's own. */
export function modelLocation(manifest, model, weights) {
  const entry = Object.hasOwn(manifest.models, model) ? manifest.models[model] : null;
  return entry ? `${weights}${entry.file}` : model;
}

/** Planar float32 RGB [3, H', W'] in [0, 1] from RGBA bytes, padded by reflection to multiples of `multiple`. */
export function toPlanar({ width, height, rgba }, multiple) {
  const H = height + ((multiple - (height % multiple)) % multiple);
  const W = width + ((multiple - (width % multiple)) % multiple);
  const reflect = (i, n) => (i < n ? i : n > 1 ? 2 * (n - 1) - i : 0);
  const out = new Float32Array(3 * H * W);
  for (let y = 0; y < H; y++) {
    const sy = reflect(y, height);
    for (let x = 0; x < W; x++) {
      const s = 4 * (sy * width + reflect(x, width));
      const d = y * W + x;
      out[d] = rgba[s] / 255;
      out[H * W + d] = rgba[s + 1] / 255;
      out[2 * H * W + d] = rgba[s + 2] / 255;
    }
  }
  return { data: out, H, W };
}

/** RGBA bytes (rounded) of a float [3, H', W'] plane set, cropped to width x height. */
export function toRGBA({ data, H, W }, width, height) {
  const out = new Uint8ClampedArray(4 * width * height);
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) {
      const s = y * W + x, d = 4 * (y * width + x);
      out[d] = Math.round(data[s] * 255);
      out[d + 1] = Math.round(data[H * W + s] * 255);
      out[d + 2] = Math.round(data[2 * H * W + s] * 255);
      out[d + 3] = 255;
    }
  }
  return out;
}

/** A strength of correction (0: the input unchanged, 1: the model's output), checked. */
export function checkStrength(strength) {
  if (typeof strength !== 'number' || !(strength >= 0 && strength <= 1)) {
    throw new Error(`strength must be a number from 0 (the input unchanged) to 1 (the model's full correction), got ${strength}`);
  }
  return strength;
}

/** One stream: push(frame) resolves to the sharp frame m frames behind (null at first); flush() to the rest.
 * `strength` (0 to 1, default 1) is how much of the model's correction each output takes: input + strength *
 * (model output - input), as in the Python package; it may change between frames. */
export class Deblurrer {
  static async create(ort, modelBytes, sidecar, options = {}) {
    if (sidecar.format !== 'strcnn-onnx/1') throw new Error(`not a strcnn-onnx/1 sidecar: ${sidecar.format}`);
    return new Deblurrer(ort, await ort.InferenceSession.create(modelBytes, options), sidecar);
  }

  constructor(ort, session, sidecar) {
    this.ort = ort;
    this.session = session;
    this.m = sidecar.m;
    this.channels = [sidecar.width / 2, sidecar.width];
    this.multiple = sidecar.pad_multiple;
    this.strength = 1;
    this.reset();
  }

  get strength() { return this._strength; }

  set strength(value) { this._strength = checkStrength(value); }

  reset() {
    this.window = [];   // planar frames, oldest first
    this.state = null;  // [F, h] as ort.Tensor
    this.size = null;
  }

  async push(frame) {
    if (this.size && (frame.width !== this.size[0] || frame.height !== this.size[1])) {
      throw new Error(`frame size changed mid-stream from ${this.size.join('x')} to ${frame.width}x${frame.height}`);
    }
    this.size = [frame.width, frame.height];
    const planar = toPlanar(frame, this.multiple);
    if (this.window.length === 0) for (let k = 0; k < this.m; k++) this.window.push(planar);
    this.window.push(planar);
    return this.window.length === 2 * this.m + 1 ? this.step() : null;
  }

  async flush() {
    const out = [];
    const last = this.window[this.window.length - 1];
    for (let k = 0; k < this.m && last; k++) {
      this.window.push(last);
      if (this.window.length === 2 * this.m + 1) out.push(await this.step());
    }
    this.reset();
    return out;
  }

  /** Run the model on the full window, keep the new state, slide the window by one frame. */
  async step() {
    const { H, W } = this.window[0];
    const plane = 3 * H * W;
    const frames = new Float32Array(this.window.length * plane);
    this.window.forEach((f, k) => frames.set(f.data, k * plane));
    const [cf, ch] = this.channels;
    this.state ??= [cf, ch].map((c) => new this.ort.Tensor('float32', new Float32Array(c * H * W / 4), [1, c, H / 2, W / 2]));
    const result = await this.session.run({
      frames: new this.ort.Tensor('float32', frames, [1, frames.length / plane * 3, H, W]),
      F_in: this.state[0],
      h_in: this.state[1],
    });
    this.state = [result.F_out, result.h_out];
    const data = result.sharp.data;
    if (this._strength !== 1) {  // in float32, like the Python package: strength 0 gives the centre frame back exactly
      const centre = this.window[this.m].data, s = Math.fround(this._strength);
      for (let i = 0; i < data.length; i++) data[i] = Math.fround(Math.fround(data[i] - centre[i]) * s) + centre[i];
    }
    this.window.shift();
    return { data, H, W, width: this.size[0], height: this.size[1] };
  }
}
