"""Training checkpoints: everything a Trainer needs to continue a run exactly where it stopped.

One .npz archive holds the network's parameters and buffers, the optimizer's state (its
numbers and its per-parameter arrays), the position in the current epoch (the shuffled order
of the samples), every random-number state the run draws from (the Trainer's Generator, the
global np.random that the book's Dropout uses, and any layer's own Generator), the records
(losses, accuracies, epoch times), and the command-line configuration when there is one.
Everything that is not an array is JSON text in a unicode array, so loading never unpickles:
`np.load(..., allow_pickle=False)` cannot run code from the file.

Writes go to a temporary file that is then renamed over the checkpoint, so an interrupted save
leaves the previous checkpoint intact.
"""
import json
import numbers
import os

import numpy as np

__all__ = ["save_checkpoint", "load_checkpoint", "read_checkpoint_config"]

FORMAT = "convcore-checkpoint"
VERSION = 1


# ---- optimizer state: numbers, None, arrays and dicts of arrays (the book's optimizers) -------

def _optimizer_state(optimizer, arrays):
    state = {"class": type(optimizer).__name__, "scalars": {}, "none": [], "dicts": {},
             "arrays": []}
    for name, value in vars(optimizer).items():
        if value is None:
            state["none"].append(name)
        elif isinstance(value, (bool, np.bool_)):
            state["scalars"][name] = bool(value)
        elif isinstance(value, numbers.Integral):
            state["scalars"][name] = int(value)
        elif isinstance(value, numbers.Real):
            state["scalars"][name] = float(value)
        elif isinstance(value, np.ndarray):
            arrays[f"opt/{name}"] = value
            state["arrays"].append(name)
        elif isinstance(value, dict) and all(isinstance(v, np.ndarray) for v in value.values()):
            state["dicts"][name] = list(value)
            for key, arr in value.items():
                arrays[f"opt/{name}/{key}"] = arr
        else:
            raise TypeError(f"save_checkpoint: optimizer attribute {name!r} of type "
                            f"{type(value).__name__} cannot be checkpointed (numbers, None, arrays "
                            "and dicts of arrays can)")
    return state


def _restore_optimizer(optimizer, state, archive, path):
    if state["class"] != type(optimizer).__name__:
        raise ValueError(f"load_checkpoint: {path!r} holds the state of a {state['class']} "
                         f"optimizer, not of {type(optimizer).__name__}")
    for name, value in state["scalars"].items():
        setattr(optimizer, name, value)
    for name in state["none"]:
        setattr(optimizer, name, None)
    for name in state["arrays"]:
        setattr(optimizer, name, archive[f"opt/{name}"].copy())
    for name, keys in state["dicts"].items():
        setattr(optimizer, name, {key: archive[f"opt/{name}/{key}"].copy() for key in keys})


# ---- random states ----------------------------------------------------------------------------

def _layer_generators(network):
    """Every numpy Generator a layer draws from (Dropout(rng=...)), in layer order."""
    layers = network.all_layers() if hasattr(network, "all_layers") else []
    return [layer.rng for layer in layers
            if isinstance(getattr(layer, "rng", None), np.random.Generator)]


def _global_random_state(arrays):
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    arrays["np_random/keys"] = keys
    return {"kind": kind, "pos": int(pos), "has_gauss": int(has_gauss), "cached": float(cached)}


def _restore_global_random(state, archive):
    np.random.set_state((state["kind"], archive["np_random/keys"], state["pos"],
                         state["has_gauss"], state["cached"]))


# ---- the archive ------------------------------------------------------------------------------

