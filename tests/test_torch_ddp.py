"""DistributedDataParallel over convcore.torch modules: 2 gloo processes on this machine end
with the same parameters as one process on the same global batches."""
import os
import subprocess
import sys

import pytest

torch = pytest.importorskip("torch", reason="PyTorch is not installed (pip install '.[torch]')")
if not torch.distributed.is_available() or not torch.distributed.is_gloo_available():
    pytest.skip("this PyTorch build has no gloo backend", allow_module_level=True)

import convcore  # noqa: E402
import torch_ddp_worker as worker  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))


def test_ddp_two_processes_equal_single_process(tmp_path):
    env = dict(os.environ)
    # the children import the convcore under test, wherever it was imported from here
    package_parent = os.path.dirname(os.path.dirname(convcore.__file__))
    env["PYTHONPATH"] = os.pathsep.join([package_parent, HERE, env.get("PYTHONPATH", "")])
    env["OMP_NUM_THREADS"] = "1"
    store, out = tmp_path / "store", tmp_path / "rank0.pt"
    procs = [subprocess.Popen([sys.executable, os.path.join(HERE, "torch_ddp_worker.py"),
                               str(rank), "2", str(store), str(out)], env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
             for rank in range(2)]
    for p in procs:
        text, _ = p.communicate(timeout=300)
        assert p.returncode == 0, text
    ddp = torch.load(out)
    single = worker.train_single()
    assert ddp.keys() == single.keys()
    for key in single:
        # float64; the two runs add the same gradients in a different order
        assert torch.allclose(ddp[key], single[key], rtol=1e-12, atol=1e-13), key
        assert not torch.equal(single[key], worker.build_model().state_dict()[key]), key
