#!/usr/bin/env python3
"""The reference recipe (docs/benchmark-protocol.md) in PyTorch: the accuracy peer of
`quorum train` with its defaults, on the CPU.

    python3 scripts/bench/pytorch_accuracy.py --seed 0                    # FMNIST-LT-100, 15 epochs
    python3 scripts/bench/pytorch_accuracy.py --long-tail-ratio 1 --seed 0  # full Fashion-MNIST
    python3 scripts/bench/pytorch_accuracy.py --dropout 0.5 --stochastic-depth 0.2  # Noisy Student's noise

What `quorum train --validation-fraction 0` does, step for step: the long-tailed training
set (class c keeps its first floor(6000 · R^(−c/9)) examples in file order); pixels/255
normalised with that set's mean and (population) std; per example and epoch a shift of
−2…2 px in each axis after 2-px zero padding of the raw image, then a horizontal flip with
probability 0.5; torchvision's mobilenet_v2 built by mobilenet_reference.build_preset
(dropout 0.2, torchvision's own init), channels_last; SGD with Nesterov momentum 0.9 and
weight decay 5e-4 on conv and linear weights only (not batch norm, not biases);
OneCycleLR to 0.1 (15 % warm-up, cosine, div 25, final div 1e4) stepped every batch;
batches of 128 from a seeded shuffle; cross entropy with label smoothing 0.1. The balanced
test set is scored after every epoch.

Batches are cut as PyTorch's DataLoader cuts them (`--batching ragged`, its drop_last=False:
full batches, the rest last), where `quorum train` by default cuts the epoch evenly (sizes
differing by one at most); `--batching even` cuts as Quorum does, and `quorum train
--batching ragged` as this does. A last batch of one example is dropped either way (batch
normalisation cannot train on it). `--folds K --fold F` trains on the other folds of a
stratified K-fold split with the per-class fold sizes of `quorum train --folds K --fold F`
(the examples differ: each engine shuffles with its own generator).

Progress goes to stderr, one line per epoch; stdout gets exactly one JSON line at the end.
The random streams are PyTorch's, not Quorum's: the same recipe, not the same draws.
"""
import argparse
import gzip
import json
import math
import os
import sys
import time

import numpy as np
import torch
from torch import nn
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import mobilenet_reference  # noqa: E402

CLASSES = 10
PAD = 2  # zero padding = largest shift
FMNIST_LT_100_COUNTS = [6000, 3596, 2156, 1292, 774, 464, 278, 166, 100, 60]


def read_idx(path):
    """An IDX file (gzip or not) as a numpy array of its declared shape."""
    opener = gzip.open if path.endswith(".gz") else open
    with opener(path, "rb") as stream:
        data = stream.read()
    if data[0] != 0 or data[1] != 0 or data[2] != 0x08:
        raise ValueError(f"{path}: not an unsigned-byte IDX file")
    dimensions = data[3]
    shape = tuple(int.from_bytes(data[4 + 4 * i:8 + 4 * i], "big") for i in range(dimensions))
    values = np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * dimensions)
    if values.size != math.prod(shape):
        raise ValueError(f"{path}: {values.size} values for shape {shape}")
    return values.reshape(shape)


def idx_path(folder, stem):
    for name in (stem, stem + ".gz"):
        candidate = os.path.join(folder, name)
        if os.path.exists(candidate):
            return candidate
    raise FileNotFoundError(f"no {stem}[.gz] in {folder}")


def load(folder, split):
    images = read_idx(idx_path(folder, f"{split}-images-idx3-ubyte"))
    labels = read_idx(idx_path(folder, f"{split}-labels-idx1-ubyte")).astype(np.int64)
    if images.ndim not in (3, 4) or len(images) != len(labels):
        raise ValueError(f"{folder}: {split} images {images.shape}, labels {labels.shape}")
    # [N, H, W] grey or [N, H, W, C] colour (Quorum reads both), as [N, H, W, C].
    return (images[..., None] if images.ndim == 3 else images), labels


