// The largest absolute difference between sharp frames from Deblurrer (planar, padded) and the golden
// sequence's expected output (float32 [T, H, W, 3]); shared by the Node and browser tests.
export function maxAbsDifference(frames, expected, width, height) {
  let worst = 0;
  frames.forEach((s, t) => {
    for (let y = 0; y < height; y++) for (let x = 0; x < width; x++) for (let c = 0; c < 3; c++) {
      const got = s.data[c * s.H * s.W + y * s.W + x];
      worst = Math.max(worst, Math.abs(got - expected[((t * height + y) * width + x) * 3 + c]));
    }
  });
  return worst;
}
