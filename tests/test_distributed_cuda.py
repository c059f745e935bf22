"""Data-parallel Trainer over MPI on CuPy arrays: 2 ranks launched by mpiexec (both on GPU 0),
gradients staged through host memory (CONVCORE_MPI_CUDA_AWARE=0), end with the parameters of one
process trained on CuPy arrays over the same global batches (float64).

The ranks run tests/distributed_cuda_worker.py; rank 1 starts from other parameters, so equal
results also show that Trainer broadcast rank 0's. Skipped without mpi4py, mpiexec, CuPy, a GPU
or convcore's CUDA backend.
"""
import json
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest

pytest.importorskip("mpi4py.MPI", reason="mpi4py is not installed (pip install '.[mpi]')")
cp = pytest.importorskip("cupy", reason="CuPy is not installed")

import convcore  # noqa: E402


def _mpiexec():
    """$MPIEXEC, else the mpiexec beside this Python (the mpich wheel's), else the PATH's."""
    if os.environ.get("MPIEXEC"):
        return os.environ["MPIEXEC"]
    beside = os.path.join(os.path.dirname(sys.executable), "mpiexec")
    return beside if os.path.exists(beside) else shutil.which("mpiexec")


def _skip_reason():
    from test_cuda import _gpu_reason  # convcore's CUDA backend and CuPy both see a GPU
    reason = _gpu_reason()
    if reason is None and _mpiexec() is None:
        reason = "no mpiexec"
    return reason


_REASON = _skip_reason()
pytestmark = pytest.mark.skipif(_REASON is not None, reason=str(_REASON))

WORKER = os.path.join(os.path.dirname(os.path.abspath(__file__)), "distributed_cuda_worker.py")


def _rank_env():
    env = dict(os.environ)
    package_parent = os.path.dirname(os.path.dirname(convcore.__file__))
    env["PYTHONPATH"] = os.pathsep.join(p for p in (package_parent, env.get("PYTHONPATH")) if p)
    env["CONVCORE_MPI_CUDA_AWARE"] = "0"  # the host-staged allreduce
    # Open MPI refuses to start as root without both; MPICH ignores them
    env["OMPI_ALLOW_RUN_AS_ROOT"] = "1"
    env["OMPI_ALLOW_RUN_AS_ROOT_CONFIRM"] = "1"
    # Open MPI's shared-memory transport without cross-memory attach (containers often forbid
    # the ptrace it needs); names for Open MPI 4 (vader) and 5 (sm), ignored elsewhere
    env.setdefault("OMPI_MCA_btl_vader_single_copy_mechanism", "none")
    env.setdefault("OMPI_MCA_btl_sm_single_copy_mechanism", "none")
    env["PYTHONUNBUFFERED"] = "1"
    return env


def test_two_ranks_on_cupy_equal_one_process(tmp_path):
    cmd = [_mpiexec(), "-n", "2", sys.executable, WORKER, "--mpi", str(tmp_path / "mpi")]
    done = subprocess.run(cmd, env=_rank_env(), capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr

    import distributed_cuda_worker as worker
    single = worker.train(comm=None)
    info = json.loads((tmp_path / "mpi" / "run.json").read_text())
    from mpi4py import MPI
    assert info["ranks"] == 2, (
        f"{_mpiexec()} started {info['ranks']}-rank worlds: is it the launcher of mpi4py's MPI "
        f"({MPI.Get_library_version().strip()})? Set MPIEXEC to that one")
    # the run stayed on the GPU and took the host-staged path
    assert info["param_types"] == ["cupy"] and info["flat_buffer"] == "cupy"
    assert info["cuda_aware"] is False
    assert info["ranks_agree"], "the ranks ended with different parameters"
    assert info["steps"] == len(single.train_loss_list) == worker.EPOCHS * 5
    with np.load(tmp_path / "mpi" / "params.npz") as ranks2:
        assert sorted(ranks2.files) == sorted(single.network.params)
        for key, value in single.network.params.items():
            assert isinstance(value, cp.ndarray), key
            # float64: the two runs sum the same gradients in a different order
            np.testing.assert_allclose(ranks2[key], cp.asnumpy(value), rtol=1e-9, atol=1e-12,
                                       err_msg=key)
    np.testing.assert_allclose(info["train_loss"], single.train_loss_list, rtol=1e-9)
    assert info["final_test_acc"] == single.final_test_acc
