"""One step (and a second, for stateful optimizers) of each optimizer against its formula."""
import numpy as np
import pytest

from convcore import optim
from convcore.init import fan_in_of, he_normal, he_uniform, xavier_normal, xavier_uniform


def _problem():
    params = {"W1": np.array([[1.0, -2.0], [0.5, 3.0]]), "b1": np.array([0.1, -0.2])}
    grads = {"W1": np.array([[0.3, -0.1], [2.0, 0.0]]), "b1": np.array([-1.0, 0.25])}
    return params, grads


def _run(opt, steps=2):
    params, grads = _problem()
    ids = {k: id(v) for k, v in params.items()}
    for _ in range(steps):
        opt.update(params, grads)
    # updates are in place: layers hold references to these very arrays
    assert {k: id(v) for k, v in params.items()} == ids
    return params


def _expected(step_fn, steps=2):
    """Apply a scalar-formula update elementwise, the state threaded through `step_fn`."""
    params, grads = _problem()
    out = {}
    for key in params:
        p, g = params[key].copy(), grads[key]
        state = {}
        for t in range(1, steps + 1):
            p = step_fn(p, g, state, t)
        out[key] = p
    return out


def _sgd(lr):
    return lambda p, g, s, t: p - lr * g


def _momentum(lr, m):
    def step(p, g, s, t):
        s["v"] = m * s.get("v", 0.0) - lr * g
        return p + s["v"]
    return step


def _nesterov(lr, m):
    def step(p, g, s, t):
        v_old = s.get("v", 0.0)
        s["v"] = m * v_old - lr * g
        return p + m * m * v_old - (1 + m) * lr * g
    return step


def _adagrad(lr):
    def step(p, g, s, t):
        s["h"] = s.get("h", 0.0) + g * g
        return p - lr * g / (np.sqrt(s["h"]) + 1e-7)
    return step


def _rmsprop(lr, rho):
    def step(p, g, s, t):
        s["h"] = rho * s.get("h", 0.0) + (1 - rho) * g * g
        return p - lr * g / (np.sqrt(s["h"]) + 1e-7)
    return step


def _adam(lr, b1, b2):
    def step(p, g, s, t):
        s["m"] = b1 * s.get("m", 0.0) + (1 - b1) * g
        s["v"] = b2 * s.get("v", 0.0) + (1 - b2) * g * g
        lr_t = lr * np.sqrt(1 - b2 ** t) / (1 - b1 ** t)
        return p - lr_t * s["m"] / (np.sqrt(s["v"]) + 1e-7)
    return step


CASES = [
    (lambda: optim.SGD(), _sgd(0.01)),
    (lambda: optim.SGD(lr=0.5), _sgd(0.5)),
    (lambda: optim.Momentum(), _momentum(0.01, 0.9)),
    (lambda: optim.Momentum(lr=0.1, momentum=0.5), _momentum(0.1, 0.5)),
    (lambda: optim.Nesterov(lr=0.1, momentum=0.8), _nesterov(0.1, 0.8)),
    (lambda: optim.AdaGrad(), _adagrad(0.01)),
    (lambda: optim.RMSprop(lr=0.1, decay_rate=0.9), _rmsprop(0.1, 0.9)),
    (lambda: optim.RMSprop(), _rmsprop(0.01, 0.99)),
    (lambda: optim.Adam(), _adam(0.001, 0.9, 0.999)),
    (lambda: optim.Adam(lr=0.1, beta1=0.5, beta2=0.9), _adam(0.1, 0.5, 0.9)),
]


@pytest.mark.parametrize("steps", [1, 2])
@pytest.mark.parametrize("make,formula", CASES)
def test_update_matches_formula(make, formula, steps):
    got = _run(make(), steps)
    want = _expected(formula, steps)
    for key in want:
        np.testing.assert_allclose(got[key], want[key], rtol=1e-13, atol=1e-15, err_msg=key)


def test_nesterov_equals_lookahead_form():
    """The Bengio form is plain NAG (gradient at p + m*v) in shifted coordinates: on a
    quadratic, both produce the same look-ahead iterates."""
    a, lr, m = 0.7, 0.1, 0.9
    p, v = {"x": np.array([2.0])}, np.zeros(1)
    opt = optim.Nesterov(lr=lr, momentum=m)
    y = np.array([2.0])  # NAG's own parameter; its look-ahead point equals our p
    for _ in range(5):
        opt.update(p, {"x": a * p["x"]})
        v = m * v - lr * a * (y + m * v)
        y = y + v
        np.testing.assert_allclose(p["x"], y + m * v, rtol=1e-12)


def test_optimizer_defaults_are_the_books():
    assert optim.SGD().lr == 0.01
    assert (optim.Momentum().lr, optim.Momentum().momentum) == (0.01, 0.9)
    assert optim.AdaGrad().lr == 0.01
    assert (optim.RMSprop().lr, optim.RMSprop().decay_rate) == (0.01, 0.99)
    adam = optim.Adam()
    assert (adam.lr, adam.beta1, adam.beta2) == (0.001, 0.9, 0.999)


def test_float32_parameters_stay_float32():
    params = {"W": np.ones(3, np.float32)}
    for name in optim.OPTIMIZERS:
        opt = optim.get(name)
        opt.update(params, {"W": np.full(3, 0.5, np.float32)})
        assert params["W"].dtype == np.float32, name


def test_get_by_name():
    assert isinstance(optim.get("ADAM", lr=0.1), optim.Adam)
    with pytest.raises(ValueError, match="unknown optimizer"):
        optim.get("adamw")


@pytest.mark.parametrize("init,var", [(he_normal, 2.0), (xavier_normal, 1.0),
                                      (he_uniform, 2.0), (xavier_uniform, 1.0)])
def test_initialiser_variance(init, var):
    w = init((64, 32, 3, 3), rng=np.random.default_rng(0))
    assert fan_in_of(w.shape) == 32 * 9
    np.testing.assert_allclose(w.var(), var / (32 * 9), rtol=0.05)
    a = init((200, 100), fan_in=50, rng=np.random.default_rng(1), dtype=np.float32)
    assert a.dtype == np.float32
    np.testing.assert_allclose(a.var(), var / 50, rtol=0.05)
