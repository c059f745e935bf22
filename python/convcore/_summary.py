"""convcore.summary(model, input_shape): what each layer of a network costs, from its shapes.

Per layer (nested blocks are expanded, a residual block's branches listed under it):
  output shape      (W - F + 2P)/S + 1 per spatial axis (transposed conv: the inverse)
  params            elements of the layer's parameters; a conv holds (F*F*C + 1)*K
  MACs              multiply-adds of the forward pass for the whole batch
  fwd bytes         the activation the layer writes in forward (its output)
  bwd bytes         what its backward writes: the gradient of its input plus its parameter gradients
  receptive field   input pixels (h x w) one output element depends on, by the recurrence
                    r_out = r_in + (k_eff - 1) * j_in, j_out = j_in * stride (k_eff = d*(k-1)+1);
                    layers that mix every position (Affine, global pooling) see the whole input
                    (before them the field may exceed the input: it then includes padding).
Nothing is run: every figure comes from the layer's attributes and the input shape, so a summary of
a large network is instant. The text ends with the totals.
"""
from dataclasses import dataclass

import numpy as np

from . import layers as L
from ._args import padding4, pair

__all__ = ["summary", "Summary", "LayerCost"]


@dataclass
class LayerCost:
    name: str
    kind: str
    output_shape: tuple
    params: int
    macs: int
    fwd_bytes: int
    bwd_bytes: int
    receptive_field: tuple   # (rh, rw) in input pixels
    depth: int = 0


@dataclass
class _State:
    """What flows between layers: the shape (batch first) and the receptive-field recurrence."""
    shape: tuple
    rf: tuple = (1.0, 1.0)      # receptive field (h, w)
    jump: tuple = (1.0, 1.0)    # input pixels between adjacent outputs (h, w)


class Summary:
    """rows: LayerCost per layer, in forward order; totals: dict. str() is the table."""

    def __init__(self, model_name, input_shape, itemsize, rows):
        self.model_name = model_name
        self.input_shape = tuple(input_shape)
        self.itemsize = itemsize
        self.rows = rows
        leaves = [r for r in rows if r.kind != "block"]
        self.totals = {
            "params": sum(r.params for r in leaves),
            "macs": sum(r.macs for r in leaves),
            "fwd_bytes": sum(r.fwd_bytes for r in leaves),
            "bwd_bytes": sum(r.bwd_bytes for r in leaves),
            "output_shape": rows[-1].output_shape if rows else self.input_shape,
            "receptive_field": rows[-1].receptive_field if rows else (1, 1),
        }

    def __str__(self):
        head = ("layer", "output shape", "params", "MACs", "fwd bytes", "bwd bytes", "recept. field")
        body = []
        for r in self.rows:
            name = "  " * r.depth + f"{r.name} ({r.kind})"
            body.append((name, str(r.output_shape), f"{r.params:,}", f"{r.macs:,}",
                         _bytes(r.fwd_bytes), _bytes(r.bwd_bytes), _rf(r.receptive_field)))
        widths = [max(len(row[i]) for row in [head] + body) for i in range(len(head))]

        def line(cells):
            first = cells[0].ljust(widths[0])
            return "  ".join([first] + [c.rjust(w) for c, w in zip(cells[1:], widths[1:])])

        t = self.totals
        out = [f"{self.model_name}: input {self.input_shape}, {self.itemsize}-byte elements",
               line(head), "-" * len(line(head))]
        out += [line(row) for row in body]
        out.append("-" * len(line(head)))
        out.append(f"total params: {t['params']:,}")
        out.append(f"total multiply-adds: {t['macs']:,}")
        out.append(f"total activation memory: forward {_bytes(t['fwd_bytes'])}, "
                   f"backward {_bytes(t['bwd_bytes'])}")
        out.append(f"output {t['output_shape']}, receptive field {_rf(t['receptive_field'])}")
        return "\n".join(out)

    __repr__ = __str__


