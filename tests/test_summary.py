"""convcore.summary: shapes, parameter counts, multiply-adds, memory and receptive fields,
checked against hand counts and against running the networks."""
import numpy as np
import pytest

import convcore
from convcore.layers import Convolution, Pooling, Relu, Sigmoid
from convcore.models import MODELS, DeepConvNet


def _conv(rng, c_in, c_out, k, stride=1, pad=0):
    return Convolution(rng.standard_normal((c_out, c_in, k, k)), rng.standard_normal(c_out),
                       stride, pad)


def test_deepconvnet_parameter_count_is_the_books():
    net = DeepConvNet()
    s = convcore.summary(net, (1, 28, 28))
    # (3*3*C + 1)*K per conv, (D_in + 1)*D_out per affine: 160 + 2320 + 4640 + 9248 + 18496 +
    # 36928 + 51250 + 510
    assert s.totals["params"] == 123552 == net.num_params()
    convs = [r for r in s.rows if r.kind == "Convolution"]
    assert [r.params for r in convs] == [160, 2320, 4640, 9248, 18496, 36928]
    assert [r.output_shape for r in convs][3] == (1, 32, 16, 16)     # pad 2 grows 14 -> 16
    assert convs[0].macs == 28 * 28 * 16 * 9
    assert [r.receptive_field for r in convs] == [(3, 3), (5, 5), (10, 10), (14, 14), (24, 24),
                                                  (32, 32)]


def test_seven_by_seven_versus_three_three_by_three(rng):
    c, size = 64, 56
    one = [_conv(rng, c, c, 7, pad=3)]
    three = [_conv(rng, c, c, 3, pad=1) for _ in range(3)]
    s1 = convcore.summary(one, (c, size, size))
    s3 = convcore.summary(three, (c, size, size))
    assert s1.totals["params"] == (7 * 7 * c + 1) * c == 200768
    assert s3.totals["params"] == 3 * (3 * 3 * c + 1) * c == 110784
    assert s1.totals["macs"] == size * size * c * c * 49
    assert s3.totals["macs"] == 3 * size * size * c * c * 9
    # the same receptive field, with 45% fewer parameters
    assert s1.totals["receptive_field"] == s3.totals["receptive_field"] == (7, 7)
    assert s1.totals["output_shape"] == s3.totals["output_shape"] == (1, c, size, size)
    # memory: float64 weights -> 8 bytes; three layers keep three activations
    assert s1.totals["fwd_bytes"] == size * size * c * 8
    assert s3.totals["fwd_bytes"] == 3 * size * size * c * 8


@pytest.mark.parametrize("name", sorted(MODELS))
def test_every_model_matches_a_forward_run(name):
    net = MODELS[name](dtype=np.float32, rng=np.random.default_rng(0))
    s = convcore.summary(net, (2, 1, 28, 28))
    assert s.totals["params"] == net.num_params()
    x = np.random.default_rng(1).standard_normal((2, 1, 28, 28)).astype(np.float32)
    assert s.totals["output_shape"] == net.predict(x).shape
    assert s.itemsize == 4
    # every top-level layer's output shape, by running them one by one
    layers = list(net.layers.values()) if isinstance(net.layers, dict) else list(net.layers)
    depth0 = [r for r in s.rows if r.depth == 0]
    assert len(depth0) == len(layers)
    for row, layer in zip(depth0, layers):
        x = layer.forward(x, False) if layer.takes_train_flg else layer.forward(x)
        assert row.output_shape == x.shape, row
    text = str(s)
    assert text.splitlines()[-1].startswith("output (2, 10), receptive field")
    assert f"total params: {net.num_params():,}" in text


def test_bad_arguments_are_named():
    with pytest.raises(ValueError, match="input_shape"):
        convcore.summary(DeepConvNet(), (1, 1, 28, 28, 1))
    with pytest.raises(ValueError, match="Affine"):
        convcore.summary(DeepConvNet(), (1, 40, 40))       # the affine layer expects 28x28 input

    class Strange(Relu):
        pass

    assert convcore.summary([Pooling(2, 2), Sigmoid(), Strange()], (3, 8, 8)).totals["macs"] == 0

    class Unknown:
        params = ()

        def sublayers(self):
            return ()

    with pytest.raises(TypeError, match="Unknown"):
        convcore.summary([Unknown()], (3, 8, 8))
