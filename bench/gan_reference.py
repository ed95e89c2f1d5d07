#!/usr/bin/python3
"""PyTorch-Python twin of the GANs (src/genmodels/gan/{dcgan,gan_model}.cpp) and of their train
step, for bench/gan_bench.cpp. Run with Debian's /usr/bin/python3 (python3-torch 1.13).

  /usr/bin/python3 bench/gan_reference.py --dir DIR --json OUT.json [--threads 2]

The networks are written as a Python user would write them: nn.ConvTranspose2d upsampling,
torch.nn.utils.spectral_norm (one power iteration per training forward, as the C++ SNConv2d),
conditional BatchNorm from two embeddings, a projection discriminator. DIR/NAME/ holds the C++
weights (param.g.project.weight.npy, ...; SN weights are mapped to weight_orig / weight_u /
weight_v) and a fixed batch with fixed latents: the twin must reproduce the C++ discriminator and
generator losses and gradient norms before it times the step (n_critic discriminator steps with
fresh latents, then the generator step, then the generator's EMA).
"""
import os
import statistics
import sys
import time

import torch
import torch.nn as nn
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import twin_common as tc  # noqa: E402


def image_levels(size):
    k, s = 0, size
    while s % 2 == 0 and s // 2 >= 3 and k < 5:
        s //= 2
        k += 1
    return k, s


class CondBN(nn.Module):
    def __init__(self, c, classes):
        super().__init__()
        self.bn = nn.BatchNorm2d(c, affine=classes <= 0)
        if classes > 0:
            self.gain = nn.Embedding(classes, c)
            self.shift = nn.Embedding(classes, c)
        self.classes = classes

    def forward(self, x, y):
        h = self.bn(x)
        if self.classes <= 0:
            return h
        return h * self.gain(y)[:, :, None, None] + self.shift(y)[:, :, None, None]


