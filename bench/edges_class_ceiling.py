#!/usr/bin/env python3
# Reference measurement for issue #14 (not a runtime dependency): how much of the class survives
# the fmnist-edges maps (data/paired.cpp sobel_edges: Sobel magnitude of the [0, 1] image,
# thresholded at half its per-image maximum). A CNN the size of the evaluator is trained on the
# edge maps of the training set and scored on the test edges: the ceiling of a translation's
# class accuracy, short of what the evaluator gets on the true items (0.915).
#   /usr/bin/python3 bench/edges_class_ceiling.py
import gzip, numpy as np, torch, torch.nn as nn, torch.nn.functional as F, time
torch.set_num_threads(2); torch.manual_seed(0)
D = "/usr/share/datasets/fashion-mnist/"
def idx(name, off): return np.frombuffer(gzip.open(D + name).read(), np.uint8, offset=off)
def load(split):
    p = "train" if split == "train" else "t10k"
    x = idx(f"{p}-images-idx3-ubyte.gz", 16).reshape(-1, 1, 28, 28).astype(np.float32) / 255
    y = idx(f"{p}-labels-idx1-ubyte.gz", 8).astype(np.int64)
    return torch.from_numpy(x), torch.from_numpy(y)
def edges(x):
    kx = torch.tensor([-1., 0, 1, -2, 0, 2, -1, 0, 1]).view(1, 1, 3, 3); ky = kx.transpose(2, 3)
    m = torch.sqrt(F.conv2d(x, kx, padding=1) ** 2 + F.conv2d(x, ky, padding=1) ** 2)
    peak = m.flatten(1).max(1).values.view(-1, 1, 1, 1)
    return ((m >= 0.5 * peak) & (peak > 0)).float() * 2 - 1
(xt, yt), (xs, ys) = load("train"), load("test")
et, es = edges(xt), edges(xs)
net = nn.Sequential(nn.Conv2d(1, 32, 3, padding=1), nn.ReLU(), nn.Conv2d(32, 32, 3, padding=1), nn.ReLU(),
                    nn.MaxPool2d(2), nn.Conv2d(32, 64, 3, padding=1), nn.ReLU(), nn.Conv2d(64, 64, 3, padding=1),
                    nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(), nn.Linear(64 * 49, 128), nn.ReLU(), nn.Dropout(0.3),
                    nn.Linear(128, 10))
opt = torch.optim.Adam(net.parameters(), 1e-3)
t0 = time.time()
for epoch in range(6):
    net.train(); perm = torch.randperm(60000)
    for i in range(0, 60000, 128):
        j = perm[i:i + 128]; xb = et[j]
        if True: xb = torch.where(torch.rand(len(j), 1, 1, 1) < 0.5, xb.flip(3), xb)
        loss = F.cross_entropy(net(xb), yt[j]); opt.zero_grad(); loss.backward(); opt.step()
    net.eval()
    with torch.no_grad():
        pred = torch.cat([net(es[i:i + 1000]).argmax(1) for i in range(0, 10000, 1000)])
    acc = (pred == ys).float().mean().item()
    per = [round((pred[ys == k] == k).float().mean().item(), 3) for k in range(10)]
    print(f"epoch {epoch + 1}: test accuracy from edges {acc:.4f} per class {per} ({time.time() - t0:.0f}s)", flush=True)
