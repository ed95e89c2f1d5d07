#!/usr/bin/python3
"""Reads a `genmodels export` directory the way a PyTorch user would, without the safetensors
package: parses model.safetensors by the format's spec with numpy, builds the identical PyTorch
twin of the U-Net (bench/unet_reference.py) from config.json, loads the weights strictly and
compares its output on the C++ side's fixed input with the C++ output.

  /usr/bin/python3 safetensors_twin.py EXPORT_DIR CHECK_DIR REPO_DIR

CHECK_DIR holds x.npy, t.npy, y.npy (the input) and out.npy (what the C++ network returned).
Prints one line with the largest difference; exit status 0 when it is <= 1e-5.
"""
import json
import os
import sys

import numpy as np
import torch

export_dir, check_dir, repo = sys.argv[1:4]
sys.path.insert(0, os.path.join(repo, "bench"))
from unet_reference import DdpmNet  # noqa: E402

# The C++ names are the twin's names (its modules mirror gm::nn::UNet); a twin with other names
# would map them here, never in the file.
NAME_MAP = {}

# --- safetensors by the spec: u64 LE header length N, N bytes of JSON, the data buffer
NUMPY = {"F64": "<f8", "F32": "<f4", "F16": "<f2", "I64": "<i8", "I32": "<i4", "I16": "<i2",
         "I8": "i1", "U8": "u1", "BOOL": "?"}
raw = open(os.path.join(export_dir, "model.safetensors"), "rb").read()
n = int(np.frombuffer(raw[:8], dtype="<u8")[0])
assert n % 8 == 0 and raw[8:9] == b"{", "header not padded to 8 bytes or not an object"
header = json.loads(raw[8:8 + n].decode("utf-8"))
metadata = header.pop("__metadata__", {})
buf = raw[8 + n:]
state, covered = {}, 0
for name, e in sorted(header.items(), key=lambda kv: kv[1]["data_offsets"]):
    begin, end = e["data_offsets"]
    assert begin == covered, f"{name}: data does not follow the previous tensor's"
    covered = end
    if e["dtype"] == "BF16":
        t = torch.from_numpy(np.frombuffer(buf[begin:end], "<i2").copy()).view(torch.bfloat16)
    else:
        t = torch.from_numpy(np.frombuffer(buf[begin:end], NUMPY[e["dtype"]]).copy())
    state[NAME_MAP.get(name, name)] = t.reshape(e["shape"])
assert covered == len(buf), "bytes after the last tensor"

# --- the twin, from config.json
cfg = json.load(open(os.path.join(export_dir, "config.json")))
c, data = cfg["config"], cfg["data"]
assert cfg["model"] == "ddpm" and c["model.text_encoder"] == "", "the twin is the ddpm U-Net"
ints = lambda s: [int(v) for v in s.split(",") if v.strip()]  # noqa: E731
in_ch = data["shape"][0]
net = DdpmNet(in_channels=in_ch, out_channels=in_ch * (2 if c["diffusion.learn_sigma"] else 1),
              base_channels=c["model.base_channels"], channel_mult=ints(c["model.channel_mult"]),
              num_res_blocks=c["model.num_res_blocks"],
              attention_levels=ints(c["model.attention_levels"]), num_heads=c["model.heads"],
              dropout=c["model.dropout"],
              num_classes=len(data["class_names"]) if c["model.conditional"] else 0,
              scale_shift_norm=c["model.scale_shift_norm"])
missing = set(net.state_dict()) - set(state)
extra = set(state) - set(net.state_dict())
assert not missing and not extra, f"names differ: twin only {sorted(missing)[:3]}, file only {sorted(extra)[:3]}"
net.load_state_dict(state, strict=True)
net.eval()

load = lambda name: torch.from_numpy(np.load(os.path.join(check_dir, name + ".npy")))  # noqa: E731
with torch.no_grad():
    out = net(load("x"), load("t"), load("y"))
ref = load("out")
diff = (out - ref).abs().max().item()
print(f"twin: {len(state)} tensors ({metadata.get('genmodels.weights')} weights), "
      f"max |out - C++| = {diff:.3g} (|out| max {ref.abs().max().item():.3g})")
sys.exit(0 if diff <= 1e-5 else 1)