class Generator(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        c_img, size, _ = cfg["shape"]
        k, s0 = image_levels(size)
        ch = [cfg["g_channels"] << (k - 1 - i) for i in range(k)] + [c_img]
        self.s0, self.c0, self.k = s0, ch[0], k
        K = cfg["num_classes"]
        self.project = nn.Linear(cfg["latent"], ch[0] * s0 * s0)
        self.norm0 = CondBN(ch[0], K)
        for i in range(k):
            setattr(self, f"up{i}", nn.ConvTranspose2d(ch[i], ch[i + 1], 4, 2, 1))
            if i + 1 < k:
                setattr(self, f"norm{i + 1}", CondBN(ch[i + 1], K))

    def forward(self, z, y):
        h = self.project(z).view(z.shape[0], self.c0, self.s0, self.s0)
        h = F.relu(self.norm0(h, y))
        for i in range(self.k):
            h = getattr(self, f"up{i}")(h)
            h = F.relu(getattr(self, f"norm{i + 1}")(h, y)) if i + 1 < self.k else torch.tanh(h)
        return h


class Discriminator(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        c_in, size, _ = cfg["shape"]
        k, s0 = image_levels(size)
        sn = nn.utils.spectral_norm if cfg["spectral_norm"] else (lambda m: m)
        self.k = k
        for i in range(k):
            out = cfg["d_channels"] << i
            setattr(self, f"conv{i}", sn(nn.Conv2d(c_in, out, 4, 2, 1)))
            c_in = out
        features = c_in * s0 * s0
        self.head = sn(nn.Linear(features, 1))
        self.embed = nn.Embedding(cfg["num_classes"], features) if cfg["num_classes"] else None

    def forward(self, x, y):
        h = x
        for i in range(self.k):
            h = F.leaky_relu(getattr(self, f"conv{i}")(h), 0.2)
        h = h.flatten(1).float()
        out = self.head(h).squeeze(1)
        if self.embed is not None:  # projection (Miyato & Koyama 2018 eq. 3)
            out = out + (self.embed(y) * h).sum(1)
        return out


class GanNet(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        self.g = Generator(cfg)
        self.d = Discriminator(cfg)


def d_loss(kind, real, fake):
    if kind == "ns":
        return F.softplus(-real).mean() + F.softplus(fake).mean()
    if kind == "hinge":
        return F.relu(1 - real).mean() + F.relu(1 + fake).mean()
    if kind == "lsgan":
        return 0.5 * ((real - 1).pow(2).mean() + fake.pow(2).mean())
    return fake.mean() - real.mean()


def g_loss(kind, fake):
    if kind == "ns":
        return F.softplus(-fake).mean()
    if kind == "lsgan":
        return 0.5 * (fake - 1).pow(2).mean()
    return -fake.mean()


def gradient_penalty(d, real, fake, y, e=None):
    if e is None:
        e = torch.rand(real.shape[0], 1, 1, 1)
    x_hat = (e * real.detach() + (1 - e) * fake.detach()).requires_grad_(True)
    grad, = torch.autograd.grad(d(x_hat, y).sum(), x_hat, create_graph=True)
    return (grad.flatten(1).norm(2, 1) - 1).pow(2).mean()


def load_weights(net, d, cfg):
    state = {}
    sn = cfg["spectral_norm"]
    for name in cfg["params"]:
        key = name
        if sn and name.startswith("d.") and not name.startswith("d.embed"):
            mod, leaf = name.rsplit(".", 1)
            key = {"weight": mod + ".weight_orig", "u": mod + ".weight_u",
                   "v": mod + ".weight_v"}.get(leaf, name)
        state[key] = tc.load(d, "param." + name)
    net.load_state_dict(state, strict=True)


def autocast(cfg):
    return torch.autocast("cpu", dtype=torch.bfloat16, enabled=cfg["bf16"])


def validate(net, d, cfg):
    x, y, zd, zg = (tc.load(d, "check_" + n) for n in ("x", "y", "zd", "zg"))
    y = y if cfg["num_classes"] else None
    net.train()
    net.zero_grad()
    with torch.no_grad(), autocast(cfg):
        fake = net.g(zd, y).float()
    with autocast(cfg):
        real_s, fake_s = net.d(x, y).float(), net.d(fake, y).float()
    ld = d_loss(cfg["loss"], real_s, fake_s)
    if cfg["gp_lambda"] > 0:
        ld = ld + cfg["gp_lambda"] * gradient_penalty(net.d, x, fake, y, tc.load(d, "check_e"))
    ld.backward()
    tol = 2e-2 if cfg["bf16"] else 1e-4
    out = tc.validate(cfg["name"] + " D", "loss", ld.item(), cfg["check_d_loss"],
                      tc.grad_norm(net.d), cfg["check_d_grad_norm"], tol=tol)
    net.zero_grad()
    with autocast(cfg):
        lg = g_loss(cfg["loss"], net.d(net.g(zg, y), y).float())
    lg.backward()
    out_g = tc.validate(cfg["name"] + " G", "loss", lg.item(), cfg["check_g_loss"],
                        tc.grad_norm(net.g), cfg["check_g_grad_norm"], tol=tol)
    net.zero_grad()
    return {"d": out, "g": out_g}


def time_steps(net, cfg, x, y, warmup, iters):
    """GanModel::train_step + the generator's EMA, as the trainer runs it."""
    betas = (cfg["beta1"], cfg["beta2"])
    opt_g = torch.optim.Adam(net.g.parameters(), lr=cfg["lr"], betas=betas)
    opt_d = torch.optim.Adam(net.d.parameters(), lr=cfg["lr"], betas=betas)
    g_params, d_params = list(net.g.parameters()), list(net.d.parameters())
    shadow = [p.detach().clone() for p in g_params]
    net.train()
    n, latent, kind = x.shape[0], cfg["latent"], cfg["loss"]
    prob = kind == "ns"
    times, ph = [], {"d_s": [], "g_s": [], "ema_s": []}
    for i in range(warmup + iters):
        t0 = time.perf_counter()
        for _ in range(cfg["n_critic"]):
            with torch.no_grad(), autocast(cfg):
                fake = net.g(torch.randn(n, latent), y).float()
            with autocast(cfg):
                real_s, fake_s = net.d(x, y).float(), net.d(fake, y).float()
            loss = d_loss(kind, real_s, fake_s)
            if cfg["gp_lambda"] > 0:
                gp = gradient_penalty(net.d, x, fake, y)
                loss = loss + cfg["gp_lambda"] * gp
                gp.item()
            loss.item()
            opt_d.zero_grad()
            loss.backward()
            opt_d.step()
            (torch.sigmoid(real_s) if prob else real_s).mean().item()
            (torch.sigmoid(fake_s) if prob else fake_s).mean().item()
        t1 = time.perf_counter()
        for p in d_params:  # no D weight gradients in the G step (as the C++ step)
            p.requires_grad_(False)
        with autocast(cfg):
            fake_s = net.d(net.g(torch.randn(n, latent), y), y).float()
        loss = g_loss(kind, fake_s)
        loss.item()
        opt_g.zero_grad()
        loss.backward()
        opt_g.step()
        for p in d_params:
            p.requires_grad_(True)
        t2 = time.perf_counter()
        k = i + 1
        decay = min(0.999, (1 + k) / (10 + k))
        with torch.no_grad():
            torch._foreach_mul_(shadow, decay)
            torch._foreach_add_(shadow, g_params, alpha=1 - decay)
        t3 = time.perf_counter()
        if i >= warmup:
            times.append(t3 - t0)
            for key, v in zip(ph, (t1 - t0, t2 - t1, t3 - t2)):
                ph[key].append(v)
    return {"median_s": statistics.median(times), "times": times,
            "phases": {k: statistics.median(v) for k, v in ph.items()}}


def main():
    import json
    a = tc.parse_args(3, 20)
    manifest = json.load(open(os.path.join(a.dir, "manifest.json")))
    out = {"torch": torch.__version__, "threads": torch.get_num_threads()}
    for cfg in manifest["configs"]:
        d = os.path.join(a.dir, cfg["name"])
        net = GanNet(cfg)
        load_weights(net, d, cfg)
        check = validate(net, d, cfg)
        torch.manual_seed(0)
        b = cfg["batch"]
        x = torch.randint(0, 256, (b, 1, 28, 28)).float() / 127.5 - 1
        y = torch.randint(0, 10, (b,)) if cfg["num_classes"] else None
        r = time_steps(net, cfg, x, y, a.warmup, a.iters)
        r["validation"] = check
        out[cfg["name"]] = r
        print(f"[python] {cfg['name']}: {b / r['median_s']:.0f} img/s")
    json.dump(out, open(a.json, "w"), indent=1)


if __name__ == "__main__":
    main()
