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
import math
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


def nhwc(x):
    """x with channels-last strides, also for one channel (gm::nn::strictly_channels_last)."""
    return torch.empty_like(x, memory_format=torch.channels_last).copy_(x)


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
        self.cl = cfg.get("channels_last", False)
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
        if self.cl:
            h = nhwc(h)
        for i in range(self.k):
            h = getattr(self, f"up{i}")(h)
            h = F.relu(getattr(self, f"norm{i + 1}")(h, y)) if i + 1 < self.k else torch.tanh(h)
        return h.contiguous() if self.cl else h


class Discriminator(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        c_in, size, _ = cfg["shape"]
        k, s0 = image_levels(size)
        sn = nn.utils.spectral_norm if cfg["spectral_norm"] else (lambda m: m)
        self.k = k
        self.cl = cfg.get("channels_last", False)
        for i in range(k):
            out = cfg["d_channels"] << i
            setattr(self, f"conv{i}", sn(nn.Conv2d(c_in, out, 4, 2, 1)))
            c_in = out
        features = c_in * s0 * s0
        self.head = sn(nn.Linear(features, 1))
        self.embed = nn.Embedding(cfg["num_classes"], features) if cfg["num_classes"] else None

    def forward(self, x, y):
        h = nhwc(x) if self.cl else x
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
        if cfg.get("channels_last", False):  # as a Python user would: every 4-D weight NHWC
            self.to(memory_format=torch.channels_last)


# ---------------------------------------------------------------- translation (pix2pix, cyclegan)
class Norm2d(nn.Module):
    def __init__(self, kind, c):
        super().__init__()
        if kind == "batch":
            self.bn = nn.BatchNorm2d(c)
        else:
            self.inorm = nn.InstanceNorm2d(c, affine=False)
        self.kind = kind

    def forward(self, x):
        return self.bn(x) if self.kind == "batch" else self.inorm(x)


class UnetGenerator(nn.Module):
    def __init__(self, c_in, c_out, size, ch, norm, blocks=0):
        super().__init__()
        k, s = 0, size
        while s % 2 == 0 and s // 2 >= 1 and k < 8:
            s //= 2
            k += 1
        c = lambda i: min(ch << i, 8 * ch)
        self.k, self.has_mid = k, s > 1
        for i in range(k):
            setattr(self, f"down{i}", nn.Conv2d(c_in if i == 0 else c(i - 1), c(i), 4, 2, 1))
            if i > 0 and not (i == k - 1 and s == 1):
                setattr(self, f"down_norm{i}", Norm2d(norm, c(i)))
        if self.has_mid:
            self.mid = nn.Conv2d(c(k - 1), c(k - 1), 3, 1, 1)
            self.mid2 = nn.Conv2d(c(k - 1), c(k - 1), 3, 1, 2, dilation=2)
            self.blocks = blocks
            for b in range(blocks):  # residual blocks at the bottleneck (model.g_blocks)
                setattr(self, f"mid_block{b}", ResnetBlock(c(k - 1), norm))
        for i in range(k - 1, -1, -1):
            cin = c(i) if (i == k - 1 and not self.has_mid) else 2 * c(i)
            cout = c_out if i == 0 else c(i - 1)
            setattr(self, f"up{i}", nn.ConvTranspose2d(cin, cout, 4, 2, 1))
            if i > 0:
                setattr(self, f"up_norm{i}", Norm2d(norm, cout))

    def forward(self, x):
        d, h = [], x
        for i in range(self.k):
            h = getattr(self, f"down{i}")(h if i == 0 else F.leaky_relu(h, 0.2))
            if hasattr(self, f"down_norm{i}"):
                h = getattr(self, f"down_norm{i}")(h)
            d.append(h)
        k = self.k
        if self.has_mid:
            m = self.mid2(F.relu(self.mid(F.leaky_relu(d[k - 1], 0.2))))
            for b in range(self.blocks):
                m = getattr(self, f"mid_block{b}")(m)
            h = torch.cat([d[k - 1], m], 1)
        else:
            h = d[k - 1]
        for i in range(k - 1, -1, -1):
            if i < k - 1:
                h = torch.cat([d[i], h], 1)
            h = getattr(self, f"up{i}")(F.relu(h))
            if i == 0:
                return torch.tanh(h)
            h = getattr(self, f"up_norm{i}")(h)
        return h


class ResnetBlock(nn.Module):
    def __init__(self, c, norm):
        super().__init__()
        self.conv1, self.conv2 = nn.Conv2d(c, c, 3), nn.Conv2d(c, c, 3)
        self.norm1, self.norm2 = Norm2d(norm, c), Norm2d(norm, c)

    def forward(self, x):
        h = F.relu(self.norm1(self.conv1(F.pad(x, (1, 1, 1, 1), mode="reflect"))))
        return x + self.norm2(self.conv2(F.pad(h, (1, 1, 1, 1), mode="reflect")))


class ResnetGenerator(nn.Module):
    def __init__(self, c_io, k, blocks, norm):
        super().__init__()
        self.conv_in, self.n_in = nn.Conv2d(c_io, k, 7), Norm2d(norm, k)
        self.down1, self.n_down1 = nn.Conv2d(k, 2 * k, 3, 2, 1), Norm2d(norm, 2 * k)
        self.down2, self.n_down2 = nn.Conv2d(2 * k, 4 * k, 3, 2, 1), Norm2d(norm, 4 * k)
        self.blocks = blocks
        for i in range(blocks):
            setattr(self, f"block{i}", ResnetBlock(4 * k, norm))
        self.up1, self.n_up1 = nn.ConvTranspose2d(4 * k, 2 * k, 4, 2, 1), Norm2d(norm, 2 * k)
        self.up2, self.n_up2 = nn.ConvTranspose2d(2 * k, k, 4, 2, 1), Norm2d(norm, k)
        self.conv_out = nn.Conv2d(k, c_io, 7)

    def forward(self, x):
        h = F.relu(self.n_in(self.conv_in(F.pad(x, (3, 3, 3, 3), mode="reflect"))))
        h = F.relu(self.n_down1(self.down1(h)))
        h = F.relu(self.n_down2(self.down2(h)))
        for i in range(self.blocks):
            h = getattr(self, f"block{i}")(h)
        h = F.relu(self.n_up1(self.up1(h)))
        h = F.relu(self.n_up2(self.up2(h)))
        return torch.tanh(self.conv_out(F.pad(h, (3, 3, 3, 3), mode="reflect")))


class PatchDiscriminator(nn.Module):
    def __init__(self, c_in, ch, layers, norm):
        super().__init__()
        self.n = layers + 2
        for i in range(self.n):
            last = i == layers + 1
            out = 1 if last else ch * min(1 << i, 8)
            setattr(self, f"conv{i}", nn.Conv2d(c_in, out, 4, 2 if i < layers else 1, 1))
            if 0 < i and not last:
                setattr(self, f"norm{i}", Norm2d(norm, out))
            c_in = out

    def forward(self, x):
        h = x
        for i in range(self.n):
            h = getattr(self, f"conv{i}")(h)
            if i + 1 == self.n:
                break
            if hasattr(self, f"norm{i}"):
                h = getattr(self, f"norm{i}")(h)
            h = F.leaky_relu(h, 0.2)
        return h


class ImagePool(nn.Module):
    def __init__(self, capacity, shape):
        super().__init__()
        self.capacity = capacity
        self.register_buffer("images", torch.zeros(capacity, *shape))
        self.register_buffer("count", torch.zeros((), dtype=torch.int64))

    @torch.no_grad()
    def query(self, x):
        out, count = x.clone(), int(self.count)
        u, slot = torch.rand(x.shape[0]), torch.randint(0, self.capacity, (x.shape[0],))
        for i in range(x.shape[0]):
            if count < self.capacity:
                self.images[count] = x[i]
                count += 1
            elif u[i] > 0.5:
                s = int(slot[i])
                out[i] = self.images[s]
                self.images[s] = x[i]
        self.count.fill_(count)
        return out


class Pix2PixNet(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        self.g = UnetGenerator(1, 1, cfg["size"], cfg["g_channels"], cfg["norm"],
                               cfg.get("g_blocks", 0))
        self.d = PatchDiscriminator(2, cfg["d_channels"], cfg["d_layers"], cfg["norm"])


class CycleGanNet(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        k, b, n = cfg["g_channels"], cfg["g_blocks"], cfg["norm"]
        self.g_a, self.g_b = ResnetGenerator(1, k, b, n), ResnetGenerator(1, k, b, n)
        self.d_a = PatchDiscriminator(1, cfg["d_channels"], cfg["d_layers"], n)
        self.d_b = PatchDiscriminator(1, cfg["d_channels"], cfg["d_layers"], n)
        shape = (1, cfg["size"], cfg["size"])
        self.pool_a = ImagePool(cfg["pool_size"], shape)
        self.pool_b = ImagePool(cfg["pool_size"], shape)


def translation_losses(net, cfg, x):
    """The step's losses in order (pix2pix: D then G; cyclegan: G then D_A, D_B) as closures."""
    a, b, kind = x[:, :1], x[:, 1:], cfg["loss"]
    if cfg["model"] == "pix2pix":
        fake = net.g(a)

        def d_step():
            return 0.5 * d_loss(kind, net.d(torch.cat([a, b], 1)),
                                net.d(torch.cat([a, fake.detach()], 1)))

        def g_step():
            return g_loss(kind, net.d(torch.cat([a, fake], 1))) + \
                cfg["lambda_l1"] * (fake - b).abs().mean()
        return [("d", d_step), ("g", g_step)]
    lc, li = cfg["lambda_cycle"], cfg["lambda_identity"]
    st = {}

    def g_step():
        st["fb"], st["fa"] = net.g_a(a), net.g_b(b)
        fb, fa = st["fb"], st["fa"]
        loss = g_loss(kind, net.d_a(fb)) + g_loss(kind, net.d_b(fa)) + \
            lc * ((net.g_b(fb) - a).abs().mean() + (net.g_a(fa) - b).abs().mean())
        if li > 0:
            loss = loss + lc * li * ((net.g_a(b) - b).abs().mean() + (net.g_b(a) - a).abs().mean())
        return loss

    def da_step():
        return 0.5 * d_loss(kind, net.d_a(b), net.d_a(net.pool_a.query(st["fb"].detach())))

    def db_step():
        return 0.5 * d_loss(kind, net.d_b(a), net.d_b(net.pool_b.query(st["fa"].detach())))
    return [("g", g_step), ("d_a", da_step), ("d_b", db_step)]


def validate_translation(net, d, cfg):
    x = tc.load(d, "check_x")
    net.train()
    net.zero_grad()
    steps = dict(translation_losses(net, cfg, x))
    out = {}
    if cfg["model"] == "pix2pix":
        ld = steps["d"]()
        ld.backward()
        out["d"] = tc.validate(cfg["name"] + " D", "loss", ld.item(), cfg["check_d_loss"],
                               tc.grad_norm(net.d), cfg["check_d_grad_norm"])
        net.zero_grad()
        lg = steps["g"]()
        lg.backward()
        out["g"] = tc.validate(cfg["name"] + " G", "loss", lg.item(), cfg["check_g_loss"],
                               tc.grad_norm(net.g), cfg["check_g_grad_norm"])
    else:
        lg = steps["g"]()
        lg.backward()
        gn = math.hypot(tc.grad_norm(net.g_a), tc.grad_norm(net.g_b))
        out["g"] = tc.validate(cfg["name"] + " G", "loss", lg.item(), cfg["check_g_loss"], gn,
                               cfg["check_g_grad_norm"])
        net.zero_grad()
        ld = steps["d_a"]()  # the pool is still filling: it returns its input
        ld.backward()
        out["d"] = tc.validate(cfg["name"] + " D_A", "loss", ld.item(), cfg["check_d_loss"],
                               tc.grad_norm(net.d_a), cfg["check_d_grad_norm"])
    net.zero_grad()
    return out


def time_translation(net, cfg, x, warmup, iters):
    """TranslationModel::train_step (D frozen in G steps) + the generators' EMAs."""
    betas = (cfg["beta1"], cfg["beta2"])
    groups = {"g": net.g, "d": net.d} if cfg["model"] == "pix2pix" else \
        {"g": nn.ModuleList([net.g_a, net.g_b]), "d_a": net.d_a, "d_b": net.d_b}
    opts = {k: torch.optim.Adam(m.parameters(), lr=cfg["lr"], betas=betas)
            for k, m in groups.items()}
    d_params = [p for k, m in groups.items() if k.startswith("d") for p in m.parameters()]
    g_params = list(groups["g"].parameters())
    shadow = [p.detach().clone() for p in g_params]
    net.train()
    times, ph = [], {"d_s": [], "g_s": [], "ema_s": []}
    for i in range(warmup + iters):
        t0 = time.perf_counter()
        spent = {"d_s": 0.0, "g_s": 0.0}
        mark = t0
        with autocast(cfg):  # pix2pix runs its generator here
            steps = translation_losses(net, cfg, x)
        for name, step in steps:
            if name == "g":
                for p in d_params:
                    p.requires_grad_(False)
            with autocast(cfg):
                loss = step().float()
            loss.item()
            opts[name].zero_grad()
            loss.backward()
            opts[name].step()
            if name == "g":
                for p in d_params:
                    p.requires_grad_(True)
            now = time.perf_counter()
            spent["g_s" if name == "g" else "d_s"] += now - mark
            mark = now
        t2 = time.perf_counter()
        tc.ema_update(shadow, g_params, i + 1)
        t3 = time.perf_counter()
        if i >= warmup:
            times.append(t3 - t0)
            ph["d_s"].append(spent["d_s"])
            ph["g_s"].append(spent["g_s"])
            ph["ema_s"].append(t3 - t2)
    return {"median_s": statistics.median(times), "times": times,
            "phases": {k: statistics.median(v) for k, v in ph.items()}}


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
        tc.ema_update(shadow, g_params, i + 1)
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
        if cfg.get("model") in ("pix2pix", "cyclegan"):
            net = Pix2PixNet(cfg) if cfg["model"] == "pix2pix" else CycleGanNet(cfg)
            net.load_state_dict({n: tc.load(d, "param." + n) for n in cfg["params"]}, strict=True)
            check = validate_translation(net, d, cfg)
            torch.manual_seed(0)
            b = cfg["batch"]
            x = torch.randint(0, 256, (b, 2, 28, 28)).float() / 127.5 - 1
            r = time_translation(net, cfg, x, a.warmup, a.iters)
            r["validation"] = check
            out[cfg["name"]] = r
            print(f"[python] {cfg['name']}: {b / r['median_s']:.0f} img/s")
            continue
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
