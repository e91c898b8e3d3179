// node deblur.mjs MODEL IN_DIR OUT_DIR [--strength S]: deblur a folder of PNG frames (sorted by name) into
// OUT_DIR. MODEL is a shipped model, full or fast (../../weights/models.json), or an .onnx; the .json sidecar
// beside it says how to feed it; see ../js/strcnn.mjs for the streaming loop. --strength (0 to 1, default 1) is
// how much of the model's correction to apply.
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import * as ort from 'onnxruntime-node';
import { PNG } from 'pngjs';
import { Deblurrer, checkStrength, modelLocation, toRGBA } from '../js/strcnn.mjs';

const WEIGHTS = fileURLToPath(new URL('../../weights/', import.meta.url));

/** A Deblurrer of a shipped model's name (full, fast) or of an .onnx's path. */
export async function loadDeblurrer(model) {
  const manifest = JSON.parse(fs.readFileSync(path.join(WEIGHTS, 'models.json'), 'utf8'));
  const modelPath = modelLocation(manifest, model, WEIGHTS);
  if (!modelPath.endsWith('.onnx') || !fs.existsSync(modelPath)) {
    throw new Error(`${model}: neither a shipped model (${Object.keys(manifest.models).join(', ')}) nor an .onnx file`);
  }
  const sidecar = JSON.parse(fs.readFileSync(modelPath.replace(/\.onnx$/, '.json'), 'utf8'));
  return Deblurrer.create(ort, fs.readFileSync(modelPath), sidecar);
}

export function readFrame(file) {
  const png = PNG.sync.read(fs.readFileSync(file));
  return { width: png.width, height: png.height, rgba: png.data };
}

/** Stream every frame of `files` through the model; returns the sharp frames in order (planar float). */
export async function deblurFrames(deblurrer, files) {
  const out = [];
  for (const file of files) {
    const sharp = await deblurrer.push(readFrame(file));
    if (sharp) out.push(sharp);
  }
  return out.concat(await deblurrer.flush());
}

async function main(argv) {
  const { values, positionals } = parseArgs({ args: argv, allowPositionals: true, options: { strength: { type: 'string' } } });
  const [model, inDir, outDir] = positionals;
  if (!outDir || positionals.length > 3) {
    throw new Error('usage: node deblur.mjs MODEL IN_DIR OUT_DIR [--strength S] (MODEL: full, fast or an .onnx)');
  }
  const strength = checkStrength(values.strength === undefined ? 1 : Number(values.strength));
  const files = fs.readdirSync(inDir).filter((f) => f.endsWith('.png')).sort().map((f) => path.join(inDir, f));
  if (files.length === 0) throw new Error(`${inDir}: no .png frames`);
  const deblurrer = await loadDeblurrer(model);
  deblurrer.strength = strength;
  const sharp = await deblurFrames(deblurrer, files);
  fs.mkdirSync(outDir, { recursive: true });
  sharp.forEach((s, i) => {
    const png = new PNG({ width: s.width, height: s.height });
    png.data = Buffer.from(toRGBA(s, s.width, s.height));
    fs.writeFileSync(path.join(outDir, path.basename(files[i])), PNG.sync.write(png));
  });
  console.log(`wrote ${sharp.length} frames to ${outDir}`);
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  main(process.argv.slice(2)).catch((e) => { console.error(`deblur: error: ${e.message}`); process.exit(1); });
}
