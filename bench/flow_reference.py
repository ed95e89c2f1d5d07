#!/usr/bin/python3
"""PyTorch-Python twin of gm::flow (src/genmodels/flow/{blocks,flow}.cpp) and of the flow models'
training step (src/genmodels/models/flow.cpp), for bench/flow_bench.cpp.
Run with Debian's /usr/bin/python3 (python3-torch 1.13).

  /usr/bin/python3 bench/flow_reference.py --dir DIR --json OUT.json [--threads 2]

DIR/manifest.json lists the configurations; DIR/NAME/ holds param.flow.items.N....npy for every
parameter and buffer (names match the C++ modules, so load_state_dict(strict=True) checks the
architecture) and check_y.npy with the C++ mean log p and gradient norm (validated to 1e-4
before timing; exit status 2 on mismatch).
"""
import math
import os
import sys

import torch
import torch.nn as nn
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import twin_common as tc  # noqa: E402

LOG_2PI = math.log(2 * math.pi)


def conv(cin, cout, k):
    return nn.Conv2d(cin, cout, k, padding=k // 2)


def per_example_sum(t):
    return t.flatten(1).sum(1)


class ResBlock(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.conv1, self.conv2 = conv(c, c, 3), conv(c, c, 3)

    def forward(self, x):
        return x + self.conv2(F.relu(self.conv1(F.relu(x))))


class Coupling(nn.Module):
    def __init__(self, channels, mask, parity, tanh, hidden, res_blocks, bound, bf16, cl):
        super().__init__()
        self.mask, self.parity, self.tanh, self.bound = mask, parity, tanh, bound
        self.bf16, self.cl = bf16, cl
        out = channels // 2 if mask == "channel" else channels
        cin = channels // 2 if mask == "channel" else channels
        layers = [conv(cin, hidden, 3)]
        if res_blocks == 0:
            layers += [nn.ReLU(), conv(hidden, hidden, 1)]
        else:
            layers += [ResBlock(hidden) for _ in range(res_blocks)]
        layers += [nn.ReLU(), conv(hidden, 2 * out, 3)]
        self.net = nn.Sequential(*layers)
        if cl:  # as CouplingOptions::channels_last: NHWC weights (load_state_dict keeps them)
            self.net = self.net.to(memory_format=torch.channels_last)
        if tanh:
            self.scale = nn.Parameter(torch.ones(1, out, 1, 1))

    def conditioner(self, cond):
        if self.cl:  # NHWC strides also for one channel (gm::nn::strictly_channels_last)
            cond = torch.empty_like(cond, memory_format=torch.channels_last).copy_(cond)
        if not self.bf16:
            out = self.net(cond)
        else:
            with torch.autocast("cpu", dtype=torch.bfloat16):  # as AffineCoupling::conditioner
                out = self.net(cond).float()
        return out.contiguous() if self.cl else out

    def scale_shift(self, cond):
        h0, h1 = self.conditioner(cond).chunk(2, 1)
        if self.tanh:
            return self.scale * torch.tanh(h0), h1
        s = -F.softplus(-(h0 + 2.0))
        return (self.bound * torch.tanh(s / self.bound) if self.bound > 0 else s), h1

    def forward(self, x, logdet):
        if self.mask == "channel":
            a, b = x.chunk(2, 1)
            c, u = (b, a) if self.parity else (a, b)
            s, t = self.scale_shift(c)
            logdet = logdet + per_example_sum(s)
            v = u * torch.exp(s) + t
            return (torch.cat([v, c], 1) if self.parity else torch.cat([c, v], 1)), logdet
        h, w = x.shape[2], x.shape[3]
        i = torch.arange(h).view(h, 1)
        j = torch.arange(w).view(1, w)
        bmask = ((i + j + int(self.parity)) % 2 == 0).to(x.dtype).view(1, 1, h, w)
        nb = 1.0 - bmask
        s0, t0 = self.scale_shift(x * bmask)
        s, t = s0 * nb, t0 * nb
        return x * torch.exp(s) + t, logdet + per_example_sum(s)


class ActNorm(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.bias = nn.Parameter(torch.zeros(1, c, 1, 1))
        self.log_scale = nn.Parameter(torch.zeros(1, c, 1, 1))
        self.register_buffer("initialized", torch.zeros(1, dtype=torch.bool))

    def forward(self, x, logdet):
        if not bool(self.initialized):
            with torch.no_grad():
                mean = x.mean((0, 2, 3), keepdim=True)
                std = (x - mean).square().mean((0, 2, 3), keepdim=True).sqrt()
                self.bias.copy_(-mean)
                self.log_scale.copy_(-torch.log(std + 1e-6))
                self.initialized.fill_(True)
        logdet = logdet + x.shape[2] * x.shape[3] * self.log_scale.sum()
        return (x + self.bias) * torch.exp(self.log_scale), logdet


class InvConv(nn.Module):
    def __init__(self, c):
        super().__init__()
        for n in ("p", "sign_s", "lower_mask", "eye"):
            self.register_buffer(n, torch.zeros(c, c) if n != "sign_s" else torch.zeros(c))
        self.lower = nn.Parameter(torch.zeros(c, c))
        self.upper = nn.Parameter(torch.zeros(c, c))
        self.log_s = nn.Parameter(torch.zeros(c))

    def forward(self, x, logdet):
        l = self.lower * self.lower_mask + self.eye
        u = self.upper * self.lower_mask.t() + torch.diag(self.sign_s * torch.exp(self.log_s))
        w = torch.matmul(self.p, torch.matmul(l, u))
        logdet = logdet + x.shape[2] * x.shape[3] * self.log_s.sum()
        return F.conv2d(x, w.view(w.shape[0], w.shape[1], 1, 1)), logdet


class Squeeze(nn.Module):
    def forward(self, x, logdet):
        n, c, h, w = x.shape
        x = x.view(n, c, h // 2, 2, w // 2, 2).permute(0, 1, 3, 5, 2, 4)
        return x.reshape(n, 4 * c, h // 2, w // 2), logdet


class Split(nn.Module):
    def __init__(self, c, learned):
        super().__init__()
        self.c = c
        if learned:
            self.prior = conv(c - c // 2, 2 * (c // 2), 3)
        else:
            self.prior = None

    def forward(self, x, logdet):
        keep = self.c - self.c // 2
        kept, out = x[:, :keep], x[:, keep:]
        if self.prior is None:
            return kept, out, logdet
        mean, logs = self.prior(kept).chunk(2, 1)
        return kept, (out - mean) * torch.exp(-logs), logdet - per_example_sum(logs)


class Flow(nn.Module):
    """Same construction order as FlowImpl (flow.cpp), images only."""

    def __init__(self, cfg):
        super().__init__()
        c, h, w = cfg["shape"]
        glow = cfg["arch"] == "glow"
        hid, res, steps = cfg["hidden"], cfg["res_blocks"], cfg["steps"]
        tanh, bound, bf16 = cfg["scale"] == "tanh", cfg["scale_bound"], cfg.get("bf16", False)
        cl = cfg.get("channels_last", False)
        items = []
        for level in range(cfg["levels"]):
            last = level == cfg["levels"] - 1
            if glow:
                items.append(Squeeze())
                c *= 4
                for _ in range(steps):
                    items += [ActNorm(c), InvConv(c),
                              Coupling(c, "channel", False, tanh, hid, res, bound, bf16, cl)]
            else:
                for k in range(steps + 1 if last else steps):
                    items += [Coupling(c, "checker", k % 2 == 1, tanh, hid, res, bound, bf16, cl),
                              ActNorm(c)]
                if not last:
                    items.append(Squeeze())
                    c *= 4
                    for k in range(steps):
                        items += [Coupling(c, "channel", k % 2 == 1, tanh, hid, res, bound,
                                           bf16, cl), ActNorm(c)]
            if not last:
                items.append(Split(c, glow and cfg["learned_prior"]))
                c -= c // 2
        self.items = nn.ModuleList(items)

    def log_prob(self, x):
        logdet = torch.zeros(x.shape[0])
        lp = 0.0
        for m in self.items:
            if isinstance(m, Split):
                x, z, logdet = m(x, logdet)
                lp = lp - 0.5 * per_example_sum(z.square() + LOG_2PI)
            else:
                x, logdet = m(x, logdet)
        return lp - 0.5 * per_example_sum(x.square() + LOG_2PI) + logdet


class Holder(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        self.flow = Flow(cfg)


def bpd_loss(net, cfg, x):
    d = x[0].numel()
    x01 = (torch.round((x + 1) * 127.5).clamp(0, 255) + torch.rand_like(x)) / 256.0
    if cfg["dequantize"] == "logit":
        a = cfg["logit_alpha"]
        p = a + (1 - 2 * a) * x01
        lp, l1p = torch.log(p), torch.log1p(-p)
        y = lp - l1p
        logdet = per_example_sum(math.log(1 - 2 * a) - lp - l1p)
    else:
        y = 2 * x01 - 1
        logdet = d * math.log(2.0)
    nll = -(net.flow.log_prob(y) + logdet) + d * math.log(256.0)
    return nll.mean() / (d * math.log(2.0))


def validate(net, d, cfg):
    y = tc.load(d, "check_y")
    lp = net.flow.log_prob(y).mean()
    (-lp).backward()
    return tc.validate(cfg["name"], "log prob", lp.item(), cfg["check_log_prob"],
                       tc.grad_norm(net), cfg["check_grad_norm"],
                       tol=2e-3 if cfg.get("bf16") else 1e-4)


if __name__ == "__main__":
    tc.run(3, 20, Holder, validate, bpd_loss)
