"""Optimizers with the book's interface: `update(params, grads)` over dicts of arrays.

Updates happen in place (`params[key] -= ...`): layers hold references to those same arrays,
so rebinding a dict entry would leave the network computing with the old weights.
State (velocities, squared-gradient sums) is created on the first update, keyed like params.
"""
import numpy as np

__all__ = ["SGD", "Momentum", "Nesterov", "AdaGrad", "RMSprop", "Adam", "OPTIMIZERS", "get"]

EPS = 1e-7  # the book's guard against division by zero


def _zeros_like(params):
    return {key: np.zeros_like(val) for key, val in params.items()}


class SGD:
    """p -= lr * g"""

    def __init__(self, lr=0.01):
        self.lr = lr

    def update(self, params, grads):
        for key in params:
            params[key] -= self.lr * grads[key]


class Momentum:
    """v = momentum*v - lr*g;  p += v"""

    def __init__(self, lr=0.01, momentum=0.9):
        self.lr = lr
        self.momentum = momentum
        self.v = None

    def update(self, params, grads):
        if self.v is None:
            self.v = _zeros_like(params)
        for key in params:
            self.v[key] *= self.momentum
            self.v[key] -= self.lr * grads[key]
            params[key] += self.v[key]


class Nesterov:
    """Nesterov accelerated gradient in the form of Bengio et al. 2012 (arXiv:1212.0901), which
    evaluates the gradient at the parameters themselves rather than at a look-ahead point:
    v = momentum*v - lr*g;  p += momentum*v - lr*g   (v here is the updated velocity)."""

    def __init__(self, lr=0.01, momentum=0.9):
        self.lr = lr
        self.momentum = momentum
        self.v = None

    def update(self, params, grads):
        if self.v is None:
            self.v = _zeros_like(params)
        for key in params:
            step = self.lr * grads[key]
            self.v[key] *= self.momentum
            self.v[key] -= step
            params[key] += self.momentum * self.v[key] - step


class AdaGrad:
    """h += g*g;  p -= lr * g / (sqrt(h) + 1e-7)"""

    def __init__(self, lr=0.01):
        self.lr = lr
        self.h = None

    def update(self, params, grads):
        if self.h is None:
            self.h = _zeros_like(params)
        for key in params:
            self.h[key] += grads[key] * grads[key]
            params[key] -= self.lr * grads[key] / (np.sqrt(self.h[key]) + EPS)


class RMSprop:
    """h = decay_rate*h + (1 - decay_rate)*g*g;  p -= lr * g / (sqrt(h) + 1e-7)"""

    def __init__(self, lr=0.01, decay_rate=0.99):
        self.lr = lr
        self.decay_rate = decay_rate
        self.h = None

    def update(self, params, grads):
        if self.h is None:
            self.h = _zeros_like(params)
        for key in params:
            self.h[key] *= self.decay_rate
            self.h[key] += (1 - self.decay_rate) * grads[key] * grads[key]
            params[key] -= self.lr * grads[key] / (np.sqrt(self.h[key]) + EPS)


class Adam:
    """Adam (Kingma & Ba) with the bias correction folded into the step size:
    t += 1;  m += (1-beta1)(g - m);  v += (1-beta2)(g*g - v);
    p -= lr * sqrt(1 - beta2**t) / (1 - beta1**t) * m / (sqrt(v) + 1e-7)"""

    def __init__(self, lr=0.001, beta1=0.9, beta2=0.999):
        self.lr = lr
        self.beta1 = beta1
        self.beta2 = beta2
        self.iter = 0
        self.m = None
        self.v = None

    def update(self, params, grads):
        if self.m is None:
            self.m = _zeros_like(params)
            self.v = _zeros_like(params)
        self.iter += 1
        # a Python float, so float32 parameters stay float32 all through the update
        lr_t = float(self.lr * np.sqrt(1.0 - self.beta2 ** self.iter)
                     / (1.0 - self.beta1 ** self.iter))
        for key in params:
            g, m, v = grads[key], self.m[key], self.v[key]
            # the formulas above, operation for operation, with each temporary reused in place
            # (fresh temporaries of a large parameter cost page faults: image-sized ones in
            # style transfer took 1.3 ms a step)
            t = g - m
            t *= 1 - self.beta1
            m += t
            t = np.multiply(g, g, out=t)
            t -= v
            t *= 1 - self.beta2
            v += t
            denominator = np.sqrt(v, out=t)
            denominator += EPS
            step = lr_t * m
            step /= denominator
            params[key] -= step


OPTIMIZERS = {
    "sgd": SGD, "momentum": Momentum, "nesterov": Nesterov, "adagrad": AdaGrad,
    "rmsprop": RMSprop, "adam": Adam,
}


def get(name, **kwargs):
    """An optimizer by case-insensitive name ('SGD', 'adam', ...)."""
    try:
        cls = OPTIMIZERS[name.lower()]
    except KeyError:
        raise ValueError(f"unknown optimizer {name!r}; choose one of {sorted(OPTIMIZERS)}") from None
    return cls(**kwargs)
