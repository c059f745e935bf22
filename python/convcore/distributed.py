"""Data-parallel training of the book-style networks over MPI (mpi4py).

    mpirun -n 4 python -m convcore.train --distributed --model deepconvnet --data fashion ...

or, in code, `Trainer(net, ..., comm=MPI.COMM_WORLD)`. Every rank holds the whole model and
the whole data set; each step:

1. all ranks draw the same epoch order (a seed common to all ranks), so they agree on the
   step's global mini-batch of `mini_batch_size` samples;
2. each rank computes the gradient of its contiguous shard of that batch (about
   mini_batch_size / size samples) -- over an epoch the ranks cover disjoint parts of the data;
3. the gradients, each weighted by its shard's share of the batch, and the loss are packed into
   one flat buffer and summed by ONE `Allreduce`: every rank then holds the gradient of the
   global batch's mean loss, exactly what one process computes on the whole batch;
4. every rank applies the same optimizer update to the same numbers, so parameters stay equal
   without being sent again (they are broadcast once, from rank 0, at the start).

Rank 0 evaluates accuracies and saves files; the others receive its numbers by broadcast.
Layers whose forward depends on the batch as a whole (BatchNormalization's batch statistics)
see only the shard, and Dropout masks come from per-rank generators: with those layers the run
is a valid data-parallel run, but not bit-for-bit the single-process one.

GPU arrays: when the gradients are CuPy arrays, the flat buffer is a CuPy array. With a
CUDA-aware MPI (Open MPI or MPICH built with CUDA/UCX support; say so with
CONVCORE_MPI_CUDA_AWARE=1) it is passed to Allreduce directly (mpi4py reads
`__cuda_array_interface__`), after synchronising the current stream so the kernels that wrote it
have finished; otherwise it is staged through host memory (one device->host and one host->device
copy per step).
"""
import os
import time

import numpy as np

__all__ = ["MPIDataParallel", "world_comm", "threads_per_rank"]


def world_comm():
    """MPI.COMM_WORLD, or ImportError saying what to install."""
    try:
        from mpi4py import MPI
    except ImportError:
        raise ImportError("--distributed needs mpi4py and an MPI library: "
                          "pip install 'convcore[mpi]' (mpi4py and the mpich wheel)") from None
    return MPI.COMM_WORLD


def threads_per_rank(comm):
    """Native threads for each rank: this host's cores shared among the ranks on this host
    (otherwise each rank would start one thread per core and they would oversubscribe)."""
    from mpi4py import MPI
    local = comm.Split_type(MPI.COMM_TYPE_SHARED)
    try:
        return max(1, (os.cpu_count() or 1) // local.Get_size())
    finally:
        local.Free()


def _array_module(arr):
    """cupy for CuPy arrays, else numpy (without importing cupy when it is not in use)."""
    mod = type(arr).__module__
    if mod.startswith("cupy"):
        import cupy
        return cupy
    return np


class MPIDataParallel:
    """The MPI side of a data-parallel Trainer: a common seed, shards, the one allreduce per
    step, and rank-0-only work. `comm_seconds` accumulates the time spent in Allreduce
    (including waiting for the slowest rank), `steps` counts the steps."""

    def __init__(self, comm):
        self.comm = comm
        self.rank = comm.Get_rank()
        self.size = comm.Get_size()
        self.is_root = self.rank == 0
        self.comm_seconds = 0.0
        self.steps = 0
        self._flat = None
        self._cuda_aware = os.environ.get("CONVCORE_MPI_CUDA_AWARE", "0") == "1"

    def common_seed(self, seed):
        """The same seed on every rank: rank 0's (drawn fresh when it is None)."""
        if self.is_root and seed is None:
            seed = int(np.random.SeedSequence().entropy % (2**63))
        return self.comm.bcast(seed, root=0)

    def broadcast_params(self, params):
        """Copies rank 0's parameters into every rank's arrays, in place (the layers hold
        references to them)."""
        flat = self._pack(params, [params[key] for key in params], 1.0, 0.0)
        self._collective(flat, broadcast=True)
        self._unpack(flat, params)

    def shard(self, batch):
        """This rank's contiguous part of the global batch's sample indices."""
        return np.array_split(batch, self.size)[self.rank]

    def step(self, network, optimizer, x, t, batch):
        """One data-parallel step over the global batch `batch`; returns the batch's mean loss."""
        local = self.shard(batch)
        params = network.params
        if local.size:
            grads = network.gradient(x[local], t[local])
            loss = getattr(network, "last_loss", None)
            if loss is None:  # a network without last_loss (the book's own classes)
                loss = network.loss(x[local], t[local])
        else:  # fewer samples than ranks: this rank contributes nothing
            grads, loss = {key: None for key in params}, 0.0
        # shard means weighted by their share of the batch sum to the batch mean
        weight = local.size / batch.size
        flat = self._pack(params, [grads[key] for key in params], weight, float(loss))
        self._collective(flat)
        grads = {key: np.empty_like(params[key]) if grads[key] is None else grads[key]
                 for key in params}
        self._unpack(flat, grads)
        optimizer.update(params, grads)
        self.steps += 1
        return float(flat[-1])

    def root_value(self, fn):
        """fn() computed on rank 0 and broadcast to all ranks."""
        return self.comm.bcast(fn() if self.is_root else None, root=0)

    # ---- the flat buffer -----------------------------------------------------------------

    def _pack(self, params, arrays, weight, scalar):
        """[weight * a for a in arrays] and `scalar` laid end to end in one reused buffer
        (None stands for zeros of the parameter's shape)."""
        first = next(iter(params.values()))
        xp = _array_module(first)
        total = sum(p.size for p in params.values()) + 1
        if self._flat is None or self._flat.size != total or self._flat.dtype != first.dtype \
                or _array_module(self._flat) is not xp:
            self._flat = xp.empty(total, dtype=first.dtype)
        flat, offset = self._flat, 0
        for p, a in zip(params.values(), arrays):
            view = flat[offset:offset + p.size]
            if a is None:
                view[...] = 0
            else:
                xp.multiply(a.reshape(-1), weight, out=view)
            offset += p.size
        flat[-1] = scalar * weight
        return flat

    @staticmethod
    def _unpack(flat, arrays):
        offset = 0
        for a in arrays.values():
            a[...] = flat[offset:offset + a.size].reshape(a.shape)
            offset += a.size

    def _collective(self, flat, broadcast=False):
        """Allreduce (sum) or broadcast from rank 0, in place; GPU buffers directly when MPI is
        CUDA-aware, else through host memory."""
        from mpi4py import MPI
        tic = time.perf_counter()
        if isinstance(flat, np.ndarray):
            buf, staged = flat, None
        elif self._cuda_aware:
            import cupy
            cupy.cuda.get_current_stream().synchronize()
            buf, staged = flat, None
        else:
            buf = staged = flat.get()
        if broadcast:
            self.comm.Bcast(buf, root=0)
        else:
            self.comm.Allreduce(MPI.IN_PLACE, buf, op=MPI.SUM)
        if staged is not None:
            flat.set(staged)
        if not broadcast:
            self.comm_seconds += time.perf_counter() - tic
