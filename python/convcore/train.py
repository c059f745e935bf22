"""Training: the book's Trainer, and a command line to train any model on a data set.

    python -m convcore.train --model deepconvnet --data fashion --epochs 20 \
        --batch-size 100 --optimizer adam --lr 0.001 --out runs/deepconvnet-fashion

prints one line per epoch (time, loss, train and test accuracy) and writes into --out:
params.npz (the trained parameters, loadable with net.load_params), metrics.json (every
number printed, plus the configuration) and loss.png (when matplotlib is installed).
"""
import argparse
import json
import math
import os
import sys
import time

import numpy as np

from . import optim

__all__ = ["Trainer", "main"]


class _Progress:
    """A one-line text progress bar: redrawn in place on a terminal, a few plain lines
    otherwise (so logs redirected to a file stay readable)."""

    def __init__(self, total, stream=None, width=30):
        self.total = max(total, 1)
        self.stream = stream if stream is not None else sys.stdout
        self.width = width
        self.tty = hasattr(self.stream, "isatty") and self.stream.isatty()
        self.last_draw = 0.0
        self.next_mark = 0.2

    def update(self, done, text=""):
        frac = done / self.total
        if self.tty:
            now = time.perf_counter()
            if now - self.last_draw < 0.1 and done < self.total:
                return
            self.last_draw = now
            filled = int(self.width * frac)
            bar = "#" * filled + "." * (self.width - filled)
            self.stream.write(f"\r  [{bar}] {done}/{self.total} {text}")
            if done >= self.total:
                self.stream.write("\r" + " " * (self.width + 40 + len(text)) + "\r")
            self.stream.flush()
        elif frac >= self.next_mark and done < self.total:
            self.stream.write(f"  {100 * frac:3.0f}% {done}/{self.total} {text}\n")
            self.stream.flush()
            while self.next_mark <= frac:
                self.next_mark += 0.2


