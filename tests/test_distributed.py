"""Data-parallel training over MPI: 2 ranks launched by mpiexec end with the same parameters as
one process trained on the same global batches; the flat-buffer pieces on a 1-rank communicator."""
import json
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest

MPI = pytest.importorskip("mpi4py.MPI", reason="mpi4py is not installed (pip install '.[mpi]')")
pytest.importorskip("sklearn", reason="the run trains on scikit-learn's digits")

import convcore  # noqa: E402
from convcore import optim  # noqa: E402
from convcore.distributed import MPIDataParallel  # noqa: E402
from convcore.models import build_model  # noqa: E402
from convcore.train import main  # noqa: E402


def _mpiexec():
    beside = os.path.join(os.path.dirname(sys.executable), "mpiexec")
    return beside if os.path.exists(beside) else shutil.which("mpiexec")


ARGS = ["--model", "simpleconvnet", "--data", "digits", "--epochs", "2", "--limit", "230",
        "--test-limit", "60", "--batch-size", "40", "--dtype", "float64", "--optimizer", "adam",
        "--seed", "3", "--quiet"]


@pytest.mark.skipif(_mpiexec() is None, reason="no mpiexec (pip install mpich)")
def test_two_ranks_equal_one_process(tmp_path):
    env = dict(os.environ)
    package_parent = os.path.dirname(os.path.dirname(convcore.__file__))
    env["PYTHONPATH"] = os.pathsep.join([package_parent, env.get("PYTHONPATH", "")])
    cmd = [_mpiexec(), "-n", "2", sys.executable, "-m", "convcore.train", "--distributed",
           "--threads", "1", *ARGS, "--out", str(tmp_path / "mpi")]
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    # 230 samples in batches of 40: the last step of each epoch has 30 (15 per rank)
    single = main([*ARGS, "--threads", "1", "--out", str(tmp_path / "single")])
    with np.load(tmp_path / "mpi" / "params.npz") as ranks2, \
            np.load(tmp_path / "single" / "params.npz") as ranks1:
        assert sorted(ranks2.files) == sorted(ranks1.files)
        for key in ranks1.files:
            # float64: the two runs sum the same gradients in a different order
            np.testing.assert_allclose(ranks2[key], ranks1[key], rtol=1e-9, atol=1e-12,
                                       err_msg=key)
    metrics = json.loads((tmp_path / "mpi" / "metrics.json").read_text())
    assert metrics["ranks"] == 2
    np.testing.assert_allclose(metrics["train_loss"], single.train_loss_list, rtol=1e-9)
    assert metrics["final_test_acc"] == single.final_test_acc


def _net(seed):
    return build_model("simpleconvnet", input_dim=(1, 8, 8), output_size=10, dtype=np.float64,
                       rng=np.random.default_rng(seed))


def test_one_rank_step_is_the_plain_step(rng):
    x = rng.standard_normal((9, 1, 8, 8))
    t = rng.integers(0, 10, 9)
    batch = rng.permutation(9)
    a, b = _net(1), _net(1)
    dp = MPIDataParallel(MPI.COMM_SELF)
    loss = dp.step(a, optim.Adam(), x, t, batch)
    grads = b.gradient(x[batch], t[batch])
    optim.Adam().update(b.params, grads)
    assert loss == pytest.approx(b.last_loss, rel=1e-12)
    for key in a.params:
        np.testing.assert_array_equal(a.params[key], b.params[key])
    assert dp.steps == 1 and dp.comm_seconds >= 0


def test_flat_buffer_and_shards(rng):
    dp = MPIDataParallel(MPI.COMM_SELF)
    params = {"W": rng.standard_normal((3, 4)), "b": rng.standard_normal(5)}
    grads = [rng.standard_normal((3, 4)), None]
    flat = dp._pack(params, grads, 0.25, 2.0)
    assert flat.shape == (18,) and flat[-1] == 0.5
    out = {"W": np.empty((3, 4)), "b": np.empty(5)}
    dp._unpack(flat, out)
    np.testing.assert_array_equal(out["W"], 0.25 * grads[0])
    np.testing.assert_array_equal(out["b"], np.zeros(5))
    batch = rng.permutation(7)
    np.testing.assert_array_equal(dp.shard(batch), batch)  # one rank holds the whole batch
    assert dp.common_seed(None) is not None and dp.common_seed(5) == 5


class _Rank:
    """Stands in for rank `rank` of a communicator of `size` for the shard arithmetic."""

    def __init__(self, rank, size):
        self.rank, self.size = rank, size

    def Get_rank(self):
        return self.rank

    def Get_size(self):
        return self.size


def test_shards_partition_the_batch(rng):
    batch = rng.permutation(11)
    shards = [MPIDataParallel(_Rank(r, 3)).shard(batch) for r in range(3)]
    assert [s.size for s in shards] == [4, 4, 3]
    np.testing.assert_array_equal(np.concatenate(shards), batch)
