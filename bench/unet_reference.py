#!/usr/bin/python3
"""PyTorch-Python twin of gm::nn::UNet (src/genmodels/nn/unet.{h,cpp}) and of the ddpm training
step / DDIM sampler, for bench/unet_bench.cpp.

Run with Debian's /usr/bin/python3 (python3-torch 1.13). Module names match the C++ modules name
for name ("unet.input_blocks.0.res.norm1.weight", ...), so the .npy state dict the C++ bench writes
(one NAME.npy per parameter plus manifest.json) loads with load_state_dict(strict=True).

  /usr/bin/python3 bench/unet_reference.py --dir DIR --json OUT.json [--threads 2]

DIR (written by unet_bench) holds: manifest.json (config + parameter names), the parameters,
check_{x,t,y,target,out}.npy + the C++ loss and gradient norm (validation of forward and backward),
alphas_cumprod.npy, ddim_timesteps.npy, ddim_{xT,labels,out}.npy (validation of the sampler).
The script validates first (exit status 2 on mismatch), then times the train step and DDIM.
"""
import argparse
import json
import math
import os
import statistics
import sys
import time

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F


# ----------------------------------------------------------------------------- model (unet.cpp)
def timestep_embedding(t, dim, max_period=10000.0):
    half = dim // 2
    freqs = torch.exp(torch.arange(half, dtype=torch.float32) * (-math.log(max_period) / half))
    args = t.float().unsqueeze(1) * freqs.unsqueeze(0)
    emb = torch.cat([torch.cos(args), torch.sin(args)], 1)
    if dim % 2 == 1:
        emb = torch.cat([emb, torch.zeros(t.shape[0], 1)], 1)
    return emb


def norm_groups(groups, channels):
    g = min(groups, channels)
    assert channels % g == 0
    return g


class GroupNorm(nn.GroupNorm):
    """nn.GroupNorm computed in fp32 and returned in the input's dtype, as fused_norm.cpp does:
    torch 1.13 has no mixed-dtype GroupNorm, so under bf16 autocast nn.GroupNorm fails on the
    bf16 output of a convolution."""

    def forward(self, x):
        if x.dtype == torch.float32:
            return super().forward(x)
        return super().forward(x.float()).to(x.dtype)


def group_norm(groups, ch):
    return GroupNorm(norm_groups(groups, ch), ch)  # eps 1e-5, affine: as torch::nn::GroupNorm


