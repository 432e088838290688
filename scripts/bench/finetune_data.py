#!/usr/bin/env python3
"""Writes the fine-tuning benchmark's data (scripts/bench/finetune.sh) as IDX files:
  pretrain/   Fashion-MNIST's training images of the five pretraining classes (by default
              0-4: T-shirt, trouser, pullover, dress, coat), all of them, labels 0-4
  few-S/      50 training images of each of the other five (by default 5-9: sandal,
              shirt, sneaker, bag, ankle boot), drawn with seed S, labels 0-4
  test/       the 5,000 test images of the other five, labels 0-4
Usage: finetune_data.py FASHION_MNIST_FOLDER OUT_FOLDER [--pretrain-classes 0,2,4,6,8] SEED [SEED...]
"""
import gzip
import pathlib
import struct
import sys

import numpy as np


def read(path):
    data = gzip.open(path).read()
    magic, count = struct.unpack(">II", data[:8])
    if magic == 2051:
        rows, columns = struct.unpack(">II", data[8:16])
        return np.frombuffer(data, np.uint8, offset=16).reshape(count, rows, columns)
    return np.frombuffer(data, np.uint8, offset=8)


def write(folder, images, labels):
    folder.mkdir(parents=True, exist_ok=True)
    n, rows, columns = images.shape
    (folder / "images.idx").write_bytes(struct.pack(">IIII", 2051, n, rows, columns) + images.tobytes())
    (folder / "labels.idx").write_bytes(struct.pack(">II", 2049, n) + labels.astype(np.uint8).tobytes())


def main():
    source, out = pathlib.Path(sys.argv[1]), pathlib.Path(sys.argv[2])
    arguments = sys.argv[3:]
    pretrain_classes = [0, 1, 2, 3, 4]
    if arguments[:1] == ["--pretrain-classes"]:
        pretrain_classes = sorted(int(c) for c in arguments[1].split(","))
        arguments = arguments[2:]
    if len(pretrain_classes) != 5 or not set(pretrain_classes) <= set(range(10)):
        sys.exit(f"finetune_data: --pretrain-classes must name five of 0-9, got {pretrain_classes}")
    target_classes = [c for c in range(10) if c not in pretrain_classes]
    # Each set's classes renumbered 0-4 in order.
    pretrain_label = np.full(10, 255, np.uint8)
    pretrain_label[pretrain_classes] = np.arange(5)
    target_label = np.full(10, 255, np.uint8)
    target_label[target_classes] = np.arange(5)
    images, labels = read(source / "train-images-idx3-ubyte.gz"), read(source / "train-labels-idx1-ubyte.gz")
    test_images, test_labels = read(source / "t10k-images-idx3-ubyte.gz"), read(source / "t10k-labels-idx1-ubyte.gz")
    first = np.isin(labels, pretrain_classes)
    write(out / "pretrain", images[first], pretrain_label[labels[first]])
    later = np.isin(test_labels, target_classes)
    write(out / "test", test_images[later], target_label[test_labels[later]])
    for seed in map(int, arguments):
        generator = np.random.default_rng(seed)
        chosen = np.concatenate([generator.choice(np.nonzero(labels == c)[0], 50, replace=False) for c in target_classes])
        write(out / f"few-{seed}", images[chosen], target_label[labels[chosen]])


if __name__ == "__main__":
    main()
