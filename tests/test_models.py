"""Networks: backprop gradients against finite differences (float64, tiny widths), the book's
architectures and parameter keys, and .npz persistence that never unpickles."""
import pickle

import numpy as np
import pytest

import convcore

from convcore import layers as L
from convcore.models import (FCN, MODELS, DeepConvNet, MobileNet, ResNet, SimpleConvNet, VGGNet,
                             XceptionNet, build_model)
from reference import rel_error

TINY = (1, 8, 8)
CLASSES = 4


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    """These shapes are tiny: on a loaded machine, waking OpenMP workers for each call costs
    far more than the work (a 70x slowdown was measured on 2 shared cores)."""
    before = convcore.get_num_threads()
    convcore.set_num_threads(1)
    yield
    convcore.set_num_threads(before)


def _tiny(name, rng):
    """Each architecture at a width where checking every gradient takes well under a second."""
    if name == "simpleconvnet":
        return SimpleConvNet(TINY, {'filter_num': 3, 'filter_size': 3, 'pad': 1, 'stride': 1},
                             hidden_size=6, output_size=CLASSES, weight_init_std=0.3, rng=rng)
    if name == "deepconvnet":
        convs = [{'filter_num': n, 'filter_size': 3, 'pad': 2 if i == 3 else 1, 'stride': 1}
                 for i, n in enumerate((2, 2, 3, 3, 4, 4))]
        return DeepConvNet(TINY, *convs, hidden_size=5, output_size=CLASSES, rng=rng)
    if name == "vgg":
        return VGGNet(TINY, blocks=((2,), (3, 3)), hidden_size=5, output_size=CLASSES, rng=rng)
    if name == "mobilenet":
        return MobileNet(TINY, stem_channels=3, blocks=((4, 1), (5, 2)), output_size=CLASSES,
                         rng=rng)
    if name == "xception":
        return XceptionNet(TINY, stem_channels=3, block_channels=(4, 5), output_size=CLASSES,
                           rng=rng)
    if name == "resnet":
        return ResNet(TINY, stem_channels=3, stages=((3, 1), (4, 2)), blocks_per_stage=1,
                      output_size=CLASSES, rng=rng)
    if name == "fcn":
        return FCN(TINY, width=2, output_size=CLASSES, rng=rng)
    raise KeyError(name)


def _freeze_dropout(net, rng):
    """Same dropout mask on every forward, so the loss is a function of the parameters."""
    for layer in net.all_layers():
        if isinstance(layer, L.Dropout):
            masks = {}
            layer._draw_mask = lambda shape, masks=masks: masks.setdefault(
                shape, rng.random(shape) > 0.5)


def _sampled_numeric_grad(net, x, t, key, rng, count=25, eps=1e-5):
    param = net.params[key]
    flat = param.reshape(-1)
    idx = rng.choice(flat.size, size=min(count, flat.size), replace=False)
    out = np.empty(idx.size)
    for j, i in enumerate(idx):
        old = flat[i]
        flat[i] = old + eps
        plus = net.loss(x, t)
        flat[i] = old - eps
        minus = net.loss(x, t)
        flat[i] = old
        out[j] = (plus - minus) / (2 * eps)
    return idx, out


@pytest.mark.parametrize("name", sorted(MODELS))
def test_network_gradient_matches_numerical(name):
    rng = np.random.default_rng(20240601)   # fixed: keeps every ReLU/max kink well away
    net = _tiny(name, rng)
    _freeze_dropout(net, rng)
    x = rng.standard_normal((3,) + TINY)
    t = rng.integers(0, CLASSES, 3)
    grads = net.gradient(x, t)
    assert set(grads) == set(net.params)
    for key in net.params:
        assert grads[key].shape == net.params[key].shape
        idx, num = _sampled_numeric_grad(net, x, t, key, rng)
        analytic = grads[key].reshape(-1)[idx]
        # some gradients are zero or nearly so by symmetry: a convolution bias before batch
        # normalisation (BN removes any per-channel shift), a BN scale before ReLU, a linear
        # map and another BN (scale invariance). Those are compared against an absolute floor
        # above the finite differences' rounding error (about 1e-16 * loss / eps).
        scale = max(np.max(np.abs(num)), np.max(np.abs(analytic)), 1e-5)
        err = np.max(np.abs(analytic - num)) / scale
        assert err < 1e-5, f"{name} {key}: relative error {err:.3g}"


def test_numerical_gradient_method_agrees():
    rng = np.random.default_rng(7)
    net = _tiny("simpleconvnet", rng)
    x, t = rng.standard_normal((2,) + TINY), rng.integers(0, CLASSES, 2)
    back = net.gradient(x, t)
    num = net.numerical_gradient(x, t)
    for key in back:
        assert rel_error(back[key], num[key]) < 1e-5, key


def test_one_hot_targets_give_the_same_gradient():
    rng = np.random.default_rng(8)
    net = _tiny("simpleconvnet", rng)
    x, t = rng.standard_normal((3,) + TINY), rng.integers(0, CLASSES, 3)
    g_labels = {k: v.copy() for k, v in net.gradient(x, t).items()}
    g_onehot = net.gradient(x, np.eye(CLASSES)[t])
    for key in g_labels:
        np.testing.assert_allclose(g_onehot[key], g_labels[key], rtol=1e-12, atol=1e-15)


