"""The style-transfer loss written independently in PyTorch (autograd, weights frozen), on a
convcore FeatureNet's weights: the baseline of bench/style_compare.py and the oracle of the
optional PyTorch test. Needs torch; convcore does not.

    loss_fn = TorchStyleLoss(net, content, style, content_weight, tv_weight, normalize)
    loss, grad = loss_fn(image)          # numpy in, numpy out (float of image's dtype)

    x = torch.from_numpy(start).requires_grad_(True)     # the optimiser loop, as stylize's
    adam = TorchImageAdam(lr=4.0)
    for _ in range(iters):
        loss = loss_fn.loss(x)
        loss.backward()
        adam.step(x, x.grad)             # scaled Adam step and clipping, in place
        x.grad = None

TorchImageAdam is convcore.apps.style.ImageAdam's step written in PyTorch tensor ops: the
book's Adam (not torch.optim.Adam, whose epsilon enters after the bias correction) on a
gradient scaled by 1 / mean|grad| of the first step. With the same weights, images and start,
both loops follow the same loss trajectory up to floating-point rounding.
"""
import math

import numpy as np

from ..optim import EPS

__all__ = ["TorchStyleLoss", "TorchImageAdam"]


class TorchImageAdam:
    """convcore.apps.style.ImageAdam in PyTorch: t += 1; g = grad * scale (scale =
    1 / mean|grad| fixed at the first step); m += (1-beta1)(g - m); v += (1-beta2)(g*g - v);
    x -= lr sqrt(1 - beta2**t) / (1 - beta1**t) * m / (sqrt(v) + 1e-7); x clipped to 0..255.
    `step` updates the tensor x in place (outside autograd)."""

    def __init__(self, lr=4.0, beta1=0.9, beta2=0.999):
        import torch
        self.torch = torch
        self.lr, self.beta1, self.beta2 = lr, beta1, beta2
        self.iter = 0
        self.m = self.v = None
        self.grad_scale = None

    def step(self, x, grad):
        torch = self.torch
        with torch.no_grad():
            if self.grad_scale is None:
                self.grad_scale = 1.0 / max(float(torch.mean(torch.abs(grad))), 1e-30)
            if self.m is None:
                self.m, self.v = torch.zeros_like(x), torch.zeros_like(x)
            self.iter += 1
            lr_t = float(self.lr * math.sqrt(1.0 - self.beta2 ** self.iter)
                         / (1.0 - self.beta1 ** self.iter))
            g = grad * self.grad_scale
            self.m += (1 - self.beta1) * (g - self.m)
            self.v += (1 - self.beta2) * (g * g - self.v)
            x -= lr_t * self.m / (torch.sqrt(self.v) + EPS)
            x.clamp_(0, 255)


class TorchStyleLoss:
    """Same terms as convcore.apps.style.StyleLoss (see its module docstring)."""

    def __init__(self, net, content, style, content_weight=0.005, tv_weight=0.0,
                 normalize=False):
        import torch
        self.torch = torch
        self.net = net
        dtype = torch.float64 if content.dtype == np.float64 else torch.float32
        # frozen weights: plain tensors, requires_grad False, so autograd forms no dW
        self.weights = {k: torch.from_numpy(np.ascontiguousarray(v)).to(dtype)
                        for k, v in net.params.items()}
        self.content_weight = content_weight
        self.tv_weight = tv_weight
        scale, shift = net._scale_shift(content)
        self.scale, self.shift = torch.from_numpy(scale), torch.from_numpy(shift)
        with torch.no_grad():
            feats = self.features(torch.from_numpy(content), net.content_layers)
            self.content_targets = {k: feats[k].clone() for k in net.content_layers}
            feats = self.features(torch.from_numpy(style), net.style_layers)
            self.style_targets = {k: self.gram(feats[k]) for k in net.style_layers}

        def norm(t):
            return 1.0 / max(float(torch.mean(t.double() ** 2)), 1e-30) if normalize else 1.0

        self.content_norm = {k: norm(t) for k, t in self.content_targets.items()}
        self.style_norm = {k: norm(t) for k, t in self.style_targets.items()}
        self.taps = list(dict.fromkeys(list(net.content_layers) + list(net.style_layers)))

    def features(self, pixels, taps):
        F = self.torch.nn.functional
        last = max(self.net.layer_names().index(t) for t in taps)
        x = pixels * self.scale - self.shift
        out = {}
        for op in self.net.spec[:last + 1]:
            if op["op"] == "conv":
                x = F.conv2d(x, self.weights[op["name"] + "/W"], self.weights[op["name"] + "/b"],
                             stride=op["stride"], padding=op["pad"])
            elif op["op"] == "relu":
                x = self.torch.relu(x)
            else:
                x = F.avg_pool2d(x, op["k"], op["stride"])
            if op["name"] in taps:
                out[op["name"]] = x
        return out

    @staticmethod
    def gram(f):
        _, c, h, w = f.shape
        flat = f.reshape(c, h * w)
        return flat @ flat.T / (c * h * w)

    def loss(self, x):
        """Scalar loss of a (1, 3, H, W) pixel tensor (autograd graph attached)."""
        torch, net = self.torch, self.net
        feats = self.features(x, self.taps)
        total = 0
        for k, a in net.content_layers.items():
            total = total + (self.content_weight * a * self.content_norm[k]
                             * torch.mean((feats[k] - self.content_targets[k]) ** 2))
        for k, b in net.style_layers.items():
            total = total + (b * self.style_norm[k] / len(net.style_layers)
                             * torch.mean((self.gram(feats[k]) - self.style_targets[k]) ** 2))
        if self.tv_weight:
            xs = x / 255
            tv = (torch.sum((xs[:, :, 1:] - xs[:, :, :-1]) ** 2)
                  + torch.sum((xs[:, :, :, 1:] - xs[:, :, :, :-1]) ** 2)) / xs.numel()
            total = total + self.tv_weight * tv
        return total

    def __call__(self, image):
        x = self.torch.from_numpy(np.array(image)).requires_grad_(True)
        loss = self.loss(x)
        loss.backward()
        return float(loss.item()), x.grad.numpy()