def long_tail_counts(maximum, ratio, classes):
    """floor(maximum · ratio^(−c/(K−1))), as Quorum's LongTail.exponential."""
    return [int(math.floor(maximum * ratio ** (-c / max(classes - 1, 1)))) for c in range(classes)]


def first_per_class(labels, counts):
    """Indices of the first counts[c] examples of each class c, in file order."""
    remaining = list(counts)
    kept = []
    for index, label in enumerate(labels.tolist()):
        if remaining[label] > 0:
            remaining[label] -= 1
            kept.append(index)
    return np.array(kept, dtype=np.int64)


def augment(raw, generator):
    """raw: uint8 [B, H, W, C]. Zero-pads PAD px, takes a random H×W window (shift −PAD…PAD
    in each axis, independently) and flips left-right with probability 0.5, as Quorum's
    BatchAssembler: output[y, x] = raw[y + dy, (flip ? W−1−x : x) + dx], 0 outside."""
    batch, height, width, _ = raw.shape
    padded = F.pad(raw.to(torch.float32).permute(0, 3, 1, 2), (PAD, PAD, PAD, PAD))  # [B, C, H+2P, W+2P], zeros
    dy = torch.randint(-PAD, PAD + 1, (batch,), generator=generator)
    dx = torch.randint(-PAD, PAD + 1, (batch,), generator=generator)
    flip = torch.rand(batch, generator=generator) < 0.5
    ys = torch.arange(height)
    xs = torch.arange(width)
    rows = ys[None, :] + (dy + PAD)[:, None]  # [B, H]
    columns = torch.where(flip[:, None], (width - 1 - xs)[None, :], xs[None, :]) + (dx + PAD)[:, None]  # [B, W]
    examples = torch.arange(batch)[:, None, None]
    # The advanced indices first, the sliced channel axis last: [B, H, W, C], raw 0…255.
    return padded[examples, :, rows[:, :, None], columns[:, None, :]]


def normalise(pixels, mean, std):
    """Raw 0…255 floats [B, H, W, C] -> normalised by channel, [B, C, H, W] channels_last."""
    x = (pixels * (1.0 / 255.0) - torch.tensor(mean, dtype=torch.float32)) / torch.tensor(std, dtype=torch.float32)
    return x.permute(0, 3, 1, 2).contiguous(memory_format=torch.channels_last)


def metrics(predictions, labels, classes):
    """Quorum's ClassificationMetrics: balanced accuracy and lowest recall over the
    classes present in the labels; macro-F1 over those present in labels or predictions."""
    confusion = np.zeros((classes, classes), dtype=np.int64)
    np.add.at(confusion, (labels, predictions), 1)
    support = confusion.sum(axis=1)
    predicted = confusion.sum(axis=0)
    correct = np.diag(confusion)
    recall = [float(correct[c] / support[c]) if support[c] > 0 else 0.0 for c in range(classes)]
    present = [c for c in range(classes) if support[c] > 0]
    scored = [c for c in range(classes) if support[c] > 0 or predicted[c] > 0]
    f1 = [2 * correct[c] / (support[c] + predicted[c]) for c in scored]
    return {
        "accuracy": float(correct.sum() / max(len(labels), 1)),
        "balanced_accuracy": float(np.mean([recall[c] for c in present])) if present else 0.0,
        "macro_f1": float(np.mean(f1)) if f1 else 0.0,
        "lowest_recall": min((recall[c] for c in present), default=0.0),
        "per_class_recall": recall,
    }


def add_stochastic_depth(model, probability):
    """torchvision's StochasticDepth("row") on every residual branch: the i-th of B
    residual blocks drops its branch per example with probability p·i/B (Quorum's
    MobileNetV2Configuration.stochasticDepth)."""
    from torchvision.ops import stochastic_depth
    residual = [block for block in model.features if getattr(block, "use_res_connect", False)]
    for number, block in enumerate(residual, start=1):
        p = probability * number / len(residual)

        def forward(x, block=block, p=p):
            return x + stochastic_depth(block.conv(x), p, "row", block.training)
        block.forward = forward


