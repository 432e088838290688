#!/usr/bin/env python3
"""Score Quorum checkpoints on the test set twice: with their running batch-norm statistics,
and with statistics recomputed from the training images.

    python3 scripts/bench/rescore_batch_statistics.py CHECKPOINT... [--data FOLDER]
        [--long-tail-ratio 100]

A run whose test score collapses for an epoch (a test NLL of tens, accuracy near chance)
either has weights that no longer classify, or running statistics (an exponential average
with momentum 0.1 over the last steps' batches) that no longer describe what its layers
see after a large step. Recomputing the statistics over the training set with fixed
weights (as `torch.optim.swa_utils.update_bn` does: a cumulative average over one pass in
training mode, no gradient) tells them apart: a statistics failure recovers, diverged
weights do not.

CHECKPOINT is what `quorum train --save-every 1` keeps (epoch-N.safetensors) or a
model.safetensors: torchvision names and layouts, its metadata the model and the input
normalisation. The training images are the ones the run saw: FOLDER's train split, cut to
the long-tail counts as `quorum train --long-tail-ratio` does, without augmentation. One
JSON line per checkpoint on stdout.
"""
import argparse
import json
import os
import sys

import numpy as np
import torch
import torch.nn.functional as F
from safetensors import safe_open
from safetensors.torch import load_file

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from check_torchvision_interop import build_from_metadata, floats  # noqa: E402
from pytorch_accuracy import first_per_class, load, long_tail_counts  # noqa: E402

BATCH = 128


def scores(model, images, labels, mean, std):
    """Accuracy, balanced accuracy and mean NLL of the model in eval mode."""
    model.eval()
    logits = []
    with torch.inference_mode():
        for start in range(0, len(images), 1000):
            logits.append(model(normalised(images[start:start + 1000], mean, std)))
    logits = torch.cat(logits)
    targets = torch.from_numpy(labels)
    predictions = logits.argmax(1)
    recalls = [float((predictions[targets == c] == c).float().mean()) for c in range(logits.shape[1]) if (targets == c).any()]
    return {
        "accuracy": float((predictions == targets).float().mean()),
        "balanced_accuracy": float(np.mean(recalls)),
        "nll": float(F.cross_entropy(logits, targets)),
    }


def normalised(images, mean, std):
    """uint8 [N, H, W, C] (pytorch_accuracy.load's shape) -> [N, C, H, W] normalised."""
    x = torch.from_numpy(np.ascontiguousarray(images)).float().permute(0, 3, 1, 2) / 255
    return ((x - mean) / std).contiguous(memory_format=torch.channels_last)


def recompute_statistics(model, images, mean, std):
    """One pass over `images` in training mode with the statistics reset and averaged
    cumulatively (momentum None), the weights fixed."""
    norms = [m for m in model.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
    for norm in norms:
        norm.reset_running_stats()
        norm.momentum = None
    model.train()
    with torch.no_grad():
        for start in range(0, len(images), BATCH):
            batch = images[start:start + BATCH]
            if len(batch) >= 2:
                model(normalised(batch, mean, std))
    for norm in norms:
        norm.momentum = 0.1


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("checkpoints", nargs="+")
    parser.add_argument("--data", default="/usr/share/datasets/fashion-mnist",
                        help="a folder with the MNIST-layout IDX files")
    parser.add_argument("--long-tail-ratio", type=float, default=100.0, help="1: the whole training split")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    train_images, train_labels = load(args.data, "train")
    if args.long_tail_ratio != 1:
        counts = long_tail_counts(int(np.bincount(train_labels).max()), args.long_tail_ratio, int(train_labels.max()) + 1)
        train_images = train_images[first_per_class(train_labels, counts)]
    test_images, test_labels = load(args.data, "t10k")

    for path in args.checkpoints:
        with safe_open(path, framework="pt") as file:
            metadata = file.metadata() or {}
        model = build_from_metadata(metadata)
        model.load_state_dict(load_file(path), strict=True)
        model = model.to(memory_format=torch.channels_last)
        mean = torch.tensor(floats(metadata["mean"])).view(1, -1, 1, 1)
        std = torch.tensor(floats(metadata["std"])).view(1, -1, 1, 1)
        running = scores(model, test_images, test_labels, mean, std)
        recompute_statistics(model, train_images, mean, std)
        recomputed = scores(model, test_images, test_labels, mean, std)
        print(json.dumps({"checkpoint": path, "running_statistics": running, "recomputed_statistics": recomputed}), flush=True)
        print(f"{os.path.basename(path)}: running statistics accuracy {running['accuracy']:.4f} nll {running['nll']:.3f}; "
              f"recomputed accuracy {recomputed['accuracy']:.4f} nll {recomputed['nll']:.3f}", file=sys.stderr, flush=True)


if __name__ == "__main__":
    main()
