#!/usr/bin/python3
"""PyTorch-Python twin of gm::vae::Vae (src/genmodels/vae/vae.{h,cpp}) and of the trainer's step,
for bench/vae_bench.cpp. Run with Debian's /usr/bin/python3 (python3-torch 1.13).

  /usr/bin/python3 bench/vae_reference.py --dir DIR --json OUT.json [--threads 2]

DIR/manifest.json lists the configurations; DIR/NAME/ holds param.vae.encoder.0.weight.npy, ...
(module names match the C++ ones, so load_state_dict(strict=True) checks the architecture) and
check_{x,target,eps}.npy with the C++ loss and gradient norm. Each configuration is validated
(exit status 2 on mismatch) before its train step is timed.
"""
import math
import os
import sys

import torch
import torch.nn as nn
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import twin_common as tc  # noqa: E402

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
        self.bf16 = cfg.get("bf16", False)
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
        # as VaeOptions::channels_last: NHWC convolution weights, input and upsampler input,
        # NCHW decoder output
        self.cl = cfg.get("channels_last", False)
        if self.cl:
            self.encoder = self.encoder.to(memory_format=torch.channels_last)
            self.decoder = self.decoder.to(memory_format=torch.channels_last)

    def encode(self, x):
        if self.cl:  # NHWC strides also for one channel (gm::nn::strictly_channels_last)
            x = torch.empty_like(x, memory_format=torch.channels_last).copy_(x)
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=self.bf16):
            h = self.encoder(x)
        return h.float().chunk(2, 1)

    def decode(self, z):
        if self.cl:  # the upsamplers' input NHWC (UpConv2x::channels_last)
            body, last = self.decoder[:-1], self.decoder[-1]
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=self.bf16):
                h = body[:5](z)
                h = body[5:](torch.empty_like(h, memory_format=torch.channels_last).copy_(h))
            p = last(h.float() if self.bf16 else h)
        elif self.bf16:  # body in bf16, output layer in fp32 (as VaeImpl::decode)
            with torch.autocast("cpu", dtype=torch.bfloat16):
                h = self.decoder[:-1](z)
            p = self.decoder[-1](h.float())
        else:
            p = self.decoder(z)
        if self.arch == "mlp":
            p = p.view(z.shape[0], self.ppd * self.shape[0], self.shape[1], self.shape[2])
        return p.contiguous() if self.cl else p

    def log_likelihood(self, x, params):
        if self.lik == "bernoulli":
            lp = -F.binary_cross_entropy_with_logits(params, x, reduction="none")
        else:
            m, s = params.chunk(2, 1)
            lp = discretized_logistic_log_prob(x, m, s)
        return lp.reshape(x.shape[0], -1).sum(1)

    def loss(self, x, eps=None):
        mu, logvar = self.encode(x)
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


def validate(net, d, cfg):
    target, eps = tc.load(d, "check_target"), tc.load(d, "check_eps")
    net.zero_grad()
    loss = net.vae.loss(target, eps)
    loss.backward()
    return tc.validate(cfg["name"], "loss", loss.item(), cfg["check_loss"], tc.grad_norm(net),
                       cfg["check_grad_norm"], tol=2e-3 if cfg.get("bf16") else 1e-4)


def train_loss(net, cfg, x):
    # fresh binarisation and reparameterisation noise each step, as the C++ model does
    xt = torch.bernoulli((x + 1) * 0.5) if cfg["likelihood"] == "bernoulli" else x
    return net.vae.loss(xt)


if __name__ == "__main__":
    tc.run(5, 40, Holder, validate, train_loss)
