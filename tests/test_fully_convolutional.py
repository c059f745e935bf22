"""to_fully_convolutional: a classifier's Affine layers become convolutions. On the classifier's
own input size the scores equal its logits; on a larger canvas every output position of an
unpadded network equals the classifier run on the matching crop."""
import numpy as np
import pytest

from convcore import layers as L
from convcore.models import (DeepConvNet, FullyConvNet, ResNet, SimpleConvNet,
                             to_fully_convolutional)
from reference import rel_error


pytestmark = pytest.mark.usefixtures("one_thread_module")


def _simple(rng, input_dim=(1, 12, 12)):
    # odd filter size and a weight scale large enough for the logits to spread
    return SimpleConvNet(input_dim, {'filter_num': 4, 'filter_size': 3, 'pad': 0, 'stride': 1},
                         hidden_size=7, output_size=5, weight_init_std=0.4, rng=rng)


def _alive(net):
    """Positive biases keep the ReLUs of so narrow a net alive: with every unit of a layer dead
    for the test's input (it happened for some seeds), the FCN and the classifier both output the
    last biases and agree exactly where a test expects them to differ."""
    for key in net.params:
        if key.startswith("b"):
            net.params[key][...] = 0.5
    return net


def _deep(rng, input_dim=(1, 16, 16)):
    convs = [{'filter_num': n, 'filter_size': 3, 'pad': 2 if i == 3 else 1, 'stride': 1}
             for i, n in enumerate((3, 3, 4, 4, 5, 5))]
    return DeepConvNet(input_dim, *convs, hidden_size=6, output_size=4, rng=rng)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_same_logits_on_original_size_simple(rng, dtype):
    net = _simple(rng)
    for key in net.params:
        net.params[key][...] = rng.standard_normal(net.params[key].shape) * 0.4
    x = rng.standard_normal((3, 1, 12, 12))
    fcn = to_fully_convolutional(net)
    assert isinstance(fcn, FullyConvNet)
    assert fcn.window == (12, 12) and fcn.stride == (2, 2)
    scores = fcn.predict(x.astype(dtype))
    assert scores.shape == (3, 5, 1, 1)
    logits = net.predict(x.astype(dtype))
    tol = 1e-5 if dtype == np.float32 else 1e-12
    assert rel_error(scores[:, :, 0, 0], logits) < tol


def test_same_logits_on_original_size_deep(rng):
    net = _deep(rng)
    for key in net.params:  # non-zero biases too, so a dropped bias would show
        net.params[key][...] = rng.standard_normal(net.params[key].shape) * 0.5
    x = rng.standard_normal((2, 1, 16, 16)).astype(np.float32)
    fcn = to_fully_convolutional(net)
    assert fcn.stride == (8, 8)
    scores = fcn.predict(x)
    assert scores.shape == (2, 4, 1, 1)
    # dropout in inference mode: both scale by 1 - ratio
    assert rel_error(scores[:, :, 0, 0], net.predict(x, train_flg=False)) < 1e-5


@pytest.mark.parametrize("canvas", [(12, 12), (17, 21), (23, 14)])
def test_every_position_equals_the_crop_simple(rng, canvas):
    net = _simple(rng)
    for key in net.params:
        net.params[key][...] = rng.standard_normal(net.params[key].shape) * 0.4
    fcn = to_fully_convolutional(net)
    x = rng.standard_normal((2, 1) + canvas)
    scores = fcn.predict(x)
    out_h = (canvas[0] - 12) // 2 + 1
    out_w = (canvas[1] - 12) // 2 + 1
    assert scores.shape == (2, 5, out_h, out_w)
    rows, cols = fcn.crop_origins(out_h, out_w)
    crops = np.stack([x[:, :, r:r + 12, c:c + 12] for r in rows for c in cols], axis=1)
    per_crop = net.predict(crops.reshape(-1, 1, 12, 12)).reshape(2, out_h, out_w, 5)
    assert rel_error(scores, per_crop.transpose(0, 3, 1, 2)) < 1e-12


