"""What every convcore network shares: the book's network interface.

    net.params              {'W1': array, 'b1': array, ...}, the arrays the layers compute with
    net.predict(x, train_flg=False)
    net.loss(x, t)          mean cross-entropy (training mode: dropout on, batch statistics)
    net.accuracy(x, t, batch_size=100)
    net.gradient(x, t)      {'W1': dW1, ...} by backpropagation
    net.numerical_gradient(x, t)   the same by central differences (small checks only)
    net.save_params(file_name) / net.load_params(file_name)   .npz, never pickle

Parameter keys follow the book: the i-th layer that has parameters owns 'W{i}', 'b{i}'
(BatchNormalization: 'gamma{i}', 'beta{i}'; SeparableConv: 'Wd{i}', 'Wp{i}', 'b{i}').
BatchNormalization running statistics are buffers, saved beside the parameters as
'running_mean{i}', 'running_var{i}' but never given to optimizers.
"""
import os

import numpy as np

from ..layers import BatchNormalization, param_slots

__all__ = ["Net"]

_KEY_PREFIX = {"W": "W", "b": "b", "gamma": "gamma", "beta": "beta",
               "W_depthwise": "Wd", "W_pointwise": "Wp"}


def _layers_in(layers):
    return list(layers.values()) if isinstance(layers, dict) else list(layers)


def _all_layers(layers):
    out = []
    for layer in layers:
        out.append(layer)
        out.extend(_all_layers(layer.sublayers()))
    return out


class Net:
    """Subclasses set `self.layers` (a list or an OrderedDict of layers, in forward order) and
    `self.last_layer`, then call `self._register()`."""

    def _register(self):
        """Name every parameter the layers hold and collect them into `self.params`."""
        self.params = {}
        self.buffers = {}
        self._slots = []          # (key, layer, attribute)
        self._buffer_slots = []
        index = 0
        last_layer = None
        for layer, attr in param_slots(_layers_in(self.layers)):
            if layer is not last_layer:
                index += 1
                last_layer = layer
            key = f"{_KEY_PREFIX.get(attr, attr)}{index}"
            self.params[key] = getattr(layer, attr)
            self._slots.append((key, layer, attr))
            if isinstance(layer, BatchNormalization) and attr == "gamma":
                # variance starts at 1, not the book's 0: an untrained network's inference
                # then normalises by sqrt(1 + eps) instead of dividing by sqrt(eps)
                for stat, fill in (("running_mean", 0.0), ("running_var", 1.0)):
                    if getattr(layer, stat) is None:
                        setattr(layer, stat,
                                np.full(np.size(layer.gamma), fill, layer.gamma.dtype))
                    self.buffers[f"{stat}{index}"] = getattr(layer, stat)
                    self._buffer_slots.append((f"{stat}{index}", layer, stat))

    def _sync(self):
        """Point the layers at the current arrays of `params`, in case code outside rebound a
        dict entry (params[k] = ...) instead of updating it in place."""
        for key, layer, attr in self._slots:
            arr = self.params[key]
            if getattr(layer, attr) is not arr:
                setattr(layer, attr, arr)

    # ---- the book's interface -------------------------------------------------------------

    def predict(self, x, train_flg=False):
        self._sync()
        for layer in _layers_in(self.layers):
            x = layer.forward(x, train_flg) if layer.takes_train_flg else layer.forward(x)
        return x

    def loss(self, x, t, train_flg=True):
        y = self.predict(x, train_flg)
        return self.last_layer.forward(y, t)

    def accuracy(self, x, t, batch_size=100):
        if t.ndim != 1:
            t = np.argmax(t, axis=1)
        correct = 0
        # every sample counts, the last partial batch included
        for start in range(0, x.shape[0], batch_size):
            y = self.predict(x[start:start + batch_size], train_flg=False)
            correct += int(np.sum(np.argmax(y, axis=1) == t[start:start + batch_size]))
        return correct / x.shape[0]

    def gradient(self, x, t):
        self.last_loss = self.loss(x, t)
        dout = self.last_layer.backward(1)
        for layer in reversed(_layers_in(self.layers)):
            dout = layer.backward(dout)
        return {key: getattr(layer, "d" + attr) for key, layer, attr in self._slots}

    def numerical_gradient(self, x, t, h=1e-4):
        """Central differences over every parameter element: slow, for small checks only.
        Perturbs the parameters in place and restores them."""
        grads = {}
        for key, param in self.params.items():
            grad = np.zeros_like(param)
            flat, gflat = param.reshape(-1), grad.reshape(-1)
            for i in range(flat.size):
                old = flat[i]
                flat[i] = old + h
                plus = self.loss(x, t)
                flat[i] = old - h
                minus = self.loss(x, t)
                flat[i] = old
                gflat[i] = (plus - minus) / (2 * h)
            grads[key] = grad
        return grads

    # ---- persistence ------------------------------------------------------------------------

    def save_params(self, file_name="params.npz"):
        """Parameters and buffers as a plain .npz archive, written to exactly `file_name`."""
        directory = os.path.dirname(os.path.abspath(file_name))
        os.makedirs(directory, exist_ok=True)
        arrays = {**{k: np.asarray(v) for k, v in self.params.items()},
                  **{k: np.asarray(v) for k, v in self.buffers.items()}}
        with open(file_name, "wb") as f:  # a file object, so numpy does not append ".npz"
            np.savez(f, **arrays)

    def load_params(self, file_name="params.npz"):
        """Load parameters saved by save_params (or any .npz with the book's keys 'W1', 'b1',
        ...). Never unpickles: pickle files and object arrays are refused, since loading them
        could run arbitrary code. Values are copied into the existing arrays."""
        try:
            archive = np.load(file_name, allow_pickle=False)
        except ValueError as exc:
            raise ValueError(
                f"load_params: {file_name!r} is not a .npz/.npy array file (pickled data is "
                "refused because unpickling can execute code; re-save the parameters with "
                "numpy.savez)") from exc
        if not hasattr(archive, "files"):
            raise ValueError(f"load_params: {file_name!r} holds a single array, expected an "
                             ".npz archive with keys like 'W1', 'b1'")
        with archive:
            try:
                loaded = {key: archive[key] for key in archive.files}
            except ValueError as exc:
                raise ValueError(f"load_params: {file_name!r} contains object arrays, which "
                                 "are refused (they need pickle)") from exc
        missing = sorted(set(self.params) - set(loaded))
        unknown = sorted(set(loaded) - set(self.params) - set(self.buffers))
        if missing or unknown:
            raise ValueError(f"load_params: {file_name!r} does not match this network: "
                             f"missing {missing}, unexpected {unknown}")
        for key, arr in loaded.items():
            target = self.params.get(key)
            if target is None:
                target = self.buffers[key]
            if arr.dtype.kind not in "fiu":
                raise ValueError(f"load_params: {key} has dtype {arr.dtype}, expected numbers")
            if arr.shape != np.shape(target):
                raise ValueError(f"load_params: {key} has shape {arr.shape}, "
                                 f"the network expects {np.shape(target)}")
            target[...] = arr

    # ---- conveniences ------------------------------------------------------------------------

    def num_params(self):
        return int(sum(p.size for p in self.params.values()))

    def summary(self):
        lines = [type(self).__name__]
        for key, layer, attr in self._slots:
            lines.append(f"  {key:14s} {type(layer).__name__:20s} {tuple(self.params[key].shape)}")
        lines.append(f"  {self.num_params()} parameters")
        return "\n".join(lines)

    def all_layers(self):
        return _all_layers(_layers_in(self.layers))
