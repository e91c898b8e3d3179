"""Live deblurring with OpenCV: frames from a camera, a file or a URL go through `Deblurrer.push` one by one.

Where OpenCV has a window system, the input and the output are shown side by side with the frame rate (q or Esc
quits). The headless OpenCV that strcnn-sdk installs has none: then the side-by-side frames go to a video file.

    python examples/live.py 0                          # the first camera
    python examples/live.py rtsp://camera.local/stream
    python examples/live.py examples/sample.mp4 --out live.mp4 --frames 30
"""

from __future__ import annotations

import argparse
import sys
import time
from collections import deque

import cv2
import numpy as np

from strcnn_sdk import Deblurrer
from strcnn_sdk.model import default_model


def has_window() -> bool:
    """Whether this OpenCV can open a window (opencv-python-headless cannot)."""
    try:
        cv2.namedWindow("strcnn probe")
        cv2.destroyWindow("strcnn probe")
        return True
    except cv2.error:
        return False


def panel(before: np.ndarray, after: np.ndarray, fps: float) -> np.ndarray:
    """The input and the deblurred frame side by side, labelled, with the frame rate."""
    pair = np.concatenate([before, after], axis=1)
    for x, text in ((8, f"input  {fps:.1f} fps"), (before.shape[1] + 8, "deblurred")):
        for colour, thickness in (((0, 0, 0), 3), ((255, 255, 255), 1)):
            cv2.putText(pair, text, (x, 20), cv2.FONT_HERSHEY_SIMPLEX, 0.5, colour, thickness, cv2.LINE_AA)
    return pair


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("source", help="a camera index (0), a video file or a URL")
    parser.add_argument("--model", help="a shipped model, full or fast, or an .onnx with its .json sidecar (default: "
                                        "the real-time model of weights/models.json for a camera on a CPU, else "
                                        "its default)")
    parser.add_argument("--out", default="live.mp4", help="the video written where no window can open")
    parser.add_argument("--frames", type=int, help="stop after this many frames")
    args = parser.parse_args()

    camera = args.source.isdigit()
    capture = cv2.VideoCapture(int(args.source) if camera else args.source)
    if not capture.isOpened():
        print(f"live.py: cannot open {args.source}", file=sys.stderr)
        return 1
    if camera:  # hold one frame, not a queue of old ones: each read is then the newest picture
        capture.set(cv2.CAP_PROP_BUFFERSIZE, 1)
    deblurrer = Deblurrer(args.model or default_model(realtime=camera), color="bgr")  # OpenCV's frames are BGR
    print(f"live.py: {deblurrer.model.path.name} on {deblurrer.model.provider}", file=sys.stderr)
    window, writer = has_window(), None
    waiting: deque[np.ndarray] = deque()  # inputs whose output is still to come (the model looks one frame ahead)
    fps, last, count = 0.0, time.perf_counter(), 0

    def show(sharp: np.ndarray) -> bool:
        """Show or write one output frame; False once the user quits."""
        nonlocal fps, last, writer
        now = time.perf_counter()
        fps = 0.9 * fps + 0.1 / max(now - last, 1e-6) if fps else 1 / max(now - last, 1e-6)
        last = now
        frame = panel(waiting.popleft(), sharp, fps)
        if window:
            cv2.imshow("strcnn live", frame)
            return cv2.waitKey(1) & 0xFF not in (ord("q"), 27)
        if writer is None:
            rate = capture.get(cv2.CAP_PROP_FPS) or 25
            writer = cv2.VideoWriter(args.out, cv2.VideoWriter_fourcc(*"mp4v"), rate, frame.shape[1::-1])
        writer.write(frame)
        return True

    going = True
    while going and (args.frames is None or count < args.frames):
        ok, frame = capture.read()
        if not ok:
            break
        count += 1
        waiting.append(frame)
        sharp = deblurrer.push(frame)
        going = sharp is None or show(sharp)
    if going:  # the end of the input: the last frame's output
        for sharp in deblurrer.flush():
            show(sharp)
    capture.release()
    if writer is not None:
        writer.release()
        print(f"wrote {count} frames, input and output side by side, to {args.out}", file=sys.stderr)
    if window:
        cv2.destroyAllWindows()
    return 0


if __name__ == "__main__":
    sys.exit(main())