def evaluate(model, images, labels, batch=1000, device=torch.device("cpu")):
    model.eval()
    predictions = []
    with torch.inference_mode():
        for start in range(0, len(images), batch):
            predictions.append(model(images[start:start + batch].to(device)).argmax(dim=1).cpu())
    model.train()
    return metrics(torch.cat(predictions).numpy(), labels, CLASSES)


def parameter_groups(model, weight_decay):
    """Weight decay on conv and linear weights (ndim > 1), none on batch norm or biases."""
    decay, no_decay = [], []
    for module in model.modules():
        for name, parameter in module.named_parameters(recurse=False):
            if isinstance(module, (nn.Conv2d, nn.Linear)) and name == "weight":
                decay.append(parameter)
            else:
                no_decay.append(parameter)
    assert len(decay) + len(no_decay) == len(list(model.parameters()))
    return [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]


def batches(count, batch_size, generator, weights=None, even=False):
    """A seeded permutation cut into batches: full ones and the rest last (DataLoader's
    drop_last=False), or with `even` into as few batches as hold it, sizes differing by one
    at most (Quorum's Trainer.batches). A batch of one example is dropped (batch
    normalisation needs two). With per-example `weights`, `count` draws with replacement
    instead (class-balanced sampling: weights 1/n_c, as torch's WeightedRandomSampler)."""
    if weights is not None:
        order = torch.multinomial(weights, count, replacement=True, generator=generator)
    else:
        order = torch.randperm(count, generator=generator)
    if even:
        number = (count + batch_size - 1) // batch_size
        base, extra = divmod(count, number)
        sizes = [base + (1 if index < extra else 0) for index in range(number)]
    else:
        sizes = [min(batch_size, count - start) for start in range(0, count, batch_size)]
    return [b for b in torch.split(order, sizes) if len(b) >= 2]


