"""Trains a small book-style network on CuPy arrays with convcore.train.Trainer: one rank of
tests/test_distributed_cuda.py under mpiexec (`--mpi`), or, imported, the single process it is
compared with. Rank 0 writes the parameters (params.npz) and what the run saw (run.json).

    mpiexec -n 2 python tests/distributed_cuda_worker.py --mpi OUT_DIR
"""
import json
import os
import sys

import numpy as np

SAMPLES, TEST_SAMPLES, BATCH, EPOCHS, SEED = 69, 23, 16, 2, 3  # last step of an epoch: 5 samples


def data():
    """The same float64 samples on every rank (host arrays; the caller moves them)."""
    rng = np.random.default_rng(11)
    x = rng.standard_normal((SAMPLES + TEST_SAMPLES, 1, 8, 8))
    t = rng.integers(0, 10, SAMPLES + TEST_SAMPLES)
    return x[:SAMPLES], t[:SAMPLES], x[SAMPLES:], t[SAMPLES:]


def train(comm=None, perturb=False):
    """Trainer over CuPy arrays (comm: an MPI communicator or None); returns the trainer.
    perturb: start from other parameters than rank 0's (Trainer must broadcast rank 0's)."""
    import cupy as cp
    from convcore.models import build_model
    from convcore.train import Trainer

    net = build_model("simpleconvnet", input_dim=(1, 8, 8), output_size=10, dtype=np.float64,
                      conv_param={"filter_num": 6, "filter_size": 3, "pad": 1, "stride": 1},
                      hidden_size=20, weight_init_std=0.1, rng=np.random.default_rng(5))
    for key, value in net.params.items():
        net.params[key] = cp.asarray(value + 0.5 if perturb else value)
    x, t, x_test, t_test = (cp.asarray(a) for a in data())
    trainer = Trainer(net, x, t, x_test, t_test, epochs=EPOCHS, mini_batch_size=BATCH,
                      optimizer="adam", optimizer_param={"lr": 0.01}, verbose=False,
                      seed=SEED, comm=comm)
    trainer.train()
    return trainer


def main(out_dir):
    from mpi4py import MPI
    import cupy as cp

    comm = MPI.COMM_WORLD
    trainer = train(comm, perturb=comm.Get_rank() != 0)
    params = trainer.network.params
    info = {
        "ranks": comm.Get_size(),
        "param_types": sorted({type(p).__module__.split(".")[0] for p in params.values()}),
        "flat_buffer": type(trainer.dist._flat).__module__.split(".")[0],
        "cuda_aware": trainer.dist._cuda_aware,
        "steps": trainer.dist.steps,
        "train_loss": trainer.train_loss_list,
        "final_test_acc": trainer.final_test_acc,
    }
    # every rank must end with rank 0's parameters: gather them on rank 0 and compare there
    host = {key: cp.asnumpy(p) for key, p in params.items()}
    gathered = comm.gather(host, root=0)
    if comm.Get_rank() == 0:
        info["ranks_agree"] = all(np.array_equal(other[key], host[key])
                                  for other in gathered for key in host)
        os.makedirs(out_dir, exist_ok=True)
        np.savez(os.path.join(out_dir, "params.npz"), **host)
        with open(os.path.join(out_dir, "run.json"), "w") as f:
            json.dump(info, f)


if __name__ == "__main__":
    if len(sys.argv) != 3 or sys.argv[1] != "--mpi":
        sys.exit(__doc__)
    main(sys.argv[2])
