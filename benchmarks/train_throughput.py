#!/usr/bin/env python
"""Training-step throughput (images/s) of the transfer backbones on whatever device is present.

    python benchmarks/train_throughput.py                     # resnet50, vit_small_patch16_224, vit_base_patch32_224
    python benchmarks/train_throughput.py --models resnet50 --batch-size 256 --steps 30

Each step is forward + backward + AdamW update on random 224 px batches (the input pipeline is measured
separately). skinlib's settings (bf16 autocast and channels-last on CUDA, as skinlib.train.fit uses
them) are timed against plain fp32 in the same process, and the ratio printed.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from skinlib.models import create_backbone  # noqa: E402


def images_per_second(model, batch: int, steps: int, device, bf16: bool, channels_last: bool) -> float:
    model = model.to(device).train()
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    model = model.to(memory_format=fmt)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
    x = torch.randn(batch, 3, 224, 224, device=device).to(memory_format=fmt)
    y = torch.randint(0, 7, (batch,), device=device)

    def step():
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16):
            loss = torch.nn.functional.cross_entropy(model(x).float(), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    for _ in range(2):                                        # warm-up (cuDNN autotuning, allocator)
        step()
    if device.type == "cuda":
        torch.cuda.synchronize()
    started = time.perf_counter()
    for _ in range(steps):
        step()
    if device.type == "cuda":
        torch.cuda.synchronize()
    return batch * steps / (time.perf_counter() - started)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", nargs="+", default=["resnet50", "vit_small_patch16_224.dino", "vit_base_patch32_224"])
    parser.add_argument("--batch-size", type=int, default=None, help="default: 256 on CUDA, 16 on CPU")
    parser.add_argument("--steps", type=int, default=None, help="timed steps (default: 30 on CUDA, 3 on CPU)")
    args = parser.parse_args()
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    cuda = device.type == "cuda"
    batch = args.batch_size or (256 if cuda else 16)
    steps = args.steps or (30 if cuda else 3)
    if cuda:
        torch.backends.cudnn.benchmark = True
    name = torch.cuda.get_device_name() if cuda else f"CPU, {torch.get_num_threads()} threads"
    print(f"device: {name}; torch {torch.__version__}; batch {batch}, {steps} timed steps, 224 px")
    for model_name in args.models:
        plain = images_per_second(create_backbone(model_name, 7), batch, steps, device, bf16=False, channels_last=False)
        if cuda:
            ours = images_per_second(create_backbone(model_name, 7), batch, steps, device, bf16=True,
                                     channels_last="vit" not in model_name)
            print(f"{model_name:28s} fp32 {plain:8.0f} img/s   bf16{' + channels-last' if 'vit' not in model_name else ''} "
                  f"{ours:8.0f} img/s   ratio {ours / plain:.2f}x")
        else:
            print(f"{model_name:28s} fp32 {plain:8.1f} img/s   (bf16 autocast is used on CUDA only)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
