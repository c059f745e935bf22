"""Step time of the MPI data-parallel Trainer, and the communication share.

    mpiexec -n 1 python bench/mpi_step.py --threads 2      # one rank, two threads
    mpiexec -n 2 python bench/mpi_step.py --threads 1      # two ranks, one thread each

Runs --steps training steps of --model on Fashion-MNIST (global batch --batch-size, so the
work per step is the same for any rank count) through Trainer(comm=MPI.COMM_WORLD) and prints,
on rank 0: the median step time, the share of the run spent inside the per-step Allreduce
(which includes waiting for the slowest rank), and a bare Allreduce of the same flat buffer after
a Barrier (the pure communication cost). With --threads 1 it also prints each step's CPU time
on the calling thread (time.thread_time), which a loaded shared machine does not inflate; MPICH
polls while it waits in Allreduce, so that CPU time includes the wait for the other rank.
"""
import argparse
import time

import numpy as np
from mpi4py import MPI

import convcore
from convcore import data
from convcore.models import build_model
from convcore.train import Trainer


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--model", default="deepconvnet")
    p.add_argument("--steps", type=int, default=20)
    p.add_argument("--batch-size", type=int, default=100)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--data-dir", default=None)
    args = p.parse_args()
    comm = MPI.COMM_WORLD
    convcore.set_num_threads(args.threads)
    (x, t), _ = data.load_mnist(flatten=False, path=args.data_dir, kind="fashion")
    x, t = x[:args.steps * args.batch_size].astype(np.float32), t[:args.steps * args.batch_size]
    net = build_model(args.model, input_dim=x.shape[1:], output_size=10, dtype=np.float32,
                      rng=np.random.default_rng(0))
    trainer = Trainer(net, x, t, x[:10], t[:10], epochs=1, mini_batch_size=args.batch_size,
                      optimizer="adam", verbose=False, seed=0, comm=comm)
    trainer.train_step()  # warm-up: first-call allocations, the flat buffer
    trainer.dist.comm_seconds = 0.0
    comm.Barrier()
    steps, cpu = [], []
    start = time.perf_counter()
    for _ in range(args.steps - 1):
        tic, cpu_tic = time.perf_counter(), time.thread_time()
        trainer.train_step()
        steps.append(time.perf_counter() - tic)
        cpu.append(time.thread_time() - cpu_tic)
    total = time.perf_counter() - start
    comm_share = trainer.dist.comm_seconds / total
    # the same Allreduce alone, every rank arriving together
    flat = np.zeros(sum(p.size for p in net.params.values()) + 1, np.float32)
    bare = []
    for _ in range(20):
        comm.Barrier()
        tic = time.perf_counter()
        comm.Allreduce(MPI.IN_PLACE, flat, op=MPI.SUM)
        bare.append(time.perf_counter() - tic)
    shares = comm.gather(comm_share, root=0)
    cpu_ms = comm.gather(1e3 * float(np.median(cpu)), root=0)
    if comm.Get_rank() == 0:
        print(f"{args.model}, global batch {args.batch_size}, {comm.Get_size()} rank(s) x "
              f"{args.threads} thread(s), {MPI.Get_library_version().splitlines()[0]}")
        print(f"step median {1e3 * np.median(steps):.1f} ms (min {1e3 * np.min(steps):.1f}); "
              f"allreduce share of the run {100 * np.mean(shares):.1f}% (ranks: "
              f"{', '.join(f'{100 * s:.1f}%' for s in shares)}); bare allreduce of "
              f"{flat.nbytes / 1e6:.2f} MB: median {1e3 * np.median(bare):.3f} ms")
        if args.threads == 1:
            print(f"step CPU time (thread) median per rank: "
                  f"{', '.join(f'{c:.1f} ms' for c in cpu_ms)}")


if __name__ == "__main__":
    main()
