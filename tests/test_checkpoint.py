"""Trainer checkpoints: Ctrl-C saves a checkpoint at the next step boundary, and a run resumed
from it (Trainer(..., checkpoint=path) or `python -m convcore.train --resume PATH`) ends with
exactly the parameters and records of a run that was never interrupted."""
import os
import pickle
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

import convcore


@pytest.fixture(autouse=True)
def _python_sigint_handler():
    """These tests send SIGINT to their own process. Run from a shell's background job, the
    process starts with SIGINT ignored (POSIX) and the Trainer rightly leaves a non-default
    handler alone; give it Python's default handler, as an interactive run has."""
    before = signal.signal(signal.SIGINT, signal.default_int_handler)
    yield
    signal.signal(signal.SIGINT, before)
from convcore.checkpoint import load_checkpoint
from convcore.models import DeepConvNet, SimpleConvNet
from convcore.train import Trainer, main


pytestmark = pytest.mark.usefixtures("one_thread_module")


def _data(n=60, side=8, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, 1, side, side)).astype(np.float32)
    t = (x[:, 0, : side // 2].sum(axis=(1, 2)) > 0).astype(np.int64)
    return x, t


def _simple_net(init_seed):
    return SimpleConvNet(input_dim=(1, 8, 8),
                         conv_param={'filter_num': 3, 'filter_size': 3, 'pad': 1, 'stride': 1},
                         hidden_size=10, output_size=2, weight_init_std=0.1, dtype=np.float32,
                         rng=np.random.default_rng(init_seed))


class SigintAtStep:
    """Delegates to a network, and sends this process SIGINT (a real Ctrl-C) while computing
    the gradient of step `step`."""

    def __init__(self, net, step):
        self._net, self._step, self._calls = net, step, 0

    def __getattr__(self, name):
        return getattr(self._net, name)

    def gradient(self, x, t):
        self._calls += 1
        if self._calls == self._step:
            os.kill(os.getpid(), signal.SIGINT)
        return self._net.gradient(x, t)


def _trainer(net, x, t, checkpoint=None, optimizer="Adam", **kw):
    return Trainer(net, x, t, x[:20], t[:20], epochs=3, mini_batch_size=16, optimizer=optimizer,
                   optimizer_param={'lr': 0.01}, verbose=False, seed=3, checkpoint=checkpoint, **kw)


def _assert_same_run(resumed, full):
    assert resumed.current_iter == full.current_iter
    for key, value in full.network.params.items():
        np.testing.assert_array_equal(resumed.network.params[key], value, err_msg=key)
    assert resumed.train_loss_list == full.train_loss_list
    assert resumed.train_acc_list == full.train_acc_list
    assert resumed.test_acc_list == full.test_acc_list
    assert resumed.final_test_acc == full.final_test_acc


@pytest.mark.parametrize("optimizer", ["Adam", "Momentum", "AdaGrad"])
@pytest.mark.parametrize("stop_step", [2, 4, 7])  # mid-epoch, an epoch's last step, later
def test_ctrl_c_then_resume_equals_an_uninterrupted_run(tmp_path, optimizer, stop_step):
    x, t = _data()  # 60 samples, batches of 16: 4 steps per epoch
    full = _trainer(_simple_net(1), x, t, optimizer=optimizer)
    full.train()
    path = str(tmp_path / "run.npz")
    with pytest.raises(KeyboardInterrupt):
        _trainer(SigintAtStep(_simple_net(1), stop_step), x, t, path, optimizer).train()
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # handler restored
    # a differently initialised network: everything must come from the checkpoint
    resumed = _trainer(_simple_net(99), x, t, path, optimizer)
    resumed.train()
    _assert_same_run(resumed, full)
    assert len(resumed.train_loss_list) == 12


def test_resume_restores_dropout_and_global_random_state(tmp_path):
    """DeepConvNet's Dropout draws from the global np.random (as in the book); periodic
    checkpoints (every 2 steps) and the exact resume must carry that state too."""
    x, t = _data(n=40, side=28)
    t = t % 10

    def net():
        return DeepConvNet(input_dim=(1, 28, 28), dtype=np.float32, rng=np.random.default_rng(5))

    np.random.seed(11)
    full = _trainer(net(), x, t)
    full.train()
    path = str(tmp_path / "deep.npz")
    np.random.seed(11)
    with pytest.raises(KeyboardInterrupt):
        _trainer(SigintAtStep(net(), 5), x, t, path, checkpoint_every=2).train()
    np.random.rand(7)  # disturb the global state: the checkpoint must restore it
    resumed = _trainer(net(), x, t, path)
    resumed.train()
    _assert_same_run(resumed, full)


def test_checkpoint_every_writes_and_loads(tmp_path):
    x, t = _data()
    path = str(tmp_path / "every.npz")
    trainer = _trainer(_simple_net(1), x, t, path, checkpoint_every=3)
    trainer.epochs = 1
    trainer.train()
    other = _trainer(_simple_net(2), x, t)
    load_checkpoint(path, other)
    assert other.current_iter == 4 and other.test_acc_list == trainer.test_acc_list
    for key, value in trainer.network.params.items():
        np.testing.assert_array_equal(other.network.params[key], value)
    np.testing.assert_array_equal(other.optimizer.m["W1"], trainer.optimizer.m["W1"])


def test_checkpoint_mismatch_and_pickles_are_refused(tmp_path):
    x, t = _data()
    path = str(tmp_path / "a.npz")
    trainer = _trainer(_simple_net(1), x, t, path)
    trainer.epochs = 1
    trainer.train()
    with pytest.raises(ValueError, match="batch_size=16"):
        Trainer(_simple_net(1), x, t, x, t, mini_batch_size=10, verbose=False, checkpoint=path).train()
    with pytest.raises(ValueError, match="Adam"):
        load_checkpoint(path, _trainer(_simple_net(1), x, t, optimizer="SGD"))
    wide = SimpleConvNet(input_dim=(1, 8, 8), conv_param={'filter_num': 4, 'filter_size': 3,
                                                          'pad': 1, 'stride': 1},
                         hidden_size=10, output_size=2, dtype=np.float32)
    with pytest.raises(ValueError, match="W1 has shape"):
        load_checkpoint(path, _trainer(wide, x, t))
    evil = str(tmp_path / "evil.npz")
    with open(evil, "wb") as f:
        pickle.dump({"meta": "x"}, f)
    with pytest.raises(ValueError, match="pickled data is refused"):
        load_checkpoint(evil, _trainer(_simple_net(1), x, t))
    with open(evil, "wb") as f:
        np.savez(f, meta=np.array([{"format": "convcore-checkpoint"}], dtype=object))
    with pytest.raises(ValueError):
        load_checkpoint(evil, _trainer(_simple_net(1), x, t))


def test_cli_ctrl_c_and_resume(tmp_path):
    """`python -m convcore.train` gets a real SIGINT after its first checkpoint, exits with 130,
    and --resume finishes the run with the parameters of an uninterrupted one."""
    pytest.importorskip("sklearn", reason="the CLI test trains on the 8x8 digits")
    args = ["--model", "simpleconvnet", "--data", "digits", "--epochs", "12", "--batch-size", "50",
            "--limit", "200", "--test-limit", "100", "--optimizer", "adam", "--lr", "0.01",
            "--threads", "1", "--quiet", "--checkpoint-every", "1"]
    out = tmp_path / "interrupted"
    ckpt = out / "checkpoint.npz"
    env = dict(os.environ)
    package_parent = os.path.dirname(os.path.dirname(os.path.abspath(convcore.__file__)))
    env["PYTHONPATH"] = os.pathsep.join([package_parent] + env.get("PYTHONPATH", "").split(os.pathsep))
    proc = subprocess.Popen([sys.executable, "-m", "convcore.train", *args, "--out", str(out)],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 600  # generous: a shared machine can be slow to start it
    while not ckpt.exists() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.005)
    proc.send_signal(signal.SIGINT)
    stdout, stderr = proc.communicate(timeout=600)
    assert proc.returncode == 130, (proc.returncode, stdout[-1000:], stderr[-2000:])
    assert "interrupted" in stderr
    assert not (out / "params.npz").exists()  # the run did stop before its end
    resumed = main(["--resume", str(ckpt), "--quiet"])
    full = main([*args, "--out", str(tmp_path / "full")])
    _assert_same_run(resumed, full)
    assert (out / "params.npz").exists()
