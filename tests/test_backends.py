"""What was built, ISA control, threads, and the shared shape formulas."""
import os
import shutil

import numpy as np
import pytest

import convcore
from convcore import _cpu


def test_backends_report():
    info = convcore.backends()
    assert info["cpu"]["isa"] in ("scalar", "avx2", "avx512")
    assert info["num_threads"] >= 1
    assert set(info["cuda"]) >= {"built", "available", "devices"}


@pytest.mark.skipif(shutil.which("nvcc") is None or os.environ.get("CONVCORE_CUDA") == "OFF",
                    reason="no CUDA compiler on this machine: the CUDA extension is not built")
def test_cuda_extension_built_when_nvcc_present():
    # CI has nvcc but no GPU: the extension must still be built and importable.
    info = convcore.backends()["cuda"]
    assert info["built"] is True
    if not info["available"]:
        assert info["devices"] == []


def test_set_isa_clamps_to_cpu():
    best = _cpu.cpu_info()["best_isa"]
    previous = _cpu.cpu_info()["isa"]  # CONVCORE_ISA may have lowered it: restore that, not best
    try:
        assert _cpu._set_isa("scalar") == "scalar"
        got = _cpu._set_isa("avx512")
        assert got == best or (best == "avx2" and got == "avx2") or best == "scalar"
    finally:
        _cpu._set_isa(previous)
    with pytest.raises(ValueError, match="isa must be"):
        _cpu._set_isa("sse9")


def test_num_threads_roundtrip():
    old = convcore.get_num_threads()
    try:
        convcore.set_num_threads(1)
        assert convcore.get_num_threads() == 1
    finally:
        convcore.set_num_threads(0)
    assert convcore.get_num_threads() == old


@pytest.mark.parametrize("size,k,s,pb,pa,d,expected", [
    (28, 3, 1, 1, 1, 1, 28), (28, 5, 1, 0, 0, 1, 24), (7, 3, 2, 1, 1, 1, 4),
    (10, 3, 3, 0, 0, 2, 2), (1, 1, 5, 0, 0, 1, 1), (224, 7, 2, 3, 3, 1, 112),
])
def test_conv_out_extent(size, k, s, pb, pa, d, expected):
    assert _cpu.conv_out_extent(size, k, s, pb, pa, d) == expected
    # the book's formula (W - F + 2P)/S + 1 for symmetric padding, no dilation
    if d == 1 and pb == pa:
        assert expected == (size - k + 2 * pb) // s + 1


def test_transpose_extent_inverts_conv_extent():
    rng = np.random.default_rng(0)
    for _ in range(200):
        size, k, s, p, d = (int(v) for v in rng.integers(1, 9, size=5))
        p = min(p, d * (k - 1))
        for op in range(max(s, d)):
            out = _cpu.conv_transpose_out_extent(size, k, s, p, p, d, op)
            if out > 0:
                assert _cpu.conv_out_extent(out, k, s, p, p, d) == size + op // s


def test_pool_out_extent_ceil_mode_rule():
    # the last window must start inside the image or the leading padding
    assert _cpu.pool_out_extent(5, 2, 2, 0, 0, 1, False) == 2
    assert _cpu.pool_out_extent(5, 2, 2, 0, 0, 1, True) == 3
    assert _cpu.pool_out_extent(6, 3, 3, 1, 1, 1, True) == 3  # the 4th would start in padding


def test_allow_tf32_switch_defaults_off_and_checks_its_argument():
    """convcore.set_allow_tf32: off by default, a bool only (its effect on GPU results is tested
    in test_cuda.py / test_cuda_emulated.py, check_tf32_error_bound)."""
    assert convcore.get_allow_tf32() is False
    try:
        convcore.set_allow_tf32(True)
        assert convcore.get_allow_tf32() is True
    finally:
        convcore.set_allow_tf32(False)
    assert convcore.get_allow_tf32() is False
    with pytest.raises(TypeError, match="on must be a bool"):
        convcore.set_allow_tf32(1)
