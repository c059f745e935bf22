"""convcore.FrozenWeights: a read-only snapshot of conv weights whose prepared forms (Winograd's
transformed kernels, the turned kernel of the input gradient) are built on first use and kept.
Results must equal those from the plain array with the same algorithm, bit for bit (same
transforms, same order), under every ISA, on later calls and after the source array changes;
"auto" with frozen weights may choose Winograd on smaller maps, so it is held to the float64
reference."""
import numpy as np
import pytest

import convcore
import convcore.functional as F
from convcore import _cpu

from cases import randn
from isa import ISA_ORDER, forced_isa
from reference import assert_close, conv2d as ref_conv2d, conv2d_backward as ref_conv2d_backward

# (n, c, h, w, k, kernel, pad): 3x3 and 5x5 (sub-kernels), partial tiles, one image on a small
# map (the shape "auto" gives to Winograd only with frozen weights), more channels than a panel
CASES = [
    (1, 32, 12, 12, 64, 3, 1),
    (2, 5, 9, 7, 19, 3, 1),
    (1, 16, 11, 13, 70, 5, 2),
    (1, 64, 14, 14, 64, 3, 0),
    (1, 256, 7, 7, 272, 3, 1),   # 16 tiles, 256+ channels: Winograd with the tiles as GEMM rows
]


def _arrays(rng, case, dtype=np.float32):
    n, c, h, w, k, ks, pad = case
    x = randn(rng, (n, c, h, w), dtype)
    W = randn(rng, (k, c, ks, ks), dtype)
    y_shape = (n, k, h + 2 * pad - ks + 1, w + 2 * pad - ks + 1)
    return x, W, randn(rng, (k,), dtype), randn(rng, y_shape, dtype), pad


@pytest.mark.parametrize("isa", ISA_ORDER)
@pytest.mark.parametrize("case", CASES)
def test_frozen_equals_plain_winograd_bit_for_bit(rng, case, isa):
    with forced_isa(isa):
        x, W, b, dy, pad = _arrays(rng, case)
        frozen = convcore.FrozenWeights(W)
        for _ in range(2):   # the first call builds the forms, the second reuses them
            y = F.conv2d(x, frozen, b, padding=pad, algo="winograd_2x2")
            dx, _, _ = F.conv2d_backward(dy, x, frozen, padding=pad, need=("x",),
                                         algo="winograd_2x2")
            np.testing.assert_array_equal(y, F.conv2d(x, W, b, padding=pad, algo="winograd_2x2"))
            np.testing.assert_array_equal(dx, F.conv2d_backward(dy, x, W, padding=pad, need=("x",),
                                                                algo="winograd_2x2")[0])
        assert frozen.prepared_nbytes > 0
        kept = frozen.prepared_nbytes
        F.conv2d(x, frozen, b, padding=pad, algo="winograd_2x2")
        assert frozen.prepared_nbytes == kept   # nothing rebuilt


@pytest.mark.parametrize("case", CASES)
def test_frozen_auto_matches_reference(rng, case):
    x, W, b, dy, pad = _arrays(rng, case)
    frozen = convcore.FrozenWeights(W)
    pads = (pad,) * 4
    ry = ref_conv2d(x, W, b, pads=pads)
    rdx, rdw, rdb = ref_conv2d_backward(dy, x, W, pads=pads)
    for _ in range(2):
        assert_close(F.conv2d(x, frozen, b, padding=pad), ry, case, 1e-5)
        dx, dw, db = F.conv2d_backward(dy, x, frozen, padding=pad)
        assert_close(dx, rdx, case, 1e-5)
        assert_close(dw, rdw, case, 1e-5)
        assert_close(db, rdb, case, 1e-5)


def test_snapshot_does_not_follow_the_source(rng):
    x, W, b, dy, pad = _arrays(rng, CASES[0])
    frozen = convcore.FrozenWeights(W)
    before = F.conv2d(x, frozen, b, padding=pad)
    W *= 2   # the caller's array changes; the snapshot does not
    np.testing.assert_array_equal(F.conv2d(x, frozen, b, padding=pad), before)
    assert not frozen.array.flags.writeable
    with pytest.raises(ValueError):
        frozen.array[0, 0, 0, 0] = 1.0


def test_auto_takes_winograd_on_small_maps_only_when_frozen(rng):
    """NIN's conv4_1024 shape, scaled down in channels: 36 tiles of one image."""
    x, W, b, dy, pad = _arrays(rng, CASES[0])
    frozen = convcore.FrozenWeights(W)
    assert F.select_algo(x.shape, W.shape, padding=pad) == "im2col"   # too few tiles per call
    F.conv2d(x, frozen, b, padding=pad)
    assert frozen.prepared_nbytes > 0   # Winograd ran and kept its transformed kernels


def test_float64_frozen_weights_work_and_keep_nothing(rng):
    x, W, b, dy, pad = _arrays(rng, CASES[1], np.float64)
    frozen = convcore.FrozenWeights(W)
    np.testing.assert_array_equal(F.conv2d(x, frozen, b, padding=pad),
                                  F.conv2d(x, W, b, padding=pad))
    np.testing.assert_array_equal(F.conv2d_backward(dy, x, frozen, padding=pad)[0],
                                  F.conv2d_backward(dy, x, W, padding=pad)[0])
    assert frozen.prepared_nbytes == 0


def test_other_ops_and_layers_accept_frozen_weights(rng):
    x, W, b, dy, pad = _arrays(rng, CASES[1])
    frozen = convcore.FrozenWeights(W)
    np.testing.assert_array_equal(F.conv2d(x, frozen, b, padding=pad, algo="im2col"),
                                  F.conv2d(x, W, b, padding=pad, algo="im2col"))
    assert repr(frozen).startswith("FrozenWeights(shape=(19, 5, 3, 3)")
    assert convcore.FrozenWeights(frozen).shape == W.shape


def test_bad_input(rng):
    with pytest.raises(ValueError, match="FrozenWeights: w must be 4-D"):
        convcore.FrozenWeights(np.zeros((3, 3), np.float32))
    with pytest.raises(TypeError, match="FrozenWeights: w must be float32 or float64"):
        convcore.FrozenWeights(np.zeros((1, 1, 3, 3), np.int32))
    x, W, b, dy, pad = _arrays(rng, CASES[1])
    frozen = convcore.FrozenWeights(W)
    with pytest.raises(ValueError, match="prepared belongs to another weight array"):
        _cpu.conv2d_forward(x, W, None, (1, 1), (1, 1, 1, 1), (1, 1), 1, "auto",
                            prepared=frozen._prepared)
    with pytest.raises(ValueError, match="w must have 4 dimensions|w must be 4-D|4-D"):
        _cpu.PreparedWeights(np.zeros((3, 3), np.float32))
