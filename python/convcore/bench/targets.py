"""The targets the summary reports against (made visible, never asserted).

Thresholds from /work/shared/targets.md carry its section as `source`; the others come from the
issue's list of what the bench must show, and where that list names a quantity but not a number
the threshold here is an assumption (`assumed=True`, starred in the report) to be replaced when
the number is fixed.
"""
from dataclasses import dataclass


@dataclass(frozen=True)
class Target:
    key: str
    label: str
    threshold: float
    unit: str             # "x" (ratio, higher is better) or "%"
    source: str
    assumed: bool = False
    strict: bool = False  # met only above the threshold ("faster than"), not at it

    def met(self, value):
        if value is None:
            return False
        return value > self.threshold if self.strict else value >= self.threshold


TARGETS = [
    Target("conv_fwd_geomean", "conv2d fwd geomean speed-up vs PyTorch", 1.3, "x",
           "issue 3: conv2d forward geomean >= 1.3x"),
    Target("conv_fwd_min", "conv2d fwd worst row vs PyTorch", 0.9, "x",
           "issue 3: no row below 0.9x"),
    Target("conv_fwdbwd_geomean", "conv2d fwd+bwd geomean vs PyTorch", 1.5, "x",
           "issue 3: forward+backward geomean >= 1.5x"),
    Target("large3x3_peak", "large 3x3 rows, worst % of all-core FMA peak", 70.0, "%",
           "issue 3: large 3x3 rows >= 70% of the 2-core FMA peak"),
    Target("bw_fwd", "depthwise/pool fwd (> L2), worst % of stream bandwidth", 85.0, "%",
           "targets.md: CPU speed, depthwise"),
    Target("dw_fwdbwd", "depthwise fwd+bwd geomean vs PyTorch", 3.0, "x",
           "targets.md: CPU speed, depthwise"),
    Target("sep_l2", "separable 1-D vs 2-D depthwise, L2-resident", 2.5, "x",
           "targets.md: Separable 1-D"),
    Target("sep_dram", "separable 1-D vs 2-D depthwise, (8,64,112,112)", 1.3, "x",
           "targets.md: Separable 1-D"),
    Target("gemm_peak", "GEMM 1024^3 one thread, % of one-core FMA peak", 80.0, "%",
           "targets.md: GEMM"),
    Target("gemm_numpy_2t", "GEMM 1024^3 two threads vs numpy.matmul", 1.0, "x",
           "issue 3: GEMM faster than numpy.matmul on the same sizes with 2 threads", strict=True),
    Target("numpy_geomean", "geomean speed-up vs NumPy im2col baseline", 20.0, "x",
           "issue 3: >= 20x geomean over the NumPy im2col baseline"),
]
