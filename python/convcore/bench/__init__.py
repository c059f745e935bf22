"""convcore's benchmark: `python -m convcore.bench` (see bench/README.md).

Runs an embedded suite of convolution, pooling and GEMM shapes and prints, per row, convcore's
time beside PyTorch's and a NumPy im2col baseline's, with the machine's FMA peak and streaming
bandwidth measured in the same run (interleaved with the rows) so every "% of roofline" is
against what this machine could do at that moment.
"""
from .cli import main

__all__ = ["main"]
