"""FCN pass vs running the classifier on every crop, on one canvas (issue 10).

    PYTHONPATH=python python bench/fcn_compare.py --canvas 112 --reps 5

For SimpleConvNet (28x28 classifier, no padding) and DeepConvNet (book defaults), times
  fcn       one to_fully_convolutional(net).predict(canvas) pass
  loop      net.predict(crop) for every crop the FCN scores, one crop at a time
  batched   net.predict on all those crops stacked into one batch
and prints medians and the ratios. Weights are random (seeded): timing does not depend on them.
"""
import argparse
import numpy as np

import convcore
from convcore.bench.timing import Budget, measure
from convcore.models import DeepConvNet, SimpleConvNet, to_fully_convolutional


def _median_ms(fn, reps):
    return measure(fn, Budget(fixed_reps=reps)).median_ms     # first call: warm-up


def _crops(canvas, fcn, out_h, out_w):
    rows, cols = fcn.crop_origins(out_h, out_w)
    wh, ww = fcn.window
    return np.ascontiguousarray(np.stack(
        [canvas[0, :, r:r + wh, c:c + ww] for r in rows for c in cols]))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--canvas", type=int, default=112)
    parser.add_argument("--reps", type=int, default=5)
    parser.add_argument("--threads", type=int, default=None)
    args = parser.parse_args(argv)
    if args.threads:
        convcore.set_num_threads(args.threads)
    rng = np.random.default_rng(0)
    canvas = rng.random((1, 1, args.canvas, args.canvas)).astype(np.float32)
    print(f"canvas {args.canvas}x{args.canvas}, threads {convcore.get_num_threads()}, "
          f"median of {args.reps}")
    for name, net in (("SimpleConvNet", SimpleConvNet(dtype=np.float32, rng=rng)),
                      ("DeepConvNet", DeepConvNet(dtype=np.float32, rng=rng))):
        fcn = to_fully_convolutional(net)
        scores = fcn.predict(canvas)
        out_h, out_w = scores.shape[2:]
        crops = _crops(canvas, fcn, out_h, out_w)
        fcn_ms = _median_ms(lambda: fcn.predict(canvas), args.reps)
        batched_ms = _median_ms(lambda: net.predict(crops), args.reps)
        loop_ms = _median_ms(lambda: [net.predict(crops[i:i + 1]) for i in range(len(crops))],
                             max(1, args.reps // 2))
        print(f"{name:14s} {out_h}x{out_w} positions ({len(crops)} crops): fcn {fcn_ms:8.2f} ms"
              f"  batched {batched_ms:8.2f} ms ({batched_ms / fcn_ms:5.1f}x)"
              f"  loop {loop_ms:9.1f} ms ({loop_ms / fcn_ms:6.1f}x)")


if __name__ == "__main__":
    main()
