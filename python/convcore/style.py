"""Neural style transfer from the command line (chainer-gogh's options, convcore's kernels).

    python -m convcore.style [CONTENT STYLE] -o out.png --width 435 --iters 1000 --net nin
    python -m convcore.style -o cat.png --width 256 --iters 300 --net vgg16 --weights vgg16.npz
    python -m convcore.style -o cat.png --net nin --weights nin_imagenet.caffemodel

With no CONTENT and STYLE, scikit-image's bundled `chelsea` (content) and
`immunohistochemistry` (style) are used. With no --weights the network has seeded random
weights; see convcore.apps.style for what that gives and the aids (--normalize, --tv).
Weights: an .npz with '<layer>/W', '<layer>/b' (convcore.models.feature_nets), or a Caffe
.caffemodel (NIN-ImageNet, VGG_ILSVRC_16/19_layers; read by convcore.models.caffe, converted in
memory); write an .npz from a torchvision VGG state_dict with --convert-torchvision STATE_DICT.pt
or from a .caffemodel with --convert-caffe MODEL.caffemodel.
"""
import argparse
import sys
import time

from .apps import style as style_app
from .models.caffe import convert_caffemodel
from .models.feature_nets import FEATURE_NETS, convert_torchvision_vgg

__all__ = ["main"]


def _parser():
    p = argparse.ArgumentParser(prog="python -m convcore.style", description=__doc__.split("\n")[0])
    p.add_argument("images", nargs="*", metavar="CONTENT STYLE",
                   help="content and style image files (default: scikit-image samples)")
    p.add_argument("-o", "--out", default="style_out.png", help="final PNG (default %(default)s)")
    p.add_argument("--width", type=int, default=435, help="image width in pixels (default 435)")
    p.add_argument("--iters", type=int, default=1000, help="iterations (default 1000)")
    p.add_argument("--net", default="nin", choices=sorted(FEATURE_NETS))
    p.add_argument("--weights", help=".npz or .caffemodel weights for --net (default: seeded "
                   "random weights)")
    p.add_argument("--seed", type=int, default=0, help="random weights and initial image")
    p.add_argument("--optimizer", default="adam", choices=("adam", "lbfgs"))
    p.add_argument("--lr", type=float, default=4.0, help="Adam learning rate in pixel units")
    p.add_argument("--content-weight", "--lam", type=float, default=None,
                   help="content/style ratio lam (default 0.005, or 1 with --normalize)")
    p.add_argument("--content-layers", help="e.g. relu3:1,relu4:1 (default: the net's)")
    p.add_argument("--style-layers", help="e.g. relu1:1,relu2:1,relu3:1,relu4:1")
    p.add_argument("--tv", type=float, default=0.0, help="total-variation weight (default 0)")
    norm = p.add_mutually_exclusive_group()
    norm.add_argument("--normalize", dest="normalize", action="store_true", default=None,
                      help="normalise each layer's term by its target (default with random weights)")
    norm.add_argument("--no-normalize", dest="normalize", action="store_false")
    p.add_argument("--init", default="noise", choices=("noise", "content"))
    p.add_argument("--save-every", type=int, default=0, help="write a PNG every N iterations")
    p.add_argument("--threads", type=int, help="convcore threads (default: all cores)")
    p.add_argument("--device", default="cpu", choices=("cpu", "gpu"),
                   help="gpu: run on CuPy arrays (convcore built with CUDA); default cpu")
    p.add_argument("--convert-torchvision", metavar="STATE_DICT",
                   help="convert a torchvision VGG state_dict file to --weights (.npz) and exit")
    p.add_argument("--convert-caffe", metavar="CAFFEMODEL",
                   help="convert a Caffe .caffemodel for --net to --weights (.npz) and exit")
    return p


def main(argv=None):
    args = _parser().parse_args(argv)
    if args.convert_torchvision or args.convert_caffe:
        if args.convert_torchvision and args.convert_caffe:
            raise SystemExit("give --convert-torchvision or --convert-caffe, not both")
        flag = "--convert-torchvision" if args.convert_torchvision else "--convert-caffe"
        if not args.weights:
            raise SystemExit(f"{flag} needs --weights OUT.npz")
        if args.convert_torchvision:
            convert_torchvision_vgg(args.convert_torchvision, args.weights, args.net)
        else:
            convert_caffemodel(args.convert_caffe, args.weights, args.net)
        print(f"wrote {args.weights}")
        return 0
    if args.threads:
        import convcore
        convcore.set_num_threads(args.threads)
    if len(args.images) == 2:
        content, style = (style_app.load_image(f) for f in args.images)
    elif not args.images:
        content, style = style_app.default_images()
    else:
        raise SystemExit("give both CONTENT and STYLE images, or neither")
    parse = style_app.parse_layer_weights
    t0 = time.perf_counter()
    _, history = style_app.stylize(
        content, style, net=args.net, weights=args.weights, seed=args.seed, width=args.width,
        iters=args.iters, optimizer=args.optimizer, lr=args.lr,
        content_weight=args.content_weight,
        content_layers=parse(args.content_layers) if args.content_layers else None,
        style_layers=parse(args.style_layers) if args.style_layers else None,
        tv_weight=args.tv, normalize=args.normalize, init=args.init, out=args.out,
        save_every=args.save_every, device=args.device)
    seconds = time.perf_counter() - t0
    last = history[-1][1] if history else float("nan")
    print(f"{args.iters} iterations in {seconds:.1f} s, final loss {last:.4g}, wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
