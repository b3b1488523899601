#!/usr/bin/env python3
"""PyTorch references for bench/gpu-bench.mjs, timed on the same GPU.

  dense-head : nn.Linear(768, 670,091), BCE with logits on a multi-hot target,
               torch.optim.Adam; TF32 allowed for matmuls (PyTorch's fast path).
  ffi-gather : the A670K-FFI32-64k model written the plain PyTorch way:
               Linear(768, 65,536) + ReLU, then out[b, l] = b2[l] + sum_j W2[l, j] * h[b, idx[l, j]]
               through a gather (h[:, idx] materialises [B, L, k]), squared-hinge loss, Adam.

Median ms/step over CUDA-event-timed steps after warm-up; peak memory from
torch.cuda.max_memory_allocated. Prints one JSON line on stdout.
"""
import argparse
import json
import sys

import torch


def time_steps(step, steps=20, warmup=3):
    for _ in range(warmup):
        step()
    torch.cuda.synchronize()
    times = []
    for _ in range(steps):
        a, b = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        a.record()
        step()
        b.record()
        b.synchronize()
        times.append(a.elapsed_time(b))
    times.sort()
    return times[len(times) // 2]


def multi_hot(B, L, per_row, gen):
    y = torch.zeros(B, L, device="cuda")
    y.scatter_(1, torch.randint(0, L, (B, per_row), device="cuda", generator=gen), 1.0)
    return y


def dense_head(B, D, L, gen):
    model = torch.nn.Linear(D, L).cuda()
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    xs = [torch.randn(B, D, device="cuda", generator=gen) for _ in range(4)]
    ys = [multi_hot(B, L, 5, gen) for _ in range(4)]
    loss_fn = torch.nn.BCEWithLogitsLoss()
    i = [0]

    def step():
        k = i[0] % 4
        i[0] += 1
        opt.zero_grad(set_to_none=True)
        loss = loss_fn(model(xs[k]), ys[k])
        loss.backward()
        opt.step()

    return step


class FfiGather(torch.nn.Module):
    def __init__(self, H, L, K, gen):
        super().__init__()
        idx = torch.randint(0, H, (L, K), device="cuda", generator=gen)  # duplicates within a row are rare and harmless here
        self.register_buffer("idx", idx)
        self.W = torch.nn.Parameter(torch.randn(L, K, device="cuda", generator=gen) * (1.0 / K) ** 0.5)
        self.b = torch.nn.Parameter(torch.zeros(L, device="cuda"))

    def forward(self, h):
        return (h[:, self.idx] * self.W).sum(-1) + self.b


def ffi_gather(B, D, H, L, K, gen):
    model = torch.nn.Sequential(torch.nn.Linear(D, H), torch.nn.ReLU(), FfiGather(H, L, K, gen)).cuda()
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    xs = [torch.randn(B, D, device="cuda", generator=gen) / D**0.5 for _ in range(4)]
    ys = [multi_hot(B, L, 5, gen) for _ in range(4)]
    i = [0]

    def step():
        k = i[0] % 4
        i[0] += 1
        opt.zero_grad(set_to_none=True)
        s = model(xs[k])
        loss = torch.clamp(1 - (2 * ys[k] - 1) * s, min=0).pow(2).mean()
        loss.backward()
        opt.step()

    return step


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--batch", default="128,32")
    p.add_argument("--input", type=int, default=768)
    p.add_argument("--hidden", type=int, default=65536)
    p.add_argument("--labels", type=int, default=670091)
    p.add_argument("--fanin", type=int, default=32)
    a = p.parse_args()
    torch.backends.cuda.matmul.allow_tf32 = True
    torch.backends.cudnn.allow_tf32 = True
    gen = torch.Generator(device="cuda")
    gen.manual_seed(0)
    rows = []
    for model in ("dense-head", "ffi-gather"):
        for B in [int(b) for b in a.batch.split(",")]:
            torch.cuda.empty_cache()
            torch.cuda.reset_peak_memory_stats()
            row = {"model": model, "batch": B}
            try:
                step = dense_head(B, a.input, a.labels, gen) if model == "dense-head" else ffi_gather(B, a.input, a.hidden, a.labels, a.fanin, gen)
                ms = time_steps(step)
                row.update(msPerStep=ms, samplesPerSecond=1000.0 * B / ms, peakBytes=torch.cuda.max_memory_allocated())
            except Exception as e:  # OOM or anything else: reported, not fatal
                row.update(error=f"{type(e).__name__}: {str(e)[:200]}")
            print(f"torch {model} B={B}: {row}", file=sys.stderr)
            rows.append(row)
            step = None
            torch.cuda.empty_cache()
    print(json.dumps({"torch": torch.__version__, "device": torch.cuda.get_device_name(), "tf32": True, "rows": rows}))


if __name__ == "__main__":
    main()
