"""The benchmark's rows. Each Row names a case factory; the runner builds the case (and its
arrays) just before timing it and drops it afterwards, so only one row's data is alive at once.

Groups run in order; the machine probes are re-measured before each group.
Tags feed the summary's targets (see targets.py): "conv" rows make the conv2d-vs-PyTorch
geomeans, "large3x3" the %-of-peak target, "bw" the bandwidth target, "sep2d"/"sep1d" the
separable ratios (paired by the row's `pair` key), "gemm1t" / "gemm2t" the GEMM targets;
"extra" rows (shapes beyond the issue's suite) feed no target, not even the NumPy geomean.
"""
import fnmatch
from dataclasses import dataclass, field

from . import cases


@dataclass
class Row:
    name: str
    group: str
    make: object                 # rng -> Case
    tags: tuple = ()
    pair: str = ""               # separable rows: the 2-D and 1-D forms share a key
    quick: bool = False          # part of the quick suite
    threads: int = 0             # 0: the run's thread count; GEMM rows fix theirs
    case: object = field(default=None, repr=False)


def _conv(n, c, h, w, k, kernel, stride=1, pad=0, groups=1):
    return lambda rng: cases.Conv2dCase(rng, n, c, h, w, k, kernel, stride, pad, groups)


def _depthwise(n, c, hw, stride):
    return _conv(n, c, hw, hw, c, 3, stride, 1, c)


def _sep_pair(name, group, n, c, hw, quick, l2):
    """The rank-1 7x7 depthwise kernel as one 2-D pass and as two 1-D passes, same weights."""
    shared = {}

    def factors(rng):
        if "sep" not in shared:
            shared["sep"] = cases.SepConv1dCase(rng, n, c, hw, hw, 7, 3)
        return shared["sep"]

    def one_d(rng):
        return factors(rng)

    def two_d(rng):
        weight = factors(rng).full_weight()
        return cases.Conv2dCase(rng, n, c, hw, hw, c, 7, 1, 3, c, weight=weight)

    tag = ("l2",) if l2 else ("dram",)
    return [Row(f"{name}.2d", group, two_d, ("sep2d",) + tag, pair=name, quick=quick),
            Row(f"{name}.1d", group, one_d, ("sep1d",) + tag, pair=name, quick=quick)]


def default_rows():
    rows = []
    # "Deep Learning from Scratch" DeepConvNet, batch 100; conv4 as corrected in targets.md.
    book = [(1, 28, 16, 1), (16, 28, 16, 1), (16, 14, 32, 1), (32, 14, 32, 2), (32, 8, 64, 1),
            (64, 8, 64, 1)]
    for i, (c, hw, k, pad) in enumerate(book, 1):
        rows.append(Row(f"book.conv{i}", "book", _conv(100, c, hw, hw, k, 3, 1, pad), ("conv",),
                        quick=i in (2, 4)))
    # ResNet-50, batch 8
    for c, hw in ((64, 56), (128, 28), (256, 14), (512, 7)):
        rows.append(Row(f"r50.3x3.{c}", "resnet", _conv(8, c, hw, hw, c, 3, 1, 1),
                        ("conv", "large3x3"), quick=c == 512))
    for c, hw, k in ((256, 56, 64), (64, 56, 256), (1024, 14, 256)):
        rows.append(Row(f"r50.1x1.{c}-{k}", "resnet", _conv(8, c, hw, hw, k, 1), ("conv",)))
    rows.append(Row("r50.stem", "resnet", _conv(8, 3, 224, 224, 64, 7, 2, 3), ("conv",)))
    # Beyond the issue's suite ("extra": in no target): ResNeXt-50's grouped 3x3, 32 groups of 4
    rows.append(Row("resnext.3x3.g32", "resnet", _conv(8, 128, 28, 28, 128, 3, 1, 1, 32), ("extra",)))
    rows.append(Row("vgg.3x3.128", "vgg", _conv(4, 128, 112, 112, 128, 3, 1, 1),
                    ("conv", "large3x3")))
    # MobileNet-v1 depthwise 3x3 (pad 1, multiplier 1) and one pointwise
    for c, hw, s in ((32, 112, 1), (64, 112, 2), (128, 56, 1), (256, 28, 2), (512, 14, 1),
                     (1024, 7, 1)):
        rows.append(Row(f"mnv1.dw{c}.s{s}", "depthwise", _depthwise(8, c, hw, s),
                        ("bw", "depthwise"), quick=c == 512))
    rows.append(Row("mnv1.pw512", "depthwise", _conv(8, 512, 14, 14, 512, 1), ("conv",),
                    quick=True))
    # Separable 1-D against 2-D depthwise: big maps (DRAM-bound) and an L2-resident map
    rows += _sep_pair("sep7", "separable", 8, 64, 112, False, l2=False)
    rows += _sep_pair("sep7.l2", "separable", 1, 64, 56, True, l2=True)
    rows.append(Row("conv1d", "conv1d/T",
                    lambda rng: cases.Conv1dCase(rng, 32, 64, 1024, 64, 9, 1, 4, 1), ()))
    rows.append(Row("convT.2x", "conv1d/T",
                    lambda rng: cases.ConvTranspose2dCase(rng, 8, 64, 28, 28, 32, 4, 2, 1, 1), (),
                    quick=True))
    # Pooling
    for mode in ("max", "avg"):
        rows.append(Row(f"{mode}pool.2s2", "pool",
                        lambda rng, m=mode: cases.PoolCase(rng, m, 8, 256, 56, 56, 2, 2), ("bw",)))
        rows.append(Row(f"{mode}pool.3s2", "pool",
                        lambda rng, m=mode: cases.PoolCase(rng, m, 8, 64, 112, 112, 3, 2), ("bw",),
                        quick=mode == "max"))
    # GEMM 1024^3 on one and on two threads
    for t in (1, 2):
        rows.append(Row(f"gemm.{t}t", "gemm",
                        lambda rng, t=t: cases.GemmCase(rng, 1024, 1024, 1024, t),
                        (f"gemm{t}t",), quick=t == 1, threads=t))
    return rows


SUITES = {
    "default": lambda r: True,
    "quick": lambda r: r.quick,
    "conv": lambda r: r.group in ("book", "resnet", "vgg", "conv1d/T") or r.name == "mnv1.pw512",
    "depthwise": lambda r: r.group in ("depthwise", "separable"),
    "pool": lambda r: r.group == "pool",
    "gemm": lambda r: r.group == "gemm",
}


def select_rows(suite="default", patterns=None):
    """Rows of `suite`, narrowed by `patterns` (comma-separated; a pattern with * ? [ is a glob
    on the row name, any other a substring)."""
    if suite not in SUITES:
        raise ValueError(f"unknown suite {suite!r}; expected one of {', '.join(SUITES)}")
    rows = [r for r in default_rows() if SUITES[suite](r)]
    if patterns:
        wanted = [p.strip() for p in patterns.split(",") if p.strip()]

        def match(name):
            return any(fnmatch.fnmatchcase(name, p) if any(ch in p for ch in "*?[") else p in name
                       for p in wanted)
        rows = [r for r in rows if match(r.name)]
    return rows