class Trainer:
    """The book's Trainer: mini-batch training with per-epoch evaluation.

    optimizer: a name ('SGD', 'Momentum', 'Nesterov', 'AdaGrad', 'RMSprop', 'Adam') built with
    optimizer_param, or an object with update(params, grads).
    evaluate_sample_num_per_epoch: evaluate per-epoch accuracies on the first so many train
    and test samples (None: all of them); the final test accuracy always uses the whole set.

    Differences from the book, for speed and clarity: each epoch visits every training sample
    once in a fresh random order (the book draws batches with replacement); accuracies are
    measured at the end of each epoch; the recorded loss is the one computed by `gradient`
    (before the update) rather than a second forward pass after it.
    Extras: out_dir (save params.npz, metrics.json, loss.png there at the end), seed, stream.
    comm: an MPI communicator (mpi4py) for data-parallel training (convcore/distributed.py):
    the ranks split each mini-batch, average gradients with one allreduce per step, and rank 0
    evaluates, logs and saves; mini_batch_size stays the global batch.
    """

    def __init__(self, network, x_train, t_train, x_test, t_test, epochs=20,
                 mini_batch_size=100, optimizer='SGD', optimizer_param={'lr': 0.01},
                 evaluate_sample_num_per_epoch=None, verbose=True, *,
                 out_dir=None, seed=None, stream=None, comm=None):
        self.network = network
        self.verbose = verbose
        self.x_train, self.t_train = x_train, t_train
        self.x_test, self.t_test = x_test, t_test
        self.epochs = epochs
        self.batch_size = mini_batch_size
        self.evaluate_sample_num_per_epoch = evaluate_sample_num_per_epoch
        if isinstance(optimizer, str):
            self.optimizer = optim.get(optimizer, **dict(optimizer_param or {}))
        else:
            self.optimizer = optimizer
        self.train_size = x_train.shape[0]
        self.iter_per_epoch = max(math.ceil(self.train_size / mini_batch_size), 1)
        self.max_iter = int(epochs * self.iter_per_epoch)
        self.current_iter = 0
        self.current_epoch = 0
        self.train_loss_list = []
        self.train_acc_list = []
        self.test_acc_list = []
        self.epoch_time_list = []
        self.final_test_acc = None
        self.out_dir = out_dir
        self.dist = None  # data parallel over MPI (convcore.distributed), or this process alone
        if comm is not None:
            from .distributed import MPIDataParallel
            self.dist = MPIDataParallel(comm)
            seed = self.dist.common_seed(seed)  # every rank draws the same epoch orders
            self.verbose = verbose and self.dist.is_root
            self.dist.broadcast_params(network.params)
        self.rng = np.random.default_rng(seed)
        self.stream = stream if stream is not None else sys.stdout
        self._order = None

    def _log(self, text):
        if self.verbose:
            self.stream.write(text + "\n")
            self.stream.flush()

    def train_step(self):
        """One mini-batch: gradient, update; returns the batch's loss."""
        step_in_epoch = self.current_iter % self.iter_per_epoch
        if step_in_epoch == 0 or self._order is None:
            self._order = self.rng.permutation(self.train_size)
        batch = self._order[step_in_epoch * self.batch_size:(step_in_epoch + 1) * self.batch_size]
        if batch.size == 0:  # more steps than samples (tiny sets): draw a random batch
            batch = self.rng.choice(self.train_size, self.batch_size)
        if self.dist is not None:  # this rank's shard of the batch, one allreduce
            loss = self.dist.step(self.network, self.optimizer, self.x_train, self.t_train, batch)
            self.train_loss_list.append(loss)
            self.current_iter += 1
            return loss
        x_batch, t_batch = self.x_train[batch], self.t_train[batch]
        grads = self.network.gradient(x_batch, t_batch)
        loss = getattr(self.network, "last_loss", None)
        self.optimizer.update(self.network.params, grads)
        if loss is None:  # a network without last_loss (the book's own classes)
            loss = self.network.loss(x_batch, t_batch)
        self.train_loss_list.append(float(loss))
        self.current_iter += 1
        return float(loss)

    def evaluate(self):
        n = self.evaluate_sample_num_per_epoch
        x_tr, t_tr, x_te, t_te = self.x_train, self.t_train, self.x_test, self.t_test
        if n is not None:
            x_tr, t_tr, x_te, t_te = x_tr[:n], t_tr[:n], x_te[:n], t_te[:n]
        return self._on_root(lambda: (self.network.accuracy(x_tr, t_tr),
                                      self.network.accuracy(x_te, t_te)))

    def _on_root(self, fn):
        """fn() here; with MPI, on rank 0 only, its value broadcast to the other ranks."""
        return fn() if self.dist is None else self.dist.root_value(fn)

    def train(self):
        start = time.perf_counter()
        for _ in range(self.epochs):
            self.current_epoch += 1
            bar = _Progress(self.iter_per_epoch, self.stream) if self.verbose else None
            tic = time.perf_counter()
            losses = []
            for step in range(self.iter_per_epoch):
                losses.append(self.train_step())
                if bar:
                    bar.update(step + 1, f"loss {losses[-1]:.4f}")
            epoch_time = time.perf_counter() - tic
            train_acc, test_acc = self.evaluate()
            self.epoch_time_list.append(epoch_time)
            self.train_acc_list.append(train_acc)
            self.test_acc_list.append(test_acc)
            self._log(f"epoch {self.current_epoch:3d}/{self.epochs}  "
                      f"time {epoch_time:7.1f} s ({1000 * epoch_time / self.iter_per_epoch:.1f} "
                      f"ms/step)  loss {np.mean(losses):.4f}  train acc {train_acc:.4f}  "
                      f"test acc {test_acc:.4f}")
        self.final_test_acc = self._on_root(lambda: self.network.accuracy(self.x_test, self.t_test))
        self.total_time = time.perf_counter() - start
        self._log(f"=============== final test accuracy {self.final_test_acc:.4f} "
                  f"({self.total_time:.1f} s) ===============")
        if self.out_dir is not None:
            self.save(self.out_dir)
        return self.final_test_acc

    def save(self, out_dir, config=None):
        """params.npz, metrics.json and (with matplotlib) loss.png into out_dir (rank 0 only)."""
        if self.dist is not None and not self.dist.is_root:
            return
        os.makedirs(out_dir, exist_ok=True)
        if hasattr(self.network, "save_params"):
            self.network.save_params(os.path.join(out_dir, "params.npz"))
        metrics = {
            "epochs": self.current_epoch, "iter_per_epoch": self.iter_per_epoch,
            "batch_size": self.batch_size, "optimizer": type(self.optimizer).__name__,
            "train_acc": self.train_acc_list, "test_acc": self.test_acc_list,
            "epoch_time_s": self.epoch_time_list, "final_test_acc": self.final_test_acc,
            "train_loss": self.train_loss_list, **(config or {}),
        }
        with open(os.path.join(out_dir, "metrics.json"), "w") as f:
            json.dump(metrics, f, indent=1)
        png = os.path.join(out_dir, "loss.png")
        if plot_loss(self.train_loss_list, png, self.iter_per_epoch):
            self._log(f"wrote {png}")
        self._log(f"saved parameters and metrics to {out_dir}")


