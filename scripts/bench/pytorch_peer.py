#!/usr/bin/env python3
"""PyTorch speed peer for `quorum bench step`: one configuration per process.

    python3 scripts/bench/pytorch_peer.py --preset imagenet --width 1.0 --batch 128 \
        --threads 2 --layout channels_last --warmup 2 --steps 5 --mode train

Prints exactly one JSON line with the same keys as `quorum bench step`. One process per
configuration so that peak_rss_bytes (ru_maxrss is a high-water mark) belongs to it alone.
"""
import argparse
import json
import os
import resource
import statistics
import sys
import time

import torch
from torch import nn

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import mobilenet_reference  # noqa: E402


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--preset", choices=sorted(mobilenet_reference.PRESETS), default="imagenet")
    parser.add_argument("--width", type=float, default=1.0)
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--layout", choices=["channels_last", "nchw"], default="channels_last")
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--mode", choices=["train", "inference"], default="train")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--input", default="28x28x1", help="the images' size and channels, HxWxC")
    args = parser.parse_args()

    torch.set_num_threads(args.threads)
    torch.set_num_interop_threads(1)
    torch.manual_seed(args.seed)

    height, width, channels = (int(v) for v in args.input.split("x"))
    model = mobilenet_reference.build_preset(args.preset, args.width, input_channels=channels, classes=10)
    images = torch.randn(args.batch, channels, height, width)
    labels = torch.randint(0, 10, (args.batch,))
    if args.layout == "channels_last":
        model = model.to(memory_format=torch.channels_last)
        images = images.contiguous(memory_format=torch.channels_last)

    if args.mode == "train":
        model.train()
        loss_function = nn.CrossEntropyLoss(label_smoothing=0.1)
        optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, nesterov=True, weight_decay=5e-4)

        def step():
            loss = loss_function(model(images), labels)
            loss.backward()
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
    else:
        model.eval()

        def step():
            with torch.inference_mode():
                model(images)

    step_seconds = []
    for index in range(args.warmup + args.steps):
        start = time.perf_counter()
        step()  # CPU ops are synchronous: nothing is in flight when it returns
        elapsed = time.perf_counter() - start
        if index >= args.warmup:
            step_seconds.append(elapsed)

    median = statistics.median(step_seconds)
    print(json.dumps({
        "engine": "pytorch",
        "preset": args.preset,
        "width": args.width,
        "batch": args.batch,
        "threads": args.threads,
        "layout": args.layout,
        "mode": args.mode,
        "input": args.input,
        "images_per_second": args.batch / median,
        "median_step_seconds": median,
        "step_seconds": step_seconds,
        "peak_rss_bytes": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,  # Linux: KiB
        "torch_version": torch.__version__,
    }))


if __name__ == "__main__":
    main()