def test_padded_network_sees_context_a_crop_does_not(rng):
    """A padded network zero-pads every layer's map at the crop's border; the FCN has real
    activations there instead. Even for a crop on a zero surround they differ: the deeper
    layers' border cells are computed from the crop's own edge pixels (module docs)."""
    convs = [{'filter_num': n, 'filter_size': 3, 'pad': 1, 'stride': 1} for n in (3, 3, 4, 4, 5, 5)]
    canvas = np.zeros((1, 1, 48, 48))
    canvas[:, :, 16:32, 16:32] = rng.standard_normal((16, 16))
    # a net whose hidden layer is not wholly dead on this crop (with 6 units, positive biases do
    # not always suffice: one seed in CI gave every class the last bias, the same on both sides)
    for _ in range(50):
        net = _alive(DeepConvNet((1, 16, 16), *convs, hidden_size=6, output_size=4, rng=rng))
        if np.ptp(net.predict(canvas[:, :, 16:32, 16:32])) > 1e-6:
            break
    fcn = to_fully_convolutional(net)
    assert fcn.stride == (8, 8)
    scores = fcn.predict(canvas)
    assert scores.shape == (1, 4, 5, 5)
    assert rel_error(scores[:, :, 2, 2], net.predict(canvas[:, :, 16:32, 16:32])) > 1e-3
    # on the crop alone, the FCN is the classifier
    assert rel_error(fcn.predict(canvas[:, :, 16:32, 16:32])[:, :, 0, 0],
                     net.predict(canvas[:, :, 16:32, 16:32])) < 1e-12


def test_book_deepconvnet_pad2_layer_shifts_the_grid(rng):
    """The book's pad-2 conv grows its map by one cell on each side at half resolution, so no
    FCN position lines up exactly with a crop even on a zero surround (module docs)."""
    net = _alive(_deep(rng))
    fcn = to_fully_convolutional(net)
    canvas = np.zeros((1, 1, 48, 48))
    canvas[:, :, 16:32, 16:32] = rng.standard_normal((16, 16))
    scores = fcn.predict(canvas)
    # 48 -> 48 -> pool 24 -> 26 (pad 2) -> pool 13 -> pool 6 -> conv over 2x2: 5
    assert scores.shape == (1, 4, 5, 5)
    alone = net.predict(canvas[:, :, 16:32, 16:32])
    assert min(rel_error(scores[:, :, i, j], alone) for i in range(5) for j in range(5)) > 1e-6


def test_copies_weights_and_sees_later_changes_only_in_net(rng):
    net = _simple(rng)
    fcn = to_fully_convolutional(net)
    x = rng.standard_normal((1, 1, 12, 12))
    before = fcn.predict(x).copy()
    net.params['W1'] += 1.0
    assert np.array_equal(fcn.predict(x), before)


def test_infers_non_square_input_dim_when_given(rng):
    net = _simple(rng, input_dim=(1, 10, 14))
    with pytest.raises(ValueError, match="input_dim"):
        to_fully_convolutional(net)
    fcn = to_fully_convolutional(net, input_dim=(1, 10, 14))
    x = rng.standard_normal((2, 1, 10, 14))
    assert rel_error(fcn.predict(x)[:, :, 0, 0], net.predict(x)) < 1e-12


def test_rejects_what_cannot_be_converted(rng):
    with pytest.raises(ValueError, match="no Affine"):
        to_fully_convolutional([L.Convolution(np.ones((2, 1, 3, 3)), np.zeros(2))])
    with pytest.raises(ValueError, match="spatial"):
        to_fully_convolutional(ResNet((1, 8, 8), stages=((2, 1),), blocks_per_stage=1,
                                      stem_channels=2, output_size=3, rng=rng),
                               input_dim=(1, 8, 8))
    fcn = to_fully_convolutional(_simple(rng))
    with pytest.raises(ValueError, match="smaller"):
        fcn.predict(np.zeros((1, 1, 11, 12)))
    with pytest.raises(ValueError, match="train_flg"):
        fcn.predict(np.zeros((1, 1, 12, 12)), train_flg=True)