def fold_of_each(labels, folds, seed):
    """A stratified fold per example: each class's examples in a seeded order dealt to
    folds 0, 1, … in turn, the turn carried from class to class, as Quorum's
    FoldAssignment.stratified (so every fold holds as many of each class as Quorum's)."""
    generator = np.random.default_rng(seed)
    fold = np.zeros(len(labels), dtype=np.int64)
    turn = 0
    for label in range(int(labels.max()) + 1):
        members = np.flatnonzero(labels == label)
        for position in generator.permutation(len(members)):
            fold[members[position]] = turn
            turn = (turn + 1) % folds
    return fold


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", default="/usr/share/datasets/fashion-mnist",
                        help="folder with the Fashion-MNIST IDX files (train-*, t10k-*, gzip or not)")
    parser.add_argument("--long-tail-ratio", type=float, default=100.0,
                        help="imbalance ratio R of the training set (100: FMNIST-LT-100; 1: all 60,000)")
    parser.add_argument("--preset", choices=sorted(mobilenet_reference.PRESETS), default="imagenet")
    parser.add_argument("--width", type=float, default=1.0)
    parser.add_argument("--epochs", type=int, default=15)
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--learning-rate", type=float, default=0.1, help="one-cycle peak")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--sampling", choices=["shuffle", "class-balanced"], default="shuffle")
    parser.add_argument("--dropout", type=float, default=0.2, help="dropout before the classifier")
    parser.add_argument("--cycle-momentum", action="store_true",
                        help="OneCycleLR's momentum cycling (0.95 -> 0.85 -> 0.95), as quorum train --cycle-momentum")
    parser.add_argument("--stochastic-depth", type=float, default=0.0,
                        help="drop probability of the last residual block (earlier ones scale linearly), as quorum's")
    parser.add_argument("--batching", choices=["ragged", "even"], default="ragged",
                        help="ragged: DataLoader's full batches and the rest; even: Quorum's default cut")
    parser.add_argument("--folds", type=int, default=None, help="train on all folds but --fold of a stratified split")
    parser.add_argument("--fold", type=int, default=0)
    parser.add_argument("--step-log", default=None,
                        help="a JSON line per step, as quorum train --step-log: loss and the gradient norm before the step")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--device", default="cpu", help="cpu, or cuda (scripts/bench/gpu.sh)")
    parser.add_argument("--bf16", action="store_true", help="bfloat16 autocast (the GPU peer's eager mode)")
    parser.add_argument("--limit", type=int, default=None, help=argparse.SUPPRESS)  # smoke tests only
    args = parser.parse_args()
    if args.long_tail_ratio < 1:
        parser.error("--long-tail-ratio must be at least 1")
    if args.epochs < 1:
        parser.error("--epochs must be at least 1")

    torch.set_num_threads(args.threads)
    torch.set_num_interop_threads(1)
    torch.manual_seed(args.seed)  # initialisation and dropout
    np.random.seed(args.seed)
    data_generator = torch.Generator().manual_seed(args.seed)  # shuffling and augmentation

    def log(message):
        print(f"pytorch_accuracy: {message}", file=sys.stderr, flush=True)

    train_images, train_labels = load(args.data, "train")
    test_images, test_labels = load(args.data, "t10k")
    if args.long_tail_ratio != 1:
        counts = long_tail_counts(int(np.bincount(train_labels, minlength=CLASSES).max()), args.long_tail_ratio, CLASSES)
        if args.long_tail_ratio == 100:
            assert counts == FMNIST_LT_100_COUNTS and sum(counts) == 14886, counts
        kept = first_per_class(train_labels, counts)
        train_images, train_labels = train_images[kept], train_labels[kept]
    if args.folds is not None:
        if args.folds < 2 or not 0 <= args.fold < args.folds:
            parser.error(f"--folds needs at least 2 folds and --fold in 0…{args.folds - 1}")
        kept = fold_of_each(train_labels, args.folds, args.seed) != args.fold
        train_images, train_labels = train_images[kept], train_labels[kept]
    if args.limit is not None:
        train_images, train_labels = train_images[:args.limit], train_labels[:args.limit]
        test_images, test_labels = test_images[:args.limit], test_labels[:args.limit]
    if len(train_labels) < 2:
        parser.error("the training set needs at least 2 examples")

    # Per channel, population std over all pixels, as Quorum's channelStatistics.
    channels = train_images.shape[-1]
    mean, std = [], []
    for channel in range(channels):
        scaled = train_images[..., channel].astype(np.float64) / 255.0
        mean.append(float(scaled.mean()))
        std.append(float(max(scaled.var(), 1e-24) ** 0.5))
        del scaled
    log(f"training {len(train_labels)} examples of {train_images.shape[1:]}, per class "
        f"{np.bincount(train_labels, minlength=CLASSES).tolist()}; test {len(test_labels)}; "
        f"mean {', '.join(f'{m:.4f}' for m in mean)} std {', '.join(f'{s:.4f}' for s in std)}")

    train_raw = torch.from_numpy(np.array(train_images, copy=True))  # frombuffer arrays are read-only
    train_targets = torch.from_numpy(train_labels)
    test_inputs = normalise(torch.from_numpy(test_images.astype(np.float32)), mean, std)

    model = mobilenet_reference.build_preset(args.preset, args.width, channels, CLASSES, dropout=args.dropout)
    if args.stochastic_depth > 0:
        add_stochastic_depth(model, args.stochastic_depth)
    device = torch.device(args.device)
    model = model.to(device=device, memory_format=torch.channels_last)
    model.train()

    sample_weights = None
    if args.sampling == "class-balanced":
        class_counts = np.bincount(train_labels, minlength=CLASSES).astype(np.float64)
        sample_weights = torch.tensor(1.0 / class_counts[train_labels], dtype=torch.float64)
    even = args.batching == "even"
    steps_per_epoch = len(batches(len(train_labels), args.batch, torch.Generator().manual_seed(0), even=even))
    optimizer = torch.optim.SGD(parameter_groups(model, 5e-4), lr=args.learning_rate, momentum=0.9, nesterov=True)
    scheduler = torch.optim.lr_scheduler.OneCycleLR(
        optimizer, max_lr=args.learning_rate, total_steps=args.epochs * steps_per_epoch, pct_start=0.15,
        anneal_strategy="cos", div_factor=25, final_div_factor=1e4, cycle_momentum=args.cycle_momentum,
        base_momentum=0.85, max_momentum=0.95)
    loss_function = nn.CrossEntropyLoss(label_smoothing=0.1)

    history = []
    seen_total = 0
    step_log = open(args.step_log, "w") if args.step_log else None
    for epoch in range(1, args.epochs + 1):
        start = time.perf_counter()
        loss_sum = 0.0
        seen = 0
        for indices in batches(len(train_labels), args.batch, data_generator, sample_weights, even=even):
            inputs = normalise(augment(train_raw[indices], data_generator), mean, std).to(device, non_blocking=True)
            with torch.autocast(device_type=device.type, dtype=torch.bfloat16, enabled=args.bf16):
                loss = loss_function(model(inputs), train_targets[indices].to(device, non_blocking=True))
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            if step_log is not None:
                # The global L2 norm, scaled by min(1, inf) = 1: measured, not clipped.
                norm = float(torch.nn.utils.clip_grad_norm_(model.parameters(), float("inf")))
                group = optimizer.param_groups[0]
                step_log.write(json.dumps({
                    "epoch": epoch, "step": scheduler.last_epoch + 1, "batch": len(indices),
                    "learning_rate": group["lr"], "momentum": group["momentum"], "loss": loss.item(),
                    "gradient_norm": norm}) + "\n")
            optimizer.step()
            scheduler.step()
            loss_sum += loss.item() * len(indices)
            seen += len(indices)
        seconds = time.perf_counter() - start
        seen_total += seen
        scores = evaluate(model, test_inputs, test_labels, device=device)
        record = {
            "epoch": epoch,
            "train_loss": loss_sum / max(seen, 1),
            "seconds": seconds,
            "test_accuracy": scores["accuracy"],
            "test_balanced_accuracy": scores["balanced_accuracy"],
            "test_macro_f1": scores["macro_f1"],
            "test_lowest_recall": scores["lowest_recall"],
        }
        history.append(record)
        log(f"epoch {epoch}/{args.epochs}  loss {record['train_loss']:.4f}  {seconds:.1f} s  "
            f"{seen / seconds:.0f} img/s  test accuracy {scores['accuracy']:.4f}  "
            f"lowest recall {scores['lowest_recall']:.3f}")

    if step_log is not None:
        step_log.close()
    seconds_total = sum(record["seconds"] for record in history)
    # Fashion-MNIST's folder is "fmnist"; another (colour_data.py's) goes by its folder name.
    folder = os.path.basename(os.path.normpath(args.data))
    base = "fmnist" if folder == "fashion-mnist" else folder
    if args.long_tail_ratio == 1:
        data_name = base
    elif args.long_tail_ratio == int(args.long_tail_ratio):
        data_name = f"{base}-lt-{int(args.long_tail_ratio)}"
    else:
        data_name = f"{base}-lt-{args.long_tail_ratio:g}"
    last = scores
    result = {
        "engine": "pytorch",
        "data": data_name,
        "preset": args.preset,
        "width": args.width,
        "epochs": args.epochs,
        "seed": args.seed,
        "dropout": args.dropout,
        "stochastic_depth": args.stochastic_depth,
        "threads": args.threads,
        "batching": args.batching,
        "folds": args.folds,
        "fold": args.fold if args.folds is not None else None,
        "train_examples": int(len(train_labels)),
        "seconds_total": seconds_total,
        "train_images_per_second": seen_total / seconds_total if seconds_total > 0 else None,
        "history": history,
        "test_accuracy": last["accuracy"],
        "test_balanced_accuracy": last["balanced_accuracy"],
        "test_macro_f1": last["macro_f1"],
        "test_lowest_recall": last["lowest_recall"],
        "test_per_class_recall": last["per_class_recall"],
        "torch_version": torch.__version__,
    }
    if args.limit is not None:
        result["limit"] = args.limit  # a smoke test, not a result
    print(json.dumps(result))


if __name__ == "__main__":
    main()