def test_book_architectures_and_keys():
    simple = SimpleConvNet()
    shapes = {k: v.shape for k, v in simple.params.items()}
    assert shapes == {'W1': (30, 1, 5, 5), 'b1': (30,), 'W2': (30 * 12 * 12, 100),
                      'b2': (100,), 'W3': (100, 10), 'b3': (10,)}
    assert list(simple.layers) == ['Conv1', 'Relu1', 'Pool1', 'Affine1', 'Relu2', 'Affine2']
    assert isinstance(simple.last_layer, L.SoftmaxWithLoss)
    assert 0.005 < simple.params['W1'].std() < 0.015    # weight_init_std=0.01

    deep = DeepConvNet()
    assert sorted(deep.params) == sorted([f"{p}{i}" for p in "Wb" for i in range(1, 9)])
    assert [deep.params[f"W{i}"].shape[0] for i in range(1, 7)] == [16, 16, 32, 32, 64, 64]
    assert deep.params['W7'].shape == (64 * 4 * 4, 50)
    assert deep.params['W8'].shape == (50, 10)
    assert sum(isinstance(l, L.Pooling) for l in deep.layers) == 3
    assert sum(isinstance(l, L.Dropout) for l in deep.layers) == 2
    # He initialisation: std sqrt(2 / fan_in)
    np.testing.assert_allclose(deep.params['W7'].std(), np.sqrt(2 / 1024), rtol=0.05)
    assert [l.pad for l in deep.layers if isinstance(l, L.Convolution)] == [1, 1, 1, 2, 1, 1]


@pytest.mark.parametrize("name", sorted(MODELS))
def test_default_networks_take_28x28(name):
    net = build_model(name, dtype=np.float32)
    x = np.random.default_rng(0).random((2, 1, 28, 28), dtype=np.float32)
    y = net.predict(x)
    assert y.shape == (2, 10) and y.dtype == np.float32


def test_fcn_score_map_is_upsampled():
    net = FCN(dtype=np.float32)
    scores = net.score_map(np.zeros((1, 1, 28, 28), np.float32))
    assert scores.shape == (1, 10, 14, 14) == (1, 10, net.map_size, net.map_size)


def test_accuracy_counts_partial_batches():
    rng = np.random.default_rng(3)
    net = _tiny("simpleconvnet", rng)
    x = rng.standard_normal((7,) + TINY)
    pred = np.argmax(net.predict(x), axis=1)
    assert net.accuracy(x, pred, batch_size=3) == 1.0
    assert net.accuracy(x, np.eye(CLASSES)[pred], batch_size=100) == 1.0


def test_rebound_params_are_used():
    rng = np.random.default_rng(4)
    net = _tiny("simpleconvnet", rng)
    x = rng.standard_normal((2,) + TINY)
    net.params['W3'] = np.zeros_like(net.params['W3'])   # rebinding, not an in-place update
    net.params['b3'] = np.arange(CLASSES, dtype=np.float64)
    np.testing.assert_allclose(net.predict(x), np.tile(np.arange(CLASSES), (2, 1)))


# ---- persistence -------------------------------------------------------------------------------

@pytest.mark.parametrize("name", ["simpleconvnet", "resnet"])
def test_save_load_round_trip_exact(tmp_path, name):
    rng = np.random.default_rng(5)
    net = _tiny(name, rng)
    x = rng.standard_normal((4,) + TINY)
    net.gradient(x, rng.integers(0, CLASSES, 4))          # fills BN running statistics
    path = tmp_path / "weights.file"                       # the exact name is kept
    net.save_params(str(path))
    assert path.exists()
    other = _tiny(name, np.random.default_rng(6))
    other.load_params(str(path))
    for key in net.params:
        np.testing.assert_array_equal(other.params[key], net.params[key])
    for key in net.buffers:
        np.testing.assert_array_equal(other.buffers[key], net.buffers[key])
    np.testing.assert_array_equal(other.predict(x), net.predict(x))


def test_load_accepts_book_key_names(tmp_path):
    rng = np.random.default_rng(9)
    net = _tiny("simpleconvnet", rng)
    arrays = {k: rng.standard_normal(v.shape) for k, v in net.params.items()}
    assert sorted(arrays) == ['W1', 'W2', 'W3', 'b1', 'b2', 'b3']
    np.savez(tmp_path / "book.npz", **arrays)
    net.load_params(str(tmp_path / "book.npz"))
    for key in arrays:
        np.testing.assert_array_equal(net.params[key], arrays[key])
    # copied into the arrays the layers already hold
    assert net.layers['Conv1'].W is net.params['W1']


def test_load_refuses_pickle_files(tmp_path):
    net = _tiny("simpleconvnet", np.random.default_rng(10))
    path = tmp_path / "params.pkl"
    with open(path, "wb") as f:
        pickle.dump(dict(net.params), f)
    with pytest.raises(ValueError, match="pickle"):
        net.load_params(str(path))


def test_load_refuses_object_arrays(tmp_path):
    net = _tiny("simpleconvnet", np.random.default_rng(11))
    arrays = dict(net.params)
    arrays['W1'] = np.array([None, "code"], dtype=object)
    np.savez(tmp_path / "evil.npz", **arrays)    # savez pickles object arrays
    with pytest.raises(ValueError, match="object arrays"):
        net.load_params(str(tmp_path / "evil.npz"))


def test_load_rejects_mismatched_files(tmp_path):
    net = _tiny("simpleconvnet", np.random.default_rng(12))
    arrays = dict(net.params)
    del arrays['b3']
    np.savez(tmp_path / "missing.npz", **arrays)
    with pytest.raises(ValueError, match="missing \\['b3'\\]"):
        net.load_params(str(tmp_path / "missing.npz"))
    arrays = dict(net.params, W1=np.zeros((1, 1, 3, 3)))
    np.savez(tmp_path / "shape.npz", **arrays)
    with pytest.raises(ValueError, match="W1 has shape"):
        net.load_params(str(tmp_path / "shape.npz"))
