#!/usr/bin/python3
"""PyTorch-Python twin of gm::vae::Vae (src/genmodels/vae/vae.{h,cpp}) and of the trainer's step,
for bench/vae_bench.cpp. Run with Debian's /usr/bin/python3 (python3-torch 1.13).

  /usr/bin/python3 bench/vae_reference.py --dir DIR --json OUT.json [--threads 2]

DIR/manifest.json lists the configurations; DIR/NAME/ holds param.vae.encoder.0.weight.npy, ...
(module names match the C++ ones, so load_state_dict(strict=True) checks the architecture) and
check_{x,target,eps}.npy with the C++ loss and gradient norm. Each configuration is validated
(exit status 2 on mismatch) before its train step is timed.
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

HALF_BIN = 1.0 / 255.0
MIN_LOG_SCALE = -7.0
LOG_2PI = math.log(2 * math.pi)


def discretized_logistic_log_prob(x, mean, log_scale):
    log_scale = log_scale.clamp_min(MIN_LOG_SCALE)
    centred = x - mean
    inv_s = torch.exp(-log_scale)
    plus_in = inv_s * (centred + HALF_BIN)
    min_in = inv_s * (centred - HALF_BIN)
    log_cdf_plus = plus_in - F.softplus(plus_in)
    log_one_minus_cdf_min = -F.softplus(min_in)
    cdf_delta = torch.sigmoid(plus_in) - torch.sigmoid(min_in)
    mid_in = inv_s * centred
    log_pdf_mid = mid_in - log_scale - 2.0 * F.softplus(mid_in)
    interior = torch.where(cdf_delta > 1e-5, torch.log(cdf_delta.clamp_min(1e-12)),
                           log_pdf_mid + math.log(2.0 * HALF_BIN))
    return torch.where(x < -0.999, log_cdf_plus,
                       torch.where(x > 0.999, log_one_minus_cdf_min, interior))


class Vae(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        c_in, h, w = cfg["shape"]
        d = c_in * h * w
        lat, hid = cfg["latent"], cfg["hidden"]
        self.shape = (c_in, h, w)
        self.lik = cfg["likelihood"]
        self.arch = cfg["arch"]
        self.ppd = 1 if self.lik == "bernoulli" else 2
        if self.arch == "mlp":
            self.encoder = nn.Sequential(nn.Flatten(), nn.Linear(d, hid), nn.SiLU(),
                                         nn.Linear(hid, hid), nn.SiLU(), nn.Linear(hid, 2 * lat))
            self.decoder = nn.Sequential(nn.Linear(lat, hid), nn.SiLU(), nn.Linear(hid, hid),
                                         nn.SiLU(), nn.Linear(hid, self.ppd * d))
        else:
            c = cfg["channels"]
            h4, w4 = h // 4, w // 4
            flat = 2 * c * h4 * w4
            self.encoder = nn.Sequential(
                nn.Conv2d(c_in, c, 4, 2, 1), nn.SiLU(), nn.Conv2d(c, 2 * c, 4, 2, 1), nn.SiLU(),
                nn.Flatten(), nn.Linear(flat, hid), nn.SiLU(), nn.Linear(hid, 2 * lat))
            self.decoder = nn.Sequential(
                nn.Linear(lat, hid), nn.SiLU(), nn.Linear(hid, flat), nn.SiLU(),
                nn.Unflatten(1, (2 * c, h4, w4)), nn.ConvTranspose2d(2 * c, c, 4, 2, 1),
                nn.SiLU(), nn.ConvTranspose2d(c, self.ppd * c_in, 4, 2, 1))

    def decode(self, z):
        p = self.decoder(z)
        if self.arch == "mlp":
            p = p.view(z.shape[0], self.ppd * self.shape[0], self.shape[1], self.shape[2])
        return p

    def log_likelihood(self, x, params):
        if self.lik == "bernoulli":
            lp = -F.binary_cross_entropy_with_logits(params, x, reduction="none")
        else:
            m, s = params.chunk(2, 1)
            lp = discretized_logistic_log_prob(x, m, s)
        return lp.reshape(x.shape[0], -1).sum(1)

    def loss(self, x, eps=None):
        mu, logvar = self.encoder(x).chunk(2, 1)
        if eps is None:
            eps = torch.randn_like(mu)
        z = mu + torch.exp(0.5 * logvar) * eps
        kl = 0.5 * (mu.square() + logvar.exp() - 1.0 - logvar).sum(-1)
        return (-self.log_likelihood(x, self.decode(z)) + kl).mean()


class Holder(nn.Module):  # the C++ registry module: VaeNet { vae }
    def __init__(self, cfg):
        super().__init__()
        self.vae = Vae(cfg)
        self.register_buffer("kl_step", torch.zeros(1, dtype=torch.float64))


def load(d, name):
    return torch.from_numpy(np.load(os.path.join(d, name + ".npy")))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--dir", required=True)
    ap.add_argument("--json", required=True)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--warmup", type=int, default=5)
    ap.add_argument("--iters", type=int, default=40)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    manifest = json.load(open(os.path.join(a.dir, "manifest.json")))
    out = {"torch": torch.__version__, "threads": torch.get_num_threads()}
    for cfg in manifest["configs"]:
        d = os.path.join(a.dir, cfg["name"])
        net = Holder(cfg)
        net.load_state_dict({n: load(d, "param." + n) for n in cfg["params"]}, strict=True)
        # validation
        target, eps = load(d, "check_target"), load(d, "check_eps")
        net.zero_grad()
        loss = net.vae.loss(target, eps)
        loss.backward()
        gnorm = math.sqrt(sum(float(p.grad.square().sum()) for p in net.parameters()))
        rl = abs(loss.item() - cfg["check_loss"]) / max(1.0, abs(cfg["check_loss"]))
        rg = abs(gnorm - cfg["check_grad_norm"]) / max(1e-8, cfg["check_grad_norm"])
        print(f"[python] {cfg['name']}: loss {loss.item():.6f} (C++ {cfg['check_loss']:.6f}), "
              f"grad norm {gnorm:.6f} (C++ {cfg['check_grad_norm']:.6f})")
        if rl > 1e-4 or rg > 1e-4:
            print(f"[python] {cfg['name']}: validation FAILED", file=sys.stderr)
            sys.exit(2)
        # timing: the trainer's step with fresh binarisation and noise
        torch.manual_seed(0)
        b = cfg["batch"]
        x = torch.randint(0, 256, (b, 1, 28, 28)).float() / 127.5 - 1
        params = list(net.parameters())
        opt = torch.optim.Adam(params, lr=cfg["lr"])
        shadow = [p.detach().clone() for p in params]
        net.train()
        times, phases = [], {"forward_s": [], "backward_s": [], "optimizer_s": [], "ema_s": []}
        for i in range(a.warmup + a.iters):
            t0 = time.perf_counter()
            opt.zero_grad()
            xt = torch.bernoulli((x + 1) * 0.5) if cfg["likelihood"] == "bernoulli" else x
            loss = net.vae.loss(xt)
            loss.item()
            t1 = time.perf_counter()
            loss.backward()
            t2 = time.perf_counter()
            torch.nn.utils.clip_grad_norm_(params, cfg["clip"])
            opt.step()
            t3 = time.perf_counter()
            n = i + 1
            decay = min(0.999, (1 + n) / (10 + n))
            with torch.no_grad():
                torch._foreach_mul_(shadow, decay)
                torch._foreach_add_(shadow, params, alpha=1 - decay)
            t4 = time.perf_counter()
            if i >= a.warmup:
                times.append(t4 - t0)
                for k, v in zip(phases, (t1 - t0, t2 - t1, t3 - t2, t4 - t3)):
                    phases[k].append(v)
        out[cfg["name"]] = {"median_s": statistics.median(times), "times": times,
                            "phases": {k: statistics.median(v) for k, v in phases.items()},
                            "validation": {"loss_rel_err": rl, "grad_norm_rel_err": rg}}
        print(f"[python] {cfg['name']}: {b / statistics.median(times):.0f} img/s")
    json.dump(out, open(a.json, "w"), indent=1)


if __name__ == "__main__":
    main()
