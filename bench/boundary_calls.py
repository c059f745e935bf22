"""Instruction counts of the custom-op boundary (repeatable, unlike wall time on a shared box;
valgrind must run the interpreter itself, not a pyenv shim):

    for m in none np_fwd op_fwd np_fwdbwd op_fwdbwd; do
      valgrind --tool=callgrind --callgrind-out-file=/tmp/cg.$m \
        $(python -c "import sys; print(sys.executable)") bench/boundary_calls.py $m 200
    done

Each run imports everything and makes 10 warm-up calls of every form; then `n` calls of one
form. (Ir(form) - Ir(none)) / n is the per-call cost of that form; op - np is the boundary's
(the tensor <-> array conversion, the dispatcher, autograd bookkeeping).
A depthwise 3x3 conv on 1x2x6x6 float32: the kernel itself is a few hundred multiply-adds.
"""
import sys

import torch

import convcore
import convcore.functional as F
import convcore.torch as cct

convcore.set_num_threads(1)
torch.set_num_threads(1)
g = torch.Generator().manual_seed(0)
x, w = torch.randn(1, 2, 6, 6, generator=g), torch.randn(2, 1, 3, 3, generator=g)
dy = torch.randn(1, 2, 6, 6, generator=g)
xn, wn, dyn = x.numpy(), w.numpy(), dy.numpy()
xg, wg = x.clone().requires_grad_(), w.clone().requires_grad_()


def np_fwd():
    F.depthwise_conv2d(xn, wn, None, 1, 1)


def op_fwd():
    with torch.no_grad():
        cct.depthwise_conv2d(x, w, None, 1, 1)


def np_fwdbwd():
    F.depthwise_conv2d(xn, wn, None, 1, 1)
    F.depthwise_conv2d_backward(dyn, xn, wn, 1, 1, need=("x", "w"))


def op_fwdbwd():
    torch.autograd.backward(cct.depthwise_conv2d(xg, wg, None, 1, 1), dy)


FORMS = {"np_fwd": np_fwd, "op_fwd": op_fwd, "np_fwdbwd": np_fwdbwd, "op_fwdbwd": op_fwdbwd}

if __name__ == "__main__":
    mode, n = sys.argv[1], int(sys.argv[2])
    for fn in FORMS.values():
        for _ in range(10):
            fn()
    if mode != "none":
        for _ in range(n):
            FORMS[mode]()
