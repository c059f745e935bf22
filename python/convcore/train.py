"""Training: the book's Trainer, and a command line to train any model on a data set.

    python -m convcore.train --model deepconvnet --data fashion --epochs 20 \
        --batch-size 100 --optimizer adam --lr 0.001 --out runs/deepconvnet-fashion

prints one line per epoch (time, loss, train and test accuracy) and writes into --out:
params.npz (the trained parameters, loadable with net.load_params), metrics.json (every
number printed, plus the configuration) and loss.png (when matplotlib is installed).

Ctrl-C finishes the current step, writes --out/checkpoint.npz (also written after every epoch
and every --checkpoint-every steps) and stops; a second Ctrl-C stops at once. Continue with

    python -m convcore.train --resume runs/deepconvnet-fashion/checkpoint.npz

which gives the same parameters as a run that was never interrupted.
"""
import argparse
import contextlib
import json
import math
import os
import signal
import sys
import threading
import time

import numpy as np

from . import optim
from .checkpoint import load_checkpoint, read_checkpoint_config, save_checkpoint

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


# Learning-rate schedules: the factor applied to the optimizer's lr at a fraction of the run done.
# "cosine" is the half-cosine annealing of Loshchilov & Hutter (SGDR, ICLR 2017) without restarts:
# full lr at the start, falling smoothly to zero at the last step.
LR_SCHEDULES = {
    None: lambda progress: 1.0,
    "constant": lambda progress: 1.0,
    "cosine": lambda progress: 0.5 * (1.0 + math.cos(math.pi * min(progress, 1.0))),
}


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
    lr_schedule: None/'constant' (the book: a fixed lr) or 'cosine' (the optimizer's lr annealed
    along a half cosine to zero over the run's steps).
    Extras: out_dir (save params.npz, metrics.json, loss.png there at the end), seed, stream.

    Checkpoints (checkpoint=path, an .npz file; see convcore.checkpoint): written after every
    epoch, every `checkpoint_every` steps, and on Ctrl-C, which lets the current step finish,
    saves, and raises KeyboardInterrupt (a second Ctrl-C raises at once, without saving). If the
    file exists when train() starts, training resumes from it and ends with exactly the
    parameters of a run that was never interrupted (same thread count and data).
    `checkpoint_config` is saved alongside (the command line's settings).

    comm: an MPI communicator (mpi4py) for data-parallel training (convcore/distributed.py):
    the ranks split each mini-batch, average gradients with one allreduce per step, and rank 0
    evaluates, logs and saves (checkpoints included); mini_batch_size stays the global batch.
    """

    def __init__(self, network, x_train, t_train, x_test, t_test, epochs=20,
                 mini_batch_size=100, optimizer='SGD', optimizer_param={'lr': 0.01},
                 evaluate_sample_num_per_epoch=None, verbose=True, *,
                 out_dir=None, seed=None, stream=None,
                 checkpoint=None, checkpoint_every=None, checkpoint_config=None, comm=None,
                 lr_schedule=None):
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
        if lr_schedule not in LR_SCHEDULES:
            raise ValueError(f"Trainer: lr_schedule must be one of {sorted(LR_SCHEDULES, key=str)}, "
                             f"not {lr_schedule!r}")
        self.lr_schedule = lr_schedule
        self.base_lr = getattr(self.optimizer, "lr", None)
        if lr_schedule is not None and self.base_lr is None:
            raise ValueError("Trainer: lr_schedule needs an optimizer with an `lr` attribute")
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
        self.checkpoint = checkpoint
        self.checkpoint_every = checkpoint_every
        self.checkpoint_config = checkpoint_config
        self._stop_requested = False

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
        self._schedule_lr()
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

    def _schedule_lr(self):
        """Sets the optimizer's lr for the step about to run (a function of the step count
        alone, so a resumed run follows the same schedule)."""
        if self.lr_schedule is not None:
            progress = self.current_iter / max(self.max_iter, 1)
            self.optimizer.lr = self.base_lr * LR_SCHEDULES[self.lr_schedule](progress)

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
        if self.checkpoint is not None and os.path.exists(self.checkpoint):
            self.load_checkpoint(self.checkpoint)
        start = time.perf_counter()
        with self._ctrl_c_finishes_the_step():
            while len(self.test_acc_list) < self.epochs:
                self._train_epoch()
        self.final_test_acc = self._on_root(lambda: self.network.accuracy(self.x_test, self.t_test))
        self.total_time = time.perf_counter() - start
        self._log(f"=============== final test accuracy {self.final_test_acc:.4f} "
                  f"({self.total_time:.1f} s) ===============")
        if self.out_dir is not None:
            self.save(self.out_dir)
        return self.final_test_acc

    def _train_epoch(self):
        """The rest of the current epoch (all of it unless resumed mid-epoch), then its evaluation."""
        self.current_epoch = len(self.test_acc_list) + 1
        first = self.current_iter - (self.current_epoch - 1) * self.iter_per_epoch
        bar = _Progress(self.iter_per_epoch, self.stream) if self.verbose else None
        tic = time.perf_counter()
        for step in range(first, self.iter_per_epoch):
            loss = self.train_step()
            if bar:
                bar.update(step + 1, f"loss {loss:.4f}")
            if self.checkpoint_every and self.current_iter % self.checkpoint_every == 0:
                self.save_checkpoint()
            self._stop_if_requested()
        epoch_time = time.perf_counter() - tic
        train_acc, test_acc = self.evaluate()
        self.epoch_time_list.append(epoch_time)
        self.train_acc_list.append(train_acc)
        self.test_acc_list.append(test_acc)
        steps = self.iter_per_epoch - first
        self._log(f"epoch {self.current_epoch:3d}/{self.epochs}  "
                  f"time {epoch_time:7.1f} s ({1000 * epoch_time / max(steps, 1):.1f} "
                  f"ms/step)  loss {np.mean(self.train_loss_list[-self.iter_per_epoch:]):.4f}  "
                  f"train acc {train_acc:.4f}  test acc {test_acc:.4f}")
        self.save_checkpoint()
        self._stop_if_requested()

    # ---- checkpoints and Ctrl-C ----------------------------------------------------------------

    def save_checkpoint(self, path=None):
        """Writes the whole training state to `path` (default: the `checkpoint` given)."""
        path = path or self.checkpoint
        if path is not None and (self.dist is None or self.dist.is_root):
            save_checkpoint(path, self, self.checkpoint_config)

    def load_checkpoint(self, path):
        """Continues from a checkpoint: parameters, optimizer state, position, random states and
        records. Returns the configuration saved with it."""
        config = load_checkpoint(path, self)
        self._log(f"resuming from {path}: {len(self.test_acc_list)} epochs and "
                  f"{self.current_iter} steps done")
        return config

    @contextlib.contextmanager
    def _ctrl_c_finishes_the_step(self):
        """While training, the first Ctrl-C only asks to stop at the next step boundary, where
        the state is consistent (an optimizer update cut in half would leave it torn); a native
        call it lands in is run again from the start. Installed only over Python's default
        handler and on the main thread (the only one that receives signals)."""
        if (threading.current_thread() is not threading.main_thread()
                or signal.getsignal(signal.SIGINT) is not signal.default_int_handler):
            yield
            return

        def on_sigint(signum, frame):
            if self._stop_requested:  # the second Ctrl-C: stop now, the last checkpoint stands
                raise KeyboardInterrupt
            self._stop_requested = True
            self._log("\nCtrl-C: stopping after this step (again to stop at once)")

        self._stop_requested = False
        previous = signal.signal(signal.SIGINT, on_sigint)
        try:
            yield
        finally:
            signal.signal(signal.SIGINT, previous)

    def _stop_if_requested(self):
        if self._stop_requested:
            self._stop_requested = False
            self.save_checkpoint()
            if self.checkpoint is not None:
                self._log(f"saved checkpoint {self.checkpoint} after {self.current_iter} steps")
            raise KeyboardInterrupt

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
    p.add_argument("--lr-schedule", default="constant", choices=["constant", "cosine"],
                   help="constant (the book) or cosine: the lr annealed to zero over the run")
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
    p.add_argument("--checkpoint", default=None,
                   help="checkpoint file, written each epoch, every --checkpoint-every steps and "
                        "on Ctrl-C (default OUT/checkpoint.npz)")
    p.add_argument("--checkpoint-every", type=int, default=None, metavar="N",
                   help="also write the checkpoint every N steps")
    p.add_argument("--resume", default=None, metavar="PATH",
                   help="continue the run saved in checkpoint PATH with its settings (options "
                        "given here, such as --epochs, override them)")
    return p


def _parse(argv):
    """The arguments; with --resume, the checkpoint's saved settings under the options given."""
    parser = _parser()
    args = parser.parse_args(argv)
    if args.resume is None:
        return args
    given = _parser()
    for action in given._actions:  # parse again without defaults: what the user typed
        action.default = argparse.SUPPRESS
    typed = vars(given.parse_args(argv))
    merged = {**vars(args), **read_checkpoint_config(args.resume), **typed}
    merged.setdefault("checkpoint", None)
    if "checkpoint" not in typed:
        merged["checkpoint"] = args.resume  # keep writing where we resumed from
    return argparse.Namespace(**merged)


def main(argv=None):
    args = _parse(argv)
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
    settings = {k: v for k, v in vars(args).items() if k != "resume"}
    settings["out"] = out
    trainer = Trainer(net, x_train, t_train, x_test, t_test, epochs=args.epochs,
                      mini_batch_size=args.batch_size, optimizer=args.optimizer,
                      optimizer_param=opt_param,
                      evaluate_sample_num_per_epoch=args.eval_samples, verbose=verbose,
                      seed=args.seed,
                      checkpoint=args.checkpoint or os.path.join(out, "checkpoint.npz"),
                      checkpoint_every=args.checkpoint_every, checkpoint_config=settings,
                      comm=comm, lr_schedule=args.lr_schedule)
    is_root = comm is None or comm.Get_rank() == 0
    if args.resume is None and is_root and os.path.exists(trainer.checkpoint):
        # without --resume a run starts afresh (the Trainer would continue from the file)
        os.remove(trainer.checkpoint)
        if verbose:
            print(f"removed the previous run's {trainer.checkpoint} (--resume continues one)")
    if comm is not None:
        comm.Barrier()  # no rank may look for the checkpoint before rank 0 has removed it
    trainer.train()
    trainer.save(out, config={"model": args.model, "data": args.data, "dtype": args.dtype,
                              "lr": args.lr, "lr_schedule": args.lr_schedule,
                              "limit": args.limit, "seed": args.seed,
                              "ranks": 1 if comm is None else comm.Get_size(),
                              "threads": convcore.get_num_threads(),
                              "argv": sys.argv[1:] if argv is None else list(argv)})
    return trainer


if __name__ == "__main__":
    try:
        main()
    except KeyboardInterrupt:
        sys.stderr.write("interrupted\n")
        sys.exit(130)  # the shell's code for a SIGINT
