#!/usr/bin/env python3
"""Writes the fine-tuning benchmark's data (scripts/bench/finetune.sh) as IDX files:
  pretrain/   Fashion-MNIST's training images of classes 0-4 (T-shirt, trouser, pullover,
              dress, coat), all of them, labels 0-4
  few-S/      50 training images of each of classes 5-9 (sandal, shirt, sneaker, bag, ankle
              boot), drawn with seed S, labels 0-4
  test/       the 5,000 test images of classes 5-9, labels 0-4
Usage: finetune_data.py FASHION_MNIST_FOLDER OUT_FOLDER SEED [SEED...]
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
    images, labels = read(source / "train-images-idx3-ubyte.gz"), read(source / "train-labels-idx1-ubyte.gz")
    test_images, test_labels = read(source / "t10k-images-idx3-ubyte.gz"), read(source / "t10k-labels-idx1-ubyte.gz")
    first = labels < 5
    write(out / "pretrain", images[first], labels[first])
    later = test_labels >= 5
    write(out / "test", test_images[later], test_labels[later] - 5)
    for seed in map(int, sys.argv[3:]):
        generator = np.random.default_rng(seed)
        chosen = np.concatenate([generator.choice(np.nonzero(labels == c)[0], 50, replace=False) for c in range(5, 10)])
        write(out / f"few-{seed}", images[chosen], labels[chosen] - 5)


if __name__ == "__main__":
    main()