def conv(cin, cout, k, stride=1):
    return nn.Conv2d(cin, cout, k, stride=stride, padding=k // 2, bias=True)


def zero_(m):
    with torch.no_grad():
        for p in m.parameters():
            p.zero_()
    return m


def is_channels_last(t):
    return t.dim() == 4 and t.is_contiguous(memory_format=torch.channels_last) and not t.is_contiguous()


def layout_of(t):
    return torch.channels_last if is_channels_last(t) else torch.contiguous_format


class ResBlock(nn.Module):
    def __init__(self, in_ch, out_ch, emb_dim, groups, dropout, scale_shift):
        super().__init__()
        self.dropout, self.scale_shift_norm = dropout, scale_shift
        self.norm1 = group_norm(groups, in_ch)
        self.conv1 = conv(in_ch, out_ch, 3)
        self.emb_proj = nn.Linear(emb_dim, 2 * out_ch if scale_shift else out_ch)
        self.norm2 = group_norm(groups, out_ch)
        self.conv2 = zero_(conv(out_ch, out_ch, 3))
        self.skip = conv(in_ch, out_ch, 1) if in_ch != out_ch else None

    def forward(self, x, emb_act):
        h = self.conv1(F.silu(self.norm1(x)))
        e = self.emb_proj(emb_act).unsqueeze(-1).unsqueeze(-1)
        if self.scale_shift_norm:
            s, b = e.chunk(2, 1)
            h = F.silu(torch.addcmul(b, self.norm2(h), s + 1.0))
        else:
            h = F.silu(self.norm2(h + e))
        if self.dropout > 0 and self.training:
            h = F.dropout(h, self.dropout, True)
        h = self.conv2(h)
        return self.skip(x) + h if self.skip is not None else x + h


class AttentionBlock(nn.Module):
    def __init__(self, channels, heads, groups):
        super().__init__()
        assert channels % heads == 0
        self.num_heads = heads
        self.norm = group_norm(groups, channels)
        self.qkv = conv(channels, 3 * channels, 1)
        self.proj = zero_(conv(channels, channels, 1))

    def forward(self, x):
        n, c, hh, ww = x.shape
        l, d = hh * ww, c // self.num_heads
        qkv = self.qkv(self.norm(x)).reshape(n * self.num_heads, 3 * d, l)
        q = qkv.narrow(1, 0, d) * (1.0 / math.sqrt(d))
        k = qkv.narrow(1, d, d)
        v = qkv.narrow(1, 2 * d, d)
        w = torch.softmax(torch.bmm(q.transpose(1, 2), k), -1)
        a = torch.bmm(v, w.transpose(1, 2))
        return x + self.proj(a.reshape(x.shape).contiguous(memory_format=layout_of(x)))


class UNetStage(nn.Module):
    def __init__(self):
        super().__init__()
        self.res = None
        self.attn = None
        self.op = None
        self.upsample = False

    def forward(self, x, emb_act):
        h = x
        if self.res is not None:
            h = self.res(h, emb_act)
        if self.attn is not None:
            h = self.attn(h)
        if self.op is not None:
            if self.upsample:
                h = F.interpolate(h, scale_factor=(2.0, 2.0), mode="nearest")
            h = self.op(h)
        return h


class UNet(nn.Module):
    def __init__(self, in_channels=1, out_channels=1, base_channels=64, channel_mult=(1, 2, 2),
                 num_res_blocks=2, attention_levels=(2,), num_heads=4, groups=32, dropout=0.0,
                 num_classes=0, scale_shift_norm=False):
        super().__init__()
        self.base_channels, self.num_classes = base_channels, num_classes
        self.levels = len(channel_mult)
        base, emb_dim = base_channels, 4 * base_channels
        self.time_embed = nn.Sequential(nn.Linear(base, emb_dim), nn.SiLU(),
                                        nn.Linear(emb_dim, emb_dim))
        self.label_emb = nn.Embedding(num_classes + 1, emb_dim) if num_classes > 0 else None
        self.conv_in = conv(in_channels, base, 3)

        def make_stage(cin, cout, attn):
            s = UNetStage()
            s.res = ResBlock(cin, cout, emb_dim, groups, dropout, scale_shift_norm)
            if attn:
                s.attn = AttentionBlock(cout, num_heads, groups)
            return s

        self.input_blocks = nn.ModuleList()
        skip_ch, ch = [base], base
        for level in range(self.levels):
            out_ch = base * channel_mult[level]
            for _ in range(num_res_blocks):
                self.input_blocks.append(make_stage(ch, out_ch, level in attention_levels))
                ch = out_ch
                skip_ch.append(ch)
            if level + 1 < self.levels:
                s = UNetStage()
                s.op = conv(ch, ch, 3, 2)
                self.input_blocks.append(s)
                skip_ch.append(ch)
        self.middle_block1 = make_stage(ch, ch, True)
        self.middle_block2 = make_stage(ch, ch, False)
        self.output_blocks = nn.ModuleList()
        for level in reversed(range(self.levels)):
            out_ch = base * channel_mult[level]
            for i in range(num_res_blocks + 1):
                s = make_stage(ch + skip_ch.pop(), out_ch, level in attention_levels)
                ch = out_ch
                if level > 0 and i == num_res_blocks:
                    s.op = conv(ch, ch, 3)
                    s.upsample = True
                self.output_blocks.append(s)
        self.out_norm = group_norm(groups, ch)
        self.conv_out = zero_(conv(ch, out_channels, 3))

    def forward(self, x, t, y=None):
        n = x.shape[0]
        emb = self.time_embed(timestep_embedding(t, self.base_channels))
        if self.num_classes > 0:
            if y is None:
                y = torch.full((n,), self.num_classes, dtype=torch.long)
            emb = emb + self.label_emb(y)
        emb_act = F.silu(emb)
        skips = []
        if is_channels_last(self.conv_out.weight) and not is_channels_last(x):
            # as unet.cpp: a 1-channel batch gets channels-last strides, else the first level
            # would run NCHW (x.contiguous(memory_format=channels_last) keeps its strides)
            x = torch.empty(x.shape, dtype=x.dtype, memory_format=torch.channels_last).copy_(x)
        h = self.conv_in(x)
        skips.append(h)
        for s in self.input_blocks:
            h = s(h, emb_act)
            skips.append(h)
        h = self.middle_block2(self.middle_block1(h, emb_act), emb_act)
        for s in self.output_blocks:
            h = s(torch.cat([h, skips.pop()], 1), emb_act)
        return self.conv_out(F.silu(self.out_norm(h)))


class DdpmNet(nn.Module):  # the C++ DenoiserNet registers the U-Net as "unet"
    def __init__(self, **kw):
        super().__init__()
        self.unet = UNet(**kw)

    def forward(self, x, t, y=None):
        return self.unet(x, t, y)


# ---------------------------------------------------------------- train step (loss.cpp, trainer)
class Trainer:
    """diffusion_loss (v/eps/x0, t ~ U{0..T-1}, label dropout) + Adam + clip 1.0 + EMA, as
    src/genmodels/{diffusion/loss.cpp, train/trainer.cpp, train/ema.cpp}."""

    def __init__(self, net, abar, m):
        self.net, self.abar = net, abar
        self.prediction, self.dropout, self.null = m["prediction"], m["class_dropout"], m["num_classes"]
        self.opt = torch.optim.Adam(net.parameters(), lr=m["lr"], betas=(0.9, 0.999), eps=1e-8)
        self.ema_decay, self.n_updates = m["ema_decay"], 0
        self.params = list(net.parameters())
        self.shadow = [p.detach().clone() for p in self.params]

    def loss(self, x0, labels):
        n = x0.shape[0]
        t = torch.randint(0, self.abar.shape[0], (n,))
        noise = torch.randn_like(x0)
        ab = self.abar[t].to(x0.dtype).view(n, 1, 1, 1)
        x_t = torch.sqrt(ab) * x0 + torch.sqrt(1.0 - ab) * noise
        drop = torch.rand(n) < self.dropout
        y = torch.where(drop, torch.full_like(labels, self.null), labels)
        out = self.net(x_t, t.float(), y)
        target = {"eps": noise, "x0": x0,
                  "v": torch.sqrt(ab) * noise - torch.sqrt(1.0 - ab) * x0}[self.prediction]
        return F.mse_loss(out, target)

    def step(self, x0, labels):
        self.opt.zero_grad()
        loss = self.loss(x0, labels)
        loss_v = loss.item()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(self.params, 1.0)
        self.opt.step()
        self.n_updates += 1
        with torch.no_grad():
            d = min(self.ema_decay, (1.0 + self.n_updates) / (10.0 + self.n_updates))
            for s, p in zip(self.shadow, self.params):
                s.mul_(d).add_(p.detach(), alpha=1.0 - d)
        return loss_v


# ------------------------------------------------------------------------ DDIM (sampling/ddim.cpp)
@torch.no_grad()
def ddim_sample(net, abar, timesteps, x, labels, guidance, null_label, prediction, clip_x0=True):
    n = x.shape[0]
    for i, t in enumerate(timesteps):
        ab = float(abar[t])
        ab_prev = float(abar[timesteps[i + 1]]) if i + 1 < len(timesteps) else 1.0
        tv = torch.full((n,), float(t))
        if guidance == 1.0:
            raw = net(x, tv, labels)
        else:  # classifier-free guidance, both halves in one batch (denoiser.cpp)
            out = net(torch.cat([x, x]), torch.cat([tv, tv]),
                      torch.cat([labels, torch.full((n,), null_label, dtype=torch.long)]))
            raw = torch.lerp(out[n:], out[:n], guidance)
        a = torch.full((n, 1, 1, 1), ab)
        if prediction == "eps":
            eps = raw
        elif prediction == "v":
            eps = torch.sqrt(a) * raw + torch.sqrt(1.0 - a) * x
        else:
            eps = (x - torch.sqrt(a) * raw) / torch.sqrt(1.0 - a)
        abt = torch.full((), ab)
        x0 = (x - torch.sqrt(1.0 - abt) * eps) / torch.sqrt(abt)
        if clip_x0:
            x0 = x0.clamp(-1.0, 1.0)
            eps = (x - torch.sqrt(abt) * x0) / torch.sqrt(1.0 - abt)
        x = x0 * math.sqrt(ab_prev) + eps * math.sqrt(max(1.0 - ab_prev, 0.0))  # eta = 0
    return x


# ----------------------------------------------------------------------------------- harness
def load(d, name):
    return torch.from_numpy(np.load(os.path.join(d, name + ".npy")))


def build(d, m):
    net = DdpmNet(**m["unet"])
    sd = {k: load(d, "param." + k) for k in m["params"]}
    net.load_state_dict(sd, strict=True)
    return net


def median_time(fn, warmup, iters):
    for _ in range(warmup):
        fn()
    ts = []
    for _ in range(iters):
        t0 = time.perf_counter()
        fn()
        ts.append(time.perf_counter() - t0)
    return statistics.median(ts), ts


def count_forward_macs(net, x, t, y):
    """MACs of one forward from hooks on Conv2d/Linear plus the two attention bmm's."""
    macs = [0]
    hooks = []

    def conv_hook(mod, inp, out):
        k = mod.kernel_size[0] * mod.kernel_size[1]
        macs[0] += out.numel() * (mod.in_channels // mod.groups) * k

    def lin_hook(mod, inp, out):
        macs[0] += out.numel() * mod.in_features

    def attn_hook(mod, inp, out):
        n, c, h, w = inp[0].shape
        macs[0] += 2 * n * c * (h * w) ** 2  # q^T k and v w^T over all heads

    for mod in net.modules():
        if isinstance(mod, nn.Conv2d):
            hooks.append(mod.register_forward_hook(conv_hook))
        elif isinstance(mod, nn.Linear):
            hooks.append(mod.register_forward_hook(lin_hook))
        elif isinstance(mod, AttentionBlock):
            hooks.append(mod.register_forward_hook(attn_hook))
    with torch.no_grad():
        net(x, t, y)
    for h in hooks:
        h.remove()
    return macs[0]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--dir", required=True, help="directory written by unet_bench")
    ap.add_argument("--json", required=True)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--train-warmup", type=int, default=3)
    ap.add_argument("--train-iters", type=int, default=8)
    ap.add_argument("--sample-reps", type=int, default=2)
    ap.add_argument("--variants", default="nchw,channels_last",
                    help="train-step variants: nchw, channels_last, bf16")
    ap.add_argument("--sample-variants", default="nchw,channels_last,bf16,bf16_channels_last",
                    help="DDIM sampling variants: nchw, channels_last, bf16, bf16_channels_last")
    ap.add_argument("--tol", type=float, default=1e-4)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    d = a.dir
    with open(os.path.join(d, "manifest.json")) as f:
        m = json.load(f)
    res = {"torch": torch.__version__, "threads": torch.get_num_threads(), "python": sys.version.split()[0]}

    # --- validation: forward output, loss and gradient norm against C++
    net = build(d, m)
    x, t, y = load(d, "check_x"), load(d, "check_t"), load(d, "check_y")
    target, out_cpp = load(d, "check_target"), load(d, "check_out")
    net.train()
    out = net(x, t, y)
    fwd_err = (out - out_cpp).abs().max().item()
    loss = F.mse_loss(out, target)
    loss.backward()
    gnorm = torch.norm(torch.stack([p.grad.norm() for p in net.parameters()])).item()
    loss_rel = abs(loss.item() - m["check_loss"]) / abs(m["check_loss"])
    g_rel = abs(gnorm - m["check_grad_norm"]) / m["check_grad_norm"]
    # DDIM from the same x_T, labels and timesteps, with the same weights
    abar = load(d, "alphas_cumprod")  # float64, T
    ts = [int(v) for v in load(d, "ddim_timesteps").tolist()]
    xs = ddim_sample(net.eval(), abar, ts, load(d, "ddim_xT"), load(d, "ddim_labels"),
                     m["guidance"], m["num_classes"], m["prediction"])
    ddim_err = (xs.clamp(-1, 1) - load(d, "ddim_out")).abs().max().item()
    ok = fwd_err < a.tol and loss_rel < a.tol and g_rel < 1e-3 and ddim_err < 1e-3
    res["validation"] = {"forward_max_abs_err": fwd_err, "loss_rel_err": loss_rel,
                         "grad_norm_rel_err": g_rel, "ddim_max_abs_err": ddim_err,
                         "forward_out_absmax": out_cpp.abs().max().item(), "ok": ok}
    print(f"[python] validation: forward max|diff| {fwd_err:.2e} (|out| max "
          f"{out_cpp.abs().max().item():.3f}), loss rel {loss_rel:.1e}, grad-norm rel {g_rel:.1e}, "
          f"DDIM-50 max|diff| {ddim_err:.1e} -> {'OK' if ok else 'MISMATCH'}", flush=True)
    res["forward_macs_hooks"] = count_forward_macs(net, x, t, y)
    if not ok:
        with open(a.json, "w") as f:
            json.dump(res, f, indent=1)
        sys.exit(2)

    # --- train step (batch from the C++ bench: Fashion-MNIST-shaped, fixed)
    bx, by = load(d, "train_x"), load(d, "train_y")
    res["train"] = {}
    for variant in a.variants.split(","):
        torch.manual_seed(0)
        net = build(d, m).train()
        xb = bx
        if variant == "channels_last":
            net = net.to(memory_format=torch.channels_last)
            xb = bx.contiguous(memory_format=torch.channels_last)
        tr = Trainer(net, abar, m)
        if variant == "bf16":
            def fn():
                with torch.autocast("cpu", dtype=torch.bfloat16):
                    tr.opt.zero_grad()
                    loss = tr.loss(xb, by)
                loss.item()
                loss.backward()
                torch.nn.utils.clip_grad_norm_(tr.params, 1.0)
                tr.opt.step()
        else:
            def fn():
                tr.step(xb, by)
        med, all_t = median_time(fn, a.train_warmup, a.train_iters)
        res["train"][variant] = {"median_s": med, "img_per_s": bx.shape[0] / med, "times": all_t}
        print(f"[python] train {variant:14s} {med * 1e3:8.1f} ms/step  {bx.shape[0] / med:7.1f} img/s",
              flush=True)

    # --- DDIM 50 steps with guidance (batch doubling), eval mode, no grad, per variant
    sx, sy = load(d, "sample_xT"), load(d, "sample_labels")
    evals = len(ts)
    res["sample"] = {}
    for variant in [v for v in a.sample_variants.split(",") if v]:
        net = build(d, m).eval()
        if "channels_last" in variant:
            net = net.to(memory_format=torch.channels_last)

        def sfn():
            with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16,
                                                 enabled=variant.startswith("bf16")):
                ddim_sample(net, abar, ts, sx, sy, m["guidance"], m["num_classes"], m["prediction"])
        med, all_t = median_time(sfn, 0, a.sample_reps)
        res["sample"][variant] = {"median_s": med, "img_per_s": sx.shape[0] / med,
                                  "net_evals_per_s": evals / med, "net_batch": 2 * sx.shape[0],
                                  "images": sx.shape[0], "steps": evals, "times": all_t}
        print(f"[python] DDIM-{evals} guided {variant:18s} {sx.shape[0] / med:6.2f} img/s, "
              f"{evals / med:6.2f} net evals/s (batch {2 * sx.shape[0]})", flush=True)
    with open(a.json, "w") as f:
        json.dump(res, f, indent=1)


if __name__ == "__main__":
    main()
