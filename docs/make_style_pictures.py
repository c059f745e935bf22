"""The style-transfer pictures in docs/style/ (random weights, each aid on and off).

    PYTHONPATH=python python docs/make_style_pictures.py --width 192 --iters 300

Content: scikit-image's `chelsea`; style: `immunohistochemistry`. For each network (NIN with
seeded random weights, and the shallow wide 'random' net) four runs from the same noise start:
no aid, total variation, per-layer normalisation, both. Writes one PNG per run and a strip
content | style | runs... per network (montage_<net>.png), and prints each run's time.
--init content starts from the content image instead (files *_from_content.png).
"""
import argparse
import os
import time

import numpy as np

from convcore.apps import style as S

# TV weights sized to be a tenth or so of the final loss in each mode: the raw terms of a
# random network are ~100x larger than the normalised ones
AIDS = (("plain", False, 0.0), ("tv", False, 500.0), ("normalize", True, 0.0),
        ("normalize_tv", True, 5.0))


def _strip(images, gap=4):
    h = max(im.shape[0] for im in images)
    parts = []
    for im in images:
        pad = np.full((h, im.shape[1] + gap, 3), 255, np.uint8)
        pad[:im.shape[0], :im.shape[1]] = im
        parts.append(pad)
    return np.concatenate(parts, axis=1)[:, :-gap]


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--width", type=int, default=192)
    parser.add_argument("--iters", type=int, default=300)
    parser.add_argument("--nets", default="nin,random")
    parser.add_argument("--init", default="noise", choices=("noise", "content"))
    parser.add_argument("--aids", default=",".join(a[0] for a in AIDS),
                        help="which runs, e.g. plain,normalize_tv")
    parser.add_argument("--out", default=os.path.join(os.path.dirname(__file__), "style"))
    args = parser.parse_args(argv)
    content, style = S.default_images()
    content_px = S.resize(content, args.width).astype(np.uint8)
    style_px = S.resize(style, args.width, content_px.shape[0]).astype(np.uint8)
    for net in args.nets.split(","):
        results = []
        suffix = "" if args.init == "noise" else "_from_content"
        for label, normalize, tv in (a for a in AIDS if a[0] in args.aids.split(",")):
            t0 = time.perf_counter()
            img, history = S.stylize(content, style, net=net, seed=0, width=args.width,
                                     iters=args.iters, normalize=normalize, tv_weight=tv,
                                     progress=False, init=args.init,
                                     out=os.path.join(args.out, f"{net}_{label}{suffix}.png"))
            print(f"{net:7s} {label:13s} {args.iters} iters {time.perf_counter() - t0:6.1f} s "
                  f"loss {history[0][1]:.4g} -> {history[-1][1]:.4g} "
                  f"{ {k: round(v, 5) for k, v in history[-1][2].items()} }", flush=True)
            results.append(img)
        S.write_png(os.path.join(args.out, f"montage_{net}{suffix}.png"),
                    _strip([content_px, style_px] + results))


if __name__ == "__main__":
    main()
