"""Training end to end: a small network learns the 8x8 digits (scikit-learn) or, without
scikit-learn, a slice of Fashion-MNIST; the Trainer's records and files; the CLI."""
import io
import json
import os

import numpy as np
import pytest

import convcore
from convcore import data
from convcore.models import SimpleConvNet
from convcore.train import Trainer, main


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    """Batches here are small: on a loaded 2-core machine, waking OpenMP workers for every
    call costs more than the work itself."""
    before = convcore.get_num_threads()
    convcore.set_num_threads(1)
    yield
    convcore.set_num_threads(before)


def _small_data():
    """(name, ((x, t), (x_test, t_test))), preferring the 8x8 digits."""
    try:
        import sklearn  # noqa: F401
        return "digits", data.load_digits(flatten=False)
    except ImportError:
        pass
    try:
        (x, t), (xt, tt) = data.load_mnist(flatten=False)
    except FileNotFoundError as exc:
        pytest.skip("no training data: scikit-learn is not installed (pip install "
                    f"scikit-learn) and Fashion-MNIST was not found ({exc})")
    return "fashion", ((x[:3000], t[:3000]), (xt[:1000], tt[:1000]))


def test_small_network_learns():
    name, ((x, t), (xt, tt)) = _small_data()
    x, xt = x.astype(np.float32), xt.astype(np.float32)
    size = x.shape[2]
    net = SimpleConvNet(input_dim=x.shape[1:],
                        conv_param={'filter_num': 8, 'filter_size': 3, 'pad': 1, 'stride': 1},
                        hidden_size=64, output_size=10, weight_init_std=0.1,
                        dtype=np.float32, rng=np.random.default_rng(0))
    epochs = 12 if name == "digits" else 3            # about 350 steps either way
    trainer = Trainer(net, x, t, xt, tt, epochs=epochs, mini_batch_size=50,
                      optimizer='Adam', optimizer_param={'lr': 0.005}, verbose=False, seed=0)
    acc = trainer.train()
    chance = 0.1
    threshold = 0.9 if name == "digits" else 0.7
    assert acc > threshold, f"{name} ({size}x{size}): test accuracy {acc:.3f} (chance {chance})"
    assert len(trainer.train_loss_list) == trainer.max_iter
    assert np.mean(trainer.train_loss_list[-20:]) < 0.5 * np.mean(trainer.train_loss_list[:20])


def _tiny_problem(n=60, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, 1, 8, 8)).astype(np.float32)
    t = (x[:, 0, :4].sum(axis=(1, 2)) > 0).astype(np.uint8)
    return x, t


def _tiny_net():
    return SimpleConvNet(input_dim=(1, 8, 8),
                         conv_param={'filter_num': 2, 'filter_size': 3, 'pad': 0, 'stride': 1},
                         hidden_size=8, output_size=2, weight_init_std=0.1,
                         dtype=np.float32, rng=np.random.default_rng(1))


def test_trainer_records_and_files(tmp_path):
    x, t = _tiny_problem()
    out = io.StringIO()
    trainer = Trainer(_tiny_net(), x, t, x[:20], t[:20], epochs=2, mini_batch_size=25,
                      optimizer='sgd', optimizer_param={'lr': 0.1},
                      evaluate_sample_num_per_epoch=10, verbose=True,
                      out_dir=str(tmp_path), seed=0, stream=out)
    trainer.train()
    assert trainer.iter_per_epoch == 3 and trainer.max_iter == 6
    assert len(trainer.train_loss_list) == 6
    assert len(trainer.train_acc_list) == len(trainer.test_acc_list) == 2
    assert len(trainer.epoch_time_list) == 2
    log = out.getvalue()
    assert "epoch   1/2" in log and "test acc" in log and "ms/step" in log
    assert "final test accuracy" in log
    assert os.path.exists(tmp_path / "params.npz")
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert metrics["test_acc"] == trainer.test_acc_list
    try:
        import matplotlib  # noqa: F401
        assert (tmp_path / "loss.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    except ImportError:
        assert not (tmp_path / "loss.png").exists()
    reloaded = _tiny_net()
    reloaded.load_params(str(tmp_path / "params.npz"))
    np.testing.assert_array_equal(reloaded.predict(x), trainer.network.predict(x))


def test_trainer_accepts_optimizer_objects_and_book_networks():
    """A network with only the book's interface (no last_loss) still trains."""
    class BookStyle:
        def __init__(self, inner):
            self.inner, self.params = inner, inner.params
            self.loss_calls = 0

        def gradient(self, x, t):
            return self.inner.gradient(x, t)

        def loss(self, x, t):
            self.loss_calls += 1
            return self.inner.loss(x, t)

        def accuracy(self, x, t):
            return self.inner.accuracy(x, t)

    x, t = _tiny_problem()
    net = BookStyle(_tiny_net())
    trainer = Trainer(net, x, t, x, t, epochs=1, mini_batch_size=30,
                      optimizer=convcore.optim.Momentum(lr=0.05), verbose=False)
    trainer.train()
    assert net.loss_calls == 2 and len(trainer.train_loss_list) == 2


def test_cli_runs(tmp_path, capsys):
    pytest.importorskip("sklearn", reason="the CLI smoke test uses the 8x8 digits")
    out = tmp_path / "run"
    trainer = main(["--model", "simpleconvnet", "--data", "digits", "--epochs", "1",
                    "--batch-size", "50", "--limit", "200", "--test-limit", "100",
                    "--optimizer", "adam", "--lr", "0.01", "--threads", "1",
                    "--out", str(out)])
    printed = capsys.readouterr().out
    assert "epoch   1/1" in printed and "test acc" in printed
    assert trainer.x_train.shape == (200, 1, 8, 8) and trainer.x_train.dtype == np.float32
    assert (out / "params.npz").exists() and (out / "metrics.json").exists()
    assert json.loads((out / "metrics.json").read_text())["model"] == "simpleconvnet"


def test_cosine_lr_schedule_follows_the_step_count():
    """lr_schedule='cosine' sets the optimizer's lr before every step to
    base * (1 + cos(pi * step / max_iter)) / 2; the default leaves it alone."""
    class RecordingSGD(convcore.optim.SGD):
        def __init__(self, lr):
            super().__init__(lr)
            self.seen = []

        def update(self, params, grads):
            self.seen.append(self.lr)
            super().update(params, grads)

    x, t = _tiny_problem()
    opt = RecordingSGD(lr=0.2)
    trainer = Trainer(_tiny_net(), x, t, x, t, epochs=2, mini_batch_size=25, optimizer=opt,
                      verbose=False, lr_schedule="cosine")
    trainer.train()
    steps = np.arange(trainer.max_iter)
    expected = 0.2 * 0.5 * (1 + np.cos(np.pi * steps / trainer.max_iter))
    np.testing.assert_allclose(opt.seen, expected, rtol=1e-12)
    assert opt.seen[0] == 0.2 and opt.seen[-1] < 0.2 * 0.1

    constant = RecordingSGD(lr=0.2)
    Trainer(_tiny_net(), x, t, x, t, epochs=1, mini_batch_size=25, optimizer=constant,
            verbose=False).train()
    assert constant.seen == [0.2] * 3


def test_lr_schedule_rejects_unknown_names():
    x, t = _tiny_problem()
    with pytest.raises(ValueError, match="lr_schedule"):
        Trainer(_tiny_net(), x, t, x, t, optimizer="sgd", lr_schedule="linear")
