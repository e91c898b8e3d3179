// npm test: serve the page on 127.0.0.1, drive it in headless Chromium, and check that the golden sequence run
// by onnxruntime-web in the page equals the Python runtime's output (1e-4) at full and partial strength, that the
// camera mode deblurs Chromium's fake camera as one stream whose state goes from frame to frame, and that strength
// 0 gives the camera's frames back. Any error in the page fails the test.
// node test.mjs --screenshot FILE additionally deblurs three frames of the sample clip and saves the page.
import assert from 'node:assert/strict';
import puppeteer from 'puppeteer-core';
import { serve } from './serve.mjs';

const executablePath = process.env.CHROMIUM ?? '/usr/bin/chromium';
const screenshot = process.argv.includes('--screenshot') ? process.argv[process.argv.indexOf('--screenshot') + 1] : null;
const server = await serve(0);
const base = `http://127.0.0.1:${server.address().port}/examples/web/`;
const browser = await puppeteer.launch({
  executablePath, headless: true,
  args: ['--no-sandbox', '--disable-gpu', '--use-fake-device-for-media-stream', '--use-fake-ui-for-media-stream',
    '--disable-quic', '--no-first-run', '--disable-background-networking',
    '--disable-component-update', '--disable-sync'],
});
try {
  const page = await browser.newPage();
  const errors = [];
  page.on('pageerror', (e) => errors.push(`page error: ${e.message}`));
  page.on('console', (m) => { if (m.type() === 'error') errors.push(`page console: ${m.text()}`); });
  page.on('response', (r) => { if (!r.ok()) errors.push(`page request failed: ${r.status()} ${r.url()}`); });
  await page.goto(`${base}?golden`);
  await page.waitForFunction(() => window.golden !== undefined, { timeout: 120_000 });
  const golden = await page.evaluate(() => window.golden);
  assert.equal(golden.error, undefined, golden.error);
  console.log(`onnxruntime-web in Chromium vs Python on ${golden.frames} golden frames: max abs difference ${golden.worst.toExponential(2)}`);
  assert.equal(golden.frames, golden.expectedFrames, 'one output per input frame');
  assert.ok(golden.worst <= golden.tolerance, `max abs difference ${golden.worst} > ${golden.tolerance}`);
  await page.goto(`${base}?camera&check&frames=6&model=../golden/tiny.onnx`);
  await page.waitForFunction(() => window.cameraCheck !== undefined, { timeout: 120_000 });
  const camera = await page.evaluate(() => window.cameraCheck);
  assert.equal(camera.error, undefined, camera.error);
  console.log(`camera mode on ${camera.backend}, fake camera at ${camera.width}x${camera.height}: ${camera.frames} `
    + `frames; output vs input ${camera.changed.toExponential(2)}, vs a replay ${camera.replayed.toExponential(2)}, `
    + `vs a stream with a shorter history ${camera.fresh.toExponential(2)}`);
  assert.equal(camera.frames, 6, 'frames flow');
  assert.ok(camera.changed > 1e-3, 'the output differs from the input');  // 0 for a model that did nothing
  assert.ok(camera.replayed <= 1e-6, 'a replay of the same frames gives the same output');
  assert.ok(camera.fresh > 1e-4, 'the state carries over from frame to frame');
  await page.goto(`${base}?camera&check&frames=3&model=../golden/tiny.onnx&strength=0`);
  await page.waitForFunction(() => window.cameraCheck !== undefined, { timeout: 120_000 });
  const still = await page.evaluate(() => window.cameraCheck);
  assert.equal(still.error, undefined, still.error);
  console.log(`strength 0: output vs input ${still.changed.toExponential(2)}`);
  assert.ok(still.changed === 0, 'strength 0 gives the input back');
  await page.goto(`${base}?camera&check&frames=3&model=fast`);
  await page.waitForFunction(() => window.cameraCheck !== undefined, { timeout: 120_000 });
  const fast = await page.evaluate(() => window.cameraCheck);
  assert.equal(fast.error, undefined, fast.error);
  console.log(`the fast model by name: ${fast.model}, ${fast.frames} camera frames on ${fast.backend}`);
  assert.equal(fast.model, 'strcnn_dtb_fast', 'a shipped model is picked by its name');
  assert.ok(fast.trained && fast.frames === 3 && fast.replayed <= 1e-6, 'it runs as a stream');
  assert.deepEqual(errors, [], 'no error in the page');
  if (screenshot) {
    await page.setViewport({ width: 1100, height: 620 });
    await page.goto(`${base}?sample&frames=3`);
    await page.waitForFunction(() => window.ready === true, { timeout: 600_000 });
    await page.screenshot({ path: screenshot });
    console.log(`saved ${screenshot}`);
  }
} finally {
  await browser.close();
  server.close();
}
