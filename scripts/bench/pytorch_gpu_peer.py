#!/usr/bin/env python3
"""PyTorch on a GPU, the peer of the CUDA backend's training benchmark (docs/cuda.md):
MobileNetV2 training steps on 28×28×1 images, one configuration per process.

    python3 scripts/bench/pytorch_gpu_peer.py --preset cifar --batch 256 --mode eager
    python3 scripts/bench/pytorch_gpu_peer.py --preset cifar --batch 1024 --mode compile

eager: channels_last, bfloat16 autocast (what a careful user runs); compile: the same under
torch.compile. Each step is forward, backward and SGD (Nesterov, weight decay, label
smoothing 0.1: the reference recipe). Timed with CUDA events over --steps steps after
--warmup (compilation happens in the warm-up). Also measures a device-to-device copy of
--copy-mib MiB in the same process: the bandwidth the achieved bytes are compared with.
Prints one JSON line. `--device cpu` runs a smoke check where there is no GPU.
"""
import argparse
import json
import os
import sys
import time

import torch
from torch import nn

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import mobilenet_reference  # noqa: E402


def copy_bandwidth(device, mebibytes, repeats=20):
    """Device-to-device copy, read + write bytes per second."""
    source = torch.empty(mebibytes * (1 << 20) // 4, dtype=torch.float32, device=device)
    destination = torch.empty_like(source)
    destination.copy_(source)
    if device.type != "cuda":
        start = time.perf_counter()
        for _ in range(repeats):
            destination.copy_(source)
        return 2 * source.numel() * 4 * repeats / (time.perf_counter() - start)
    begin, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    torch.cuda.synchronize()
    begin.record()
    for _ in range(repeats):
        destination.copy_(source)
    end.record()
    torch.cuda.synchronize()
    return 2 * source.numel() * 4 * repeats / (begin.elapsed_time(end) / 1000)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--preset", choices=sorted(mobilenet_reference.PRESETS), default="cifar")
    parser.add_argument("--width", type=float, default=1.0)
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--mode", choices=["eager", "compile"], default="eager")
    parser.add_argument("--warmup", type=int, default=20)
    parser.add_argument("--steps", type=int, default=100)
    parser.add_argument("--copy-mib", type=int, default=1024)
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    device = torch.device(args.device)
    torch.manual_seed(args.seed)
    model = mobilenet_reference.build_preset(args.preset, args.width, input_channels=1, classes=10)
    model = model.to(device=device, memory_format=torch.channels_last).train()
    images = torch.randn(args.batch, 1, 28, 28, device=device).contiguous(memory_format=torch.channels_last)
    labels = torch.randint(0, 10, (args.batch,), device=device)
    loss_function = nn.CrossEntropyLoss(label_smoothing=0.1)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, nesterov=True, weight_decay=5e-4)
    forward = torch.compile(model) if args.mode == "compile" else model

    def step():
        with torch.autocast(device_type=device.type, dtype=torch.bfloat16):
            loss = loss_function(forward(images), labels)
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    for _ in range(args.warmup):
        step()
    if device.type == "cuda":
        torch.cuda.synchronize()
        begin, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        begin.record()
        for _ in range(args.steps):
            step()
        end.record()
        torch.cuda.synchronize()
        seconds = begin.elapsed_time(end) / 1000
        name = torch.cuda.get_device_name(device)
    else:
        start = time.perf_counter()
        for _ in range(args.steps):
            step()
        seconds = time.perf_counter() - start
        name = "cpu"
    print(json.dumps({
        "engine": f"pytorch-{args.mode}",
        "device": name,
        "preset": args.preset,
        "width": args.width,
        "batch": args.batch,
        "images_per_second": args.batch * args.steps / seconds,
        "step_seconds": seconds / args.steps,
        "copy_bytes_per_second": copy_bandwidth(device, args.copy_mib),
        "torch_version": torch.__version__,
    }))


if __name__ == "__main__":
    main()