def plot_loss(losses, file_name, iter_per_epoch=None):
    """Write the loss curve as a PNG; returns False when matplotlib is not installed.
    Uses matplotlib's object API (no pyplot), so it never changes the caller's backend."""
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError:
        return False
    fig = Figure(figsize=(7, 4))
    FigureCanvasAgg(fig)
    ax = fig.add_subplot(1, 1, 1)
    steps = np.arange(len(losses))
    ax.plot(steps, losses, lw=0.5, alpha=0.5, label="mini-batch loss")
    if len(losses) >= 20:
        window = max(len(losses) // 50, 5)
        smooth = np.convolve(losses, np.ones(window) / window, mode="valid")
        ax.plot(steps[window - 1:], smooth, lw=1.5, label=f"mean of {window}")
    if iter_per_epoch:
        for x in range(iter_per_epoch, len(losses), iter_per_epoch):
            ax.axvline(x, color="grey", lw=0.3)
    ax.set_xlabel("step")
    ax.set_ylabel("loss")
    ax.set_yscale("log")
    ax.legend()
    fig.tight_layout()
    fig.savefig(file_name, dpi=100)
    return True


# ---- command line ------------------------------------------------------------------------------

def _load_data(name, data_dir):
    from . import data
    if name == "digits":
        return data.load_digits(flatten=False)
    return data.load_mnist(flatten=False, path=data_dir, kind=name)


def _parser():
    from .models import MODELS
    p = argparse.ArgumentParser(
        prog="python -m convcore.train",
        description="Train a convcore network and print per-epoch time and accuracy.")
    p.add_argument("--model", default="simpleconvnet", choices=sorted(MODELS))
    p.add_argument("--data", default="fashion", choices=["fashion", "mnist", "digits"])
    p.add_argument("--data-dir", default=None,
                   help="directory with the IDX files (default: CONVCORE_DATA, then the "
                        "Debian location /usr/share/datasets/fashion-mnist)")
    p.add_argument("--epochs", type=int, default=20)
    p.add_argument("--batch-size", type=int, default=100)
    p.add_argument("--optimizer", default="adam")
    p.add_argument("--lr", type=float, default=None, help="default: the optimizer's own")
    p.add_argument("--limit", type=int, default=None, help="use only the first N train samples")
    p.add_argument("--test-limit", type=int, default=None, help="use only the first N test samples")
    p.add_argument("--eval-samples", type=int, default=None,
                   help="per-epoch accuracies on the first N samples (default: all)")
    p.add_argument("--dtype", default="float32", choices=["float32", "float64"])
    p.add_argument("--threads", type=int, default=None, help="native threads (default: all)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default=None, help="output directory (default runs/MODEL-DATA)")
    p.add_argument("--quiet", action="store_true")
    p.add_argument("--distributed", action="store_true",
                   help="data parallel over MPI: launch with mpirun -n RANKS (needs mpi4py)")
    return p


def main(argv=None):
    args = _parser().parse_args(argv)
    import convcore
    from .models import build_model

    comm = None
    if args.distributed:
        from .distributed import threads_per_rank, world_comm
        comm = world_comm()
        if args.threads is None:
            args.threads = threads_per_rank(comm)
    if args.threads is not None:
        convcore.set_num_threads(args.threads)
    (x_train, t_train), (x_test, t_test) = _load_data(args.data, args.data_dir)
    if args.limit is not None:
        x_train, t_train = x_train[:args.limit], t_train[:args.limit]
    if args.test_limit is not None:
        x_test, t_test = x_test[:args.test_limit], t_test[:args.test_limit]
    dtype = np.dtype(args.dtype)
    x_train, x_test = x_train.astype(dtype, copy=False), x_test.astype(dtype, copy=False)
    net = build_model(args.model, input_dim=x_train.shape[1:], output_size=10, dtype=dtype,
                      rng=np.random.default_rng(args.seed))
    out = args.out or os.path.join("runs", f"{args.model}-{args.data}")
    opt_param = {} if args.lr is None else {"lr": args.lr}
    verbose = not args.quiet and (comm is None or comm.Get_rank() == 0)
    ranks = "" if comm is None else f" x {comm.Get_size()} MPI ranks"
    if verbose:
        print(f"{args.model} ({net.num_params()} parameters, {args.dtype}) on {args.data}: "
              f"{x_train.shape[0]} train / {x_test.shape[0]} test samples, "
              f"{args.optimizer} {opt_param or '(default lr)'}, batch {args.batch_size}, "
              f"{convcore.get_num_threads()} threads{ranks}, isa "
              f"{convcore.backends()['cpu'].get('isa', '?')}", flush=True)
    trainer = Trainer(net, x_train, t_train, x_test, t_test, epochs=args.epochs,
                      mini_batch_size=args.batch_size, optimizer=args.optimizer,
                      optimizer_param=opt_param,
                      evaluate_sample_num_per_epoch=args.eval_samples, verbose=verbose,
                      seed=args.seed, comm=comm)
    trainer.train()
    trainer.save(out, config={"model": args.model, "data": args.data, "dtype": args.dtype,
                              "lr": args.lr, "limit": args.limit, "seed": args.seed,
                              "threads": convcore.get_num_threads(),
                              "ranks": 1 if comm is None else comm.Get_size(),
                              "argv": sys.argv[1:] if argv is None else list(argv)})
    return trainer


if __name__ == "__main__":
    main()