def save_checkpoint(path, trainer, config=None):
    """Writes the trainer's whole state to `path` (an .npz archive, replaced atomically)."""
    net = trainer.network
    arrays = {f"param/{k}": np.asarray(v) for k, v in net.params.items()}
    arrays.update({f"buffer/{k}": np.asarray(v) for k, v in getattr(net, "buffers", {}).items()})
    if trainer._order is not None:
        arrays["order"] = trainer._order
    meta = {
        "format": FORMAT, "version": VERSION,
        "current_iter": trainer.current_iter, "epochs_done": len(trainer.test_acc_list),
        "iter_per_epoch": trainer.iter_per_epoch, "batch_size": trainer.batch_size,
        "train_size": trainer.train_size,
        "records": {"train_loss": trainer.train_loss_list, "train_acc": trainer.train_acc_list,
                    "test_acc": trainer.test_acc_list, "epoch_time": trainer.epoch_time_list},
        "optimizer": _optimizer_state(trainer.optimizer, arrays),
        "rng": trainer.rng.bit_generator.state,
        "layer_rngs": [g.bit_generator.state for g in _layer_generators(net)],
        "np_random": _global_random_state(arrays),
        "config": config or {},
    }
    arrays["meta"] = np.array(json.dumps(meta))
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    tmp = path + ".tmp"
    with open(tmp, "wb") as f:  # a file object, so numpy does not append ".npz"
        np.savez(f, **arrays)
    os.replace(tmp, path)


def _open(path):
    try:
        archive = np.load(path, allow_pickle=False)
    except ValueError as exc:
        raise ValueError(f"load_checkpoint: {path!r} is not an .npz archive (pickled data is "
                         "refused: unpickling can execute code)") from exc
    if not hasattr(archive, "files") or "meta" not in archive.files:
        raise ValueError(f"load_checkpoint: {path!r} is not a convcore checkpoint (no 'meta')")
    meta = json.loads(str(archive["meta"]))
    if meta.get("format") != FORMAT or meta.get("version") != VERSION:
        raise ValueError(f"load_checkpoint: {path!r} is not a convcore checkpoint of version "
                         f"{VERSION} (format {meta.get('format')!r}, version {meta.get('version')!r})")
    return archive, meta


def read_checkpoint_config(path):
    """The command-line configuration saved with a checkpoint ({} when there is none)."""
    archive, meta = _open(path)
    with archive:
        return meta["config"]


def load_checkpoint(path, trainer):
    """Restores the state written by save_checkpoint into `trainer` (and its network and
    optimizer, whose arrays are overwritten in place). Returns the saved configuration."""
    archive, meta = _open(path)
    with archive:
        for what, mine in (("batch_size", trainer.batch_size), ("train_size", trainer.train_size),
                           ("iter_per_epoch", trainer.iter_per_epoch)):
            if meta[what] != mine:
                raise ValueError(f"load_checkpoint: {path!r} was written with {what}="
                                 f"{meta[what]}, this trainer has {mine}")
        net = trainer.network
        targets = {f"param/{k}": v for k, v in net.params.items()}
        targets.update({f"buffer/{k}": v for k, v in getattr(net, "buffers", {}).items()})
        saved = {k for k in archive.files if k.startswith(("param/", "buffer/"))}
        if saved != set(targets):
            raise ValueError(f"load_checkpoint: {path!r} does not match this network: missing "
                             f"{sorted(set(targets) - saved)}, unexpected {sorted(saved - set(targets))}")
        for key, target in targets.items():
            arr = archive[key]
            if arr.shape != np.shape(target) or arr.dtype.kind not in "fiu":
                raise ValueError(f"load_checkpoint: {key} has shape {arr.shape} and dtype "
                                 f"{arr.dtype}, the network expects {np.shape(target)}")
            target[...] = arr
        _restore_optimizer(trainer.optimizer, meta["optimizer"], archive, path)
        trainer._order = archive["order"].copy() if "order" in archive.files else None
        trainer.rng.bit_generator.state = meta["rng"]
        generators = _layer_generators(net)
        if len(generators) != len(meta["layer_rngs"]):
            raise ValueError(f"load_checkpoint: {path!r} holds {len(meta['layer_rngs'])} layer "
                             f"random states, this network has {len(generators)}")
        for gen, state in zip(generators, meta["layer_rngs"]):
            gen.bit_generator.state = state
        _restore_global_random(meta["np_random"], archive)
    trainer.current_iter = meta["current_iter"]
    trainer.current_epoch = meta["epochs_done"]
    records = meta["records"]
    trainer.train_loss_list = list(records["train_loss"])
    trainer.train_acc_list = list(records["train_acc"])
    trainer.test_acc_list = list(records["test_acc"])
    trainer.epoch_time_list = list(records["epoch_time"])
    return meta["config"]