def _bytes(n):
    for unit, size in (("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if n >= size:
            return f"{n / size:.2f} {unit}"
    return f"{n} B"


def _rf(rf):
    return f"{rf[0]:g}x{rf[1]:g}"


def summary(model, input_shape, *, dtype=None):
    """Summary of `model` (a convcore.models Net, a layer, or a list of layers) for inputs of
    `input_shape`: (C, H, W) (batch 1), (N, C, H, W), or (D,) / (N, D) for affine-only stacks.
    dtype: element type for the byte counts (default: the model's parameters' dtype)."""
    shape = tuple(int(v) for v in input_shape)
    if len(shape) in (1, 3):
        shape = (1,) + shape
    if len(shape) not in (2, 3, 4) or any(v <= 0 for v in shape):
        raise ValueError(f"summary: input_shape must be (C, H, W), (N, C, H, W), (D,) or (N, D) "
                         f"with positive extents, got {tuple(input_shape)!r}")
    named = _named_layers(model)
    if dtype is None:
        slots = L.param_slots([layer for _, layer in named])
        dtype = getattr(slots[0][0], slots[0][1]).dtype if slots else np.float32
    itemsize = np.dtype(dtype).itemsize
    spatial = shape[2:] if len(shape) == 4 else (1, 1)
    state = _State(shape)
    rows = []
    for name, layer in named:
        state = _visit(name, layer, state, itemsize, spatial, 0, rows)
    return Summary(type(model).__name__, shape, itemsize, rows)


def _named_layers(model):
    layers = getattr(model, "layers", model)
    if isinstance(layers, dict):
        return list(layers.items())
    if isinstance(layers, L.Layer):
        layers = [layers]
    return [(f"{type(layer).__name__}{i + 1}", layer) for i, layer in enumerate(layers)]


def _numel(shape):
    return int(np.prod(shape, dtype=np.int64))


def _param_count(layer):
    return sum(int(np.size(getattr(layer, a))) for a in layer.params)


def _window(kernel, stride, pad):
    stride = pair(stride, "summary", "stride")
    return stride, padding4(pad, kernel, stride, (1, 1), "summary")


def _conv_out(shape_hw, kernel, stride, pads, dilation=(1, 1)):
    return tuple((size + pads[2 * i] + pads[2 * i + 1] - dilation[i] * (kernel[i] - 1) - 1)
                 // stride[i] + 1 for i, size in enumerate(shape_hw))


def _grow(state, kernel, stride, dilation=(1, 1)):
    """Receptive-field recurrence through a window of `kernel` taps moved by `stride`."""
    rf = tuple(state.rf[i] + dilation[i] * (kernel[i] - 1) * state.jump[i] for i in range(2))
    jump = tuple(state.jump[i] * stride[i] for i in range(2))
    return rf, jump


def _visit(name, layer, state, itemsize, spatial, depth, rows):
    n = state.shape[0]
    in_numel = _numel(state.shape)
    params = _param_count(layer)
    macs = 0
    rf, jump = state.rf, state.jump

    if isinstance(layer, L.ResidualBlock):
        return _visit_residual(name, layer, state, itemsize, spatial, depth, rows)
    if isinstance(layer, L.Sequential):
        rows.append(LayerCost(name, "block", state.shape, 0, 0, 0, 0, state.rf, depth))
        index = len(rows) - 1
        for i, sub in enumerate(layer.layers):
            state = _visit(f"{type(sub).__name__}{i + 1}", sub, state, itemsize, spatial,
                           depth + 1, rows)
        rows[index].output_shape, rows[index].receptive_field = state.shape, state.rf
        return state

    if isinstance(layer, (L.Convolution, L.LocallyConnected, L.TiledConv)):
        # DepthwiseConv is a Convolution with groups = C; LocallyConnected/TiledConv carry
        # the kernel in their last four axes
        W = layer.W
        k, cpg, kh, kw = W.shape[-4:]
        stride, pads = _window((kh, kw), layer.stride, layer.pad)
        out_hw = _conv_out(state.shape[2:], (kh, kw), stride, pads)
        out_shape = (n, k) + out_hw
        macs = n * k * _numel(out_hw) * cpg * kh * kw
        rf, jump = _grow(state, (kh, kw), stride)
    elif isinstance(layer, L.SeparableConv):
        c, _, kh, kw = layer.W_depthwise.shape
        k = layer.W_pointwise.shape[0]
        stride, pads = _window((kh, kw), layer.stride, layer.pad)
        out_hw = _conv_out(state.shape[2:], (kh, kw), stride, pads)
        out_shape = (n, k) + out_hw
        macs = n * _numel(out_hw) * (c * kh * kw + c * k)
        rf, jump = _grow(state, (kh, kw), stride)
    elif isinstance(layer, L.ConvTranspose):
        c_in, c_out, kh, kw = layer.W.shape
        stride, pads = _window((kh, kw), layer.stride, layer.pad)
        op = pair(layer.output_padding, "summary", "output_padding")
        out_hw = tuple((size - 1) * stride[i] - pads[2 * i] - pads[2 * i + 1] + (kh, kw)[i] + op[i]
                       for i, size in enumerate(state.shape[2:]))
        out_shape = (n, c_out) + out_hw
        macs = n * _numel(state.shape[2:]) * c_in * c_out * kh * kw
        # outputs are 1/stride input pixels apart; each sees ceil(k/stride) inputs per axis
        jump = tuple(state.jump[i] / stride[i] for i in range(2))
        rf = tuple(state.rf[i] + (-(-(kh, kw)[i] // stride[i]) - 1) * state.jump[i]
                   for i in range(2))
    elif isinstance(layer, L.Conv1D):
        k, cpg, kl = layer.W.shape
        s, p = int(layer.stride), int(layer.pad)
        length = (state.shape[2] + 2 * p - kl) // s + 1
        out_shape = (n, k, length)
        macs = n * k * length * cpg * kl
    elif isinstance(layer, L.Pooling):
        kernel = (layer.pool_h, layer.pool_w)
        stride, pads = _window(kernel, layer.stride, layer.pad)
        out_shape = state.shape[:2] + _conv_out(state.shape[2:], kernel, stride, pads)
        rf, jump = _grow(state, kernel, stride)
    elif isinstance(layer, L.GlobalAvgPool):
        out_shape = state.shape[:2]
        rf, jump = tuple(float(v) for v in spatial), (0.0, 0.0)
    elif isinstance(layer, L.Affine):
        d_in, d_out = layer.W.shape
        if _numel(state.shape[1:]) != d_in:
            raise ValueError(f"summary: {name} (Affine) expects {d_in} inputs per sample, "
                             f"but the previous layer gives shape {state.shape}")
        out_shape = (n, d_out)
        macs = n * d_in * d_out
        rf, jump = tuple(float(v) for v in spatial), (0.0, 0.0)
    elif isinstance(layer, (L.Relu, L.Sigmoid, L.Dropout, L.BatchNormalization)):
        out_shape = state.shape
    else:
        raise TypeError(f"summary: no cost model for layer {name} of type {type(layer).__name__}")

    out_numel = _numel(out_shape)
    rows.append(LayerCost(name, type(layer).__name__, out_shape, params, int(macs),
                          out_numel * itemsize, (in_numel + params) * itemsize,
                          tuple(rf), depth))
    return _State(out_shape, tuple(rf), tuple(jump))


def _visit_residual(name, block, state, itemsize, spatial, depth, rows):
    rows.append(LayerCost(name, "block", state.shape, 0, 0, 0, 0, state.rf, depth))
    index = len(rows) - 1
    main = _visit("main", block.main, state, itemsize, spatial, depth + 1, rows)
    short = state if block.shortcut is None else _visit("shortcut", block.shortcut, state,
                                                        itemsize, spatial, depth + 1, rows)
    if main.shape != short.shape:
        raise ValueError(f"summary: {name}: the main branch gives {main.shape} but the shortcut "
                         f"gives {short.shape}")
    numel = _numel(main.shape)
    # the sum's gradient goes to both branches: two input-sized gradients
    rows.append(LayerCost("add", "Add", main.shape, 0, 0, numel * itemsize, 2 * numel * itemsize,
                          main.rf, depth + 1))
    out = _State(main.shape, tuple(max(a, b) for a, b in zip(main.rf, short.rf)), main.jump)
    if block.post is not None:
        out = _visit("post", block.post, out, itemsize, spatial, depth + 1, rows)
    rows[index].output_shape, rows[index].receptive_field = out.shape, out.rf
    return out
