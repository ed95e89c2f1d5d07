"""Shared harness of the PyTorch-Python twins (bench/vae_reference.py, bench/flow_reference.py):
arguments, loading the C++ side's weights, validation against the C++ loss and gradient norm,
and the trainer's step timed per phase (zero_grad + loss + item, backward, clip + Adam, EMA with
the warm-up decay of src/genmodels/train/ema.h)."""
import argparse
import json
import math
import os
import statistics
import sys
import time

import numpy as np
import torch


def parse_args(warmup, iters):
    ap = argparse.ArgumentParser()
    ap.add_argument("--dir", required=True)
    ap.add_argument("--json", required=True)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--warmup", type=int, default=warmup)
    ap.add_argument("--iters", type=int, default=iters)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    return a


def load(d, name):
    return torch.from_numpy(np.load(os.path.join(d, name + ".npy")))


def load_state(net, d, cfg):
    net.load_state_dict({n: load(d, "param." + n) for n in cfg["params"]}, strict=True)


def grad_norm(net):
    return math.sqrt(sum(float(p.grad.square().sum()) for p in net.parameters()
                         if p.grad is not None))


def validate(name, what, value, cpp_value, gnorm, cpp_gnorm, tol=1e-4):
    """Relative errors of a value and the gradient norm against C++; exits 2 on mismatch."""
    rv = abs(value - cpp_value) / max(1.0, abs(cpp_value))
    rg = abs(gnorm - cpp_gnorm) / max(1e-8, cpp_gnorm)
    print(f"[python] {name}: {what} {value:.6f} (C++ {cpp_value:.6f}), "
          f"grad norm {gnorm:.6f} (C++ {cpp_gnorm:.6f})")
    if rv > tol or rg > tol:
        print(f"[python] {name}: validation FAILED", file=sys.stderr)
        sys.exit(2)
    return {what.replace(" ", "_") + "_rel_err": rv, "grad_norm_rel_err": rg}


def ema_update(shadow, params, n):
    """The trainer's EMA after optimizer step n (1-based), with the warm-up decay of
    src/genmodels/train/ema.h: min(0.999, (1 + n) / (10 + n))."""
    decay = min(0.999, (1 + n) / (10 + n))
    with torch.no_grad():
        torch._foreach_mul_(shadow, decay)
        torch._foreach_add_(shadow, params, alpha=1 - decay)


def time_train(net, loss_fn, lr, clip, warmup, iters):
    """The trainer's step: returns median seconds, all times and per-phase medians."""
    params = list(net.parameters())
    opt = torch.optim.Adam(params, lr=lr)
    shadow = [p.detach().clone() for p in params]
    net.train()
    times, phases = [], {"forward_s": [], "backward_s": [], "optimizer_s": [], "ema_s": []}
    for i in range(warmup + iters):
        t0 = time.perf_counter()
        opt.zero_grad()
        loss = loss_fn()
        loss.item()
        t1 = time.perf_counter()
        loss.backward()
        t2 = time.perf_counter()
        if clip > 0:
            torch.nn.utils.clip_grad_norm_(params, clip)
        opt.step()
        t3 = time.perf_counter()
        ema_update(shadow, params, i + 1)
        t4 = time.perf_counter()
        if i >= warmup:
            times.append(t4 - t0)
            for k, v in zip(phases, (t1 - t0, t2 - t1, t3 - t2, t4 - t3)):
                phases[k].append(v)
    return {"median_s": statistics.median(times), "times": times,
            "phases": {k: statistics.median(v) for k, v in phases.items()}}


def run(warmup, iters, build, validate_fn, loss_fn):
    """For each manifest configuration: build(cfg) -> net, load weights, validate_fn(net, d, cfg)
    -> validation dict, then time loss_fn(net, cfg, x) on a fixed random 8-bit batch."""
    a = parse_args(warmup, iters)
    manifest = json.load(open(os.path.join(a.dir, "manifest.json")))
    out = {"torch": torch.__version__, "threads": torch.get_num_threads()}
    for cfg in manifest["configs"]:
        d = os.path.join(a.dir, cfg["name"])
        net = build(cfg)
        load_state(net, d, cfg)
        check = validate_fn(net, d, cfg)
        torch.manual_seed(0)
        b = cfg["batch"]
        x = torch.randint(0, 256, (b, 1, 28, 28)).float() / 127.5 - 1
        r = time_train(net, lambda: loss_fn(net, cfg, x), cfg["lr"], cfg["clip"], a.warmup,
                       a.iters)
        r["validation"] = check
        out[cfg["name"]] = r
        print(f"[python] {cfg['name']}: {b / r['median_s']:.0f} img/s")
    json.dump(out, open(a.json, "w"), indent=1)
