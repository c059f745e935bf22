"""Weight initialisers given the fan-in (inputs feeding one output unit: C*FH*FW for a
convolution, the input width for an affine layer).

He (Kaiming) scaling suits ReLU networks: variance 2/fan_in keeps activations' variance
constant through ReLUs, which halve it. Xavier (Glorot, in the book's fan-in form) uses
1/fan_in, for sigmoid/tanh. The uniform variants have the same variance: U(-a, a) with
a = sqrt(3 * var).
"""
import numpy as np

__all__ = ["he_normal", "he_uniform", "xavier_normal", "xavier_uniform", "fan_in_of"]


def fan_in_of(shape):
    """Fan-in for a weight shape: (in, out) for affine, (K, C, kh, kw) / (K, C, k) for conv."""
    shape = tuple(shape)
    if len(shape) == 2:
        return shape[0]
    return int(np.prod(shape[1:]))


def _rng(rng):
    return rng if rng is not None else np.random.default_rng()


def _normal(shape, std, rng, dtype):
    return (_rng(rng).standard_normal(shape) * std).astype(dtype)


def _uniform(shape, std, rng, dtype):
    limit = np.sqrt(3.0) * std
    return _rng(rng).uniform(-limit, limit, size=shape).astype(dtype)


def he_normal(shape, fan_in=None, rng=None, dtype=np.float64):
    fan_in = fan_in_of(shape) if fan_in is None else fan_in
    return _normal(shape, np.sqrt(2.0 / fan_in), rng, dtype)


def he_uniform(shape, fan_in=None, rng=None, dtype=np.float64):
    fan_in = fan_in_of(shape) if fan_in is None else fan_in
    return _uniform(shape, np.sqrt(2.0 / fan_in), rng, dtype)


def xavier_normal(shape, fan_in=None, rng=None, dtype=np.float64):
    fan_in = fan_in_of(shape) if fan_in is None else fan_in
    return _normal(shape, np.sqrt(1.0 / fan_in), rng, dtype)


def xavier_uniform(shape, fan_in=None, rng=None, dtype=np.float64):
    fan_in = fan_in_of(shape) if fan_in is None else fan_in
    return _uniform(shape, np.sqrt(1.0 / fan_in), rng, dtype)
