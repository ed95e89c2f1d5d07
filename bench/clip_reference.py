#!/usr/bin/python3
"""PyTorch-Python twin of CLIP's networks (src/genmodels/clip/clip_nets.cpp) and of its train
step, for bench/clip_bench.cpp. Run with Debian's /usr/bin/python3 (python3-torch 1.13).

  /usr/bin/python3 bench/clip_reference.py --dir DIR --json OUT.json [--threads 2]

The model is written as a Python user would: nn.Linear everywhere, the text transformer over the
whole context, the end token found by argmax (it has the largest id). It loads the C++ weights,
must reproduce the C++ loss and gradient norm on the fixed batch, then times the step."""
import json
import math
import os
import statistics
import time

import torch
import torch.nn as nn
import torch.nn.functional as F

from twin_common import ema_update, load, load_state, parse_args, validate


class Block(nn.Module):
    def __init__(self, w, heads, causal):
        super().__init__()
        self.ln1, self.ln2 = nn.LayerNorm(w), nn.LayerNorm(w)
        self.qkv, self.proj = nn.Linear(w, 3 * w), nn.Linear(w, w)
        self.fc1, self.fc2 = nn.Linear(w, 4 * w), nn.Linear(4 * w, w)
        self.heads, self.causal = heads, causal

    def forward(self, x):
        n, l, w = x.shape
        d = w // self.heads
        q, k, v = self.qkv(self.ln1(x)).view(n, l, 3, self.heads, d).permute(2, 0, 3, 1, 4)
        s = (q * (1.0 / math.sqrt(d))) @ k.transpose(-2, -1)
        if self.causal:
            mask = torch.ones(l, l, dtype=torch.bool).triu(1)
            s = s.masked_fill(mask, float("-inf"))
        a = (s.softmax(-1) @ v).transpose(1, 2).reshape(n, l, w)
        h = x + self.proj(a)
        return h + self.fc2(F.gelu(self.fc1(self.ln2(h))))


class Transformer(nn.Module):
    def __init__(self, w, layers, heads, causal):
        super().__init__()
        self.n = layers
        for i in range(layers):
            setattr(self, f"block{i}", Block(w, heads, causal))

    def forward(self, x):
        for i in range(self.n):
            x = getattr(self, f"block{i}")(x)
        return x


class Text(nn.Module):
    def __init__(self, vocab, context, w, embed):
        super().__init__()
        self.token_embedding = nn.Embedding(vocab, w)
        self.positional_embedding = nn.Parameter(torch.empty(context, w))
        self.transformer = Transformer(w, 4, 4, True)
        self.ln_final = nn.LayerNorm(w)
        self.projection = nn.Parameter(torch.empty(w, embed))

    def forward(self, tokens):
        x = self.ln_final(self.transformer(self.token_embedding(tokens) + self.positional_embedding))
        return x[torch.arange(tokens.shape[0]), tokens.argmax(-1)] @ self.projection


class Visual(nn.Module):
    def __init__(self, w, embed, patch=4, size=28):
        super().__init__()
        self.patch_embed = nn.Conv2d(1, w, patch, patch, bias=False)
        self.class_embedding = nn.Parameter(torch.empty(w))
        self.positional_embedding = nn.Parameter(torch.empty((size // patch) ** 2 + 1, w))
        self.ln_pre, self.ln_post = nn.LayerNorm(w), nn.LayerNorm(w)
        self.transformer = Transformer(w, 4, 4, False)
        self.projection = nn.Parameter(torch.empty(w, embed))

    def forward(self, x):
        x = self.patch_embed(x).flatten(2).transpose(1, 2)
        x = torch.cat([self.class_embedding.view(1, 1, -1).expand(x.shape[0], 1, -1), x], 1)
        x = self.transformer(self.ln_pre(x + self.positional_embedding))
        return self.ln_post(x[:, 0]) @ self.projection


class Clip(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        self.visual = Visual(128, 64)
        self.text = Text(cfg["vocab_size"], cfg["context"], 128, 64)
        self.logit_scale = nn.Parameter(torch.tensor(math.log(1 / 0.07)))

    def loss(self, images, tokens, bf16):
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            i = F.normalize(self.visual(images), dim=-1).float()
            t = F.normalize(self.text(tokens), dim=-1).float()
        logits = self.logit_scale.exp() * i @ t.t()
        target = torch.arange(logits.shape[0])
        return 0.5 * (F.cross_entropy(logits, target) + F.cross_entropy(logits.t(), target))


def groups(net):
    decay, plain = [], []
    for k, p in net.named_parameters():
        gain = p.dim() < 2 or "ln" in k or "bias" in k or "logit_scale" in k
        (plain if gain else decay).append(p)
    return decay, plain


def main():
    a = parse_args(3, 10)
    manifest = json.load(open(os.path.join(a.dir, "manifest.json")))
    out = {"torch": torch.__version__, "threads": torch.get_num_threads()}
    for cfg in manifest["configs"]:
        d = os.path.join(a.dir, cfg["name"])
        net = Clip(cfg)
        load_state(net, d, cfg)
        images, tokens = load(d, "images"), load(d, "tokens")
        bf16 = cfg["bf16"]
        net.zero_grad()
        loss = net.loss(images, tokens, bf16)
        loss.backward()
        gnorm = math.sqrt(sum(float(p.grad.square().sum()) for p in net.parameters()))
        check = validate(cfg["name"], "loss", float(loss), cfg["check_loss"], gnorm,
                         cfg["check_grad_norm"], tol=2e-2 if bf16 else 1e-4)
        decay, plain = groups(net)
        opt_d = torch.optim.AdamW(decay, lr=cfg["lr"], betas=(0.9, 0.98),
                                  weight_decay=cfg["weight_decay"])
        opt_n = torch.optim.AdamW(plain, lr=cfg["lr"], betas=(0.9, 0.98), weight_decay=0.0)
        params = list(net.parameters())
        shadow = [p.detach().clone() for p in params]
        times, phases = [], {"forward_s": [], "backward_s": [], "optimizer_s": []}
        for i in range(a.warmup + a.iters):
            t0 = time.perf_counter()
            opt_d.zero_grad()
            opt_n.zero_grad()
            loss = net.loss(images, tokens, bf16)
            loss.item()
            t1 = time.perf_counter()
            loss.backward()
            t2 = time.perf_counter()
            torch.nn.utils.clip_grad_norm_(decay, cfg["clip"])
            torch.nn.utils.clip_grad_norm_(plain, cfg["clip"])
            opt_d.step()
            opt_n.step()
            with torch.no_grad():
                net.logit_scale.clamp_(0, math.log(100))
            ema_update(shadow, params, i + 1)
            t3 = time.perf_counter()
            if i >= a.warmup:
                times.append(t3 - t0)
                for k, v in zip(phases, (t1 - t0, t2 - t1, t3 - t2)):
                    phases[k].append(v)
        out[cfg["name"]] = {"median_s": statistics.median(times), "times": times,
                            "phases": {k: statistics.median(v) for k, v in phases.items()},
                            "validation": check}
        print(f"[python] {cfg['name']}: {cfg['batch'] / statistics.median(times):.0f} img/s")
    json.dump(out, open(a.json, "w"), indent=1)


if __name__ == "__main__":
    main()
