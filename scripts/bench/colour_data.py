#!/usr/bin/env python3
"""Colour photo-like images made from Fashion-MNIST, for the colour benchmarks (issue 20).

No colour classification data set ships as a Debian or Python package on these machines
(the keras and torchvision loaders download theirs), so this makes one: each Fashion-MNIST
item, its label kept, becomes a 96×96 RGB "photo": the item enlarged to 44–80 px
(bilinear), given a random colour with its own shading as texture, placed at a random
spot on a background of a random two-colour gradient with low-frequency blotches, lit by
a random brightness and overlaid with sensor noise. The label is the item's shape, never
its colour, so colour is a nuisance as in photos, and a colour jitter is a fair
augmentation. Each image is seeded by its split and index, so the set is the same on every
machine.

    python3 scripts/bench/colour_data.py OUT [--train-per-class 600] [--test-per-class 200]

OUT gets train-images-idx3-ubyte ([n, 96, 96, 3]), train-labels-idx1-ubyte and the t10k
pair: Fashion-MNIST's layout, which `quorum train --data OUT` and
`pytorch_accuracy.py --data OUT` read. The first N of each class are taken, in file order.
Needs numpy.
"""
import argparse
import gzip
import os
import struct

import numpy as np

SIZE = 96


def read_idx(path):
    opener = gzip.open if path.endswith(".gz") else open
    with opener(path, "rb") as stream:
        data = stream.read()
    dimensions = data[3]
    shape = struct.unpack(">" + "I" * dimensions, data[4:4 + 4 * dimensions])
    return np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * dimensions).reshape(shape)


def find(folder, stem):
    for name in (stem, stem + ".gz"):
        if os.path.exists(os.path.join(folder, name)):
            return os.path.join(folder, name)
    raise FileNotFoundError(f"no {stem}[.gz] in {folder}")


def write_idx(path, array):
    with open(path, "wb") as stream:
        stream.write(bytes([0, 0, 0x08, array.ndim]) + struct.pack(">" + "I" * array.ndim, *array.shape))
        stream.write(np.ascontiguousarray(array, dtype=np.uint8).tobytes())


def bilinear(image, height, width):
    """float [h, w] resized to [height, width], pixel centres aligned."""
    h, w = image.shape
    ys = np.clip((np.arange(height) + 0.5) * h / height - 0.5, 0, h - 1)
    xs = np.clip((np.arange(width) + 0.5) * w / width - 0.5, 0, w - 1)
    y0, x0 = np.floor(ys).astype(int), np.floor(xs).astype(int)
    y1, x1 = np.minimum(y0 + 1, h - 1), np.minimum(x0 + 1, w - 1)
    fy, fx = (ys - y0)[:, None], (xs - x0)[None, :]
    top = image[y0][:, x0] * (1 - fx) + image[y0][:, x1] * fx
    bottom = image[y1][:, x0] * (1 - fx) + image[y1][:, x1] * fx
    return top * (1 - fy) + bottom * fy


def photo(item, random):
    """One 96×96×3 uint8 photo of a 28×28 grey item."""
    # Background: a gradient between two colours at a random angle, and blotches.
    start, end = random.uniform(0, 255, 3), random.uniform(0, 255, 3)
    angle = random.uniform(0, 2 * np.pi)
    ys, xs = np.mgrid[0:SIZE, 0:SIZE] / (SIZE - 1) - 0.5
    t = np.clip(0.5 + xs * np.cos(angle) + ys * np.sin(angle), 0, 1)[..., None]
    background = start * (1 - t) + end * t
    blotches = np.stack([bilinear(random.normal(0, 25, (6, 6)), SIZE, SIZE) for _ in range(3)], axis=-1)
    background = background + blotches
    # The item: enlarged, coloured, its own intensity as shading and as the alpha mask.
    side = int(random.integers(44, 81))
    intensity = bilinear(item.astype(np.float64) / 255, side, side)
    colour = random.uniform(0, 255, 3)
    shaded = colour * (0.45 + 0.55 * intensity[..., None])
    alpha = np.clip(intensity * 1.6, 0, 1)[..., None]
    top, left = (int(v) for v in random.integers(0, SIZE - side + 1, 2))
    canvas = background.copy()
    region = canvas[top:top + side, left:left + side]
    canvas[top:top + side, left:left + side] = alpha * shaded + (1 - alpha) * region
    # Light and sensor noise.
    canvas = canvas * random.uniform(0.7, 1.3) + random.normal(0, 6, canvas.shape)
    return np.clip(np.rint(canvas), 0, 255).astype(np.uint8)


def split(images, labels, per_class, name, seed):
    classes = int(labels.max()) + 1
    chosen = np.concatenate([np.flatnonzero(labels == c)[:per_class] for c in range(classes)])
    chosen.sort()
    photos = np.empty((len(chosen), SIZE, SIZE, 3), dtype=np.uint8)
    for row, index in enumerate(chosen):
        photos[row] = photo(images[index], np.random.default_rng([seed, 0 if name == "train" else 1, int(index)]))
    return photos, labels[chosen]


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("out")
    parser.add_argument("--data", default="/usr/share/datasets/fashion-mnist")
    parser.add_argument("--train-per-class", type=int, default=600)
    parser.add_argument("--test-per-class", type=int, default=200)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    os.makedirs(args.out, exist_ok=True)
    for name, per_class in (("train", args.train_per_class), ("t10k", args.test_per_class)):
        images = read_idx(find(args.data, f"{name}-images-idx3-ubyte"))
        labels = read_idx(find(args.data, f"{name}-labels-idx1-ubyte"))
        photos, kept = split(images, labels, per_class, name, args.seed)
        write_idx(os.path.join(args.out, f"{name}-images-idx3-ubyte"), photos)
        write_idx(os.path.join(args.out, f"{name}-labels-idx1-ubyte"), kept)
        print(f"colour_data: {args.out}/{name}: {len(kept)} images of {SIZE}x{SIZE}x3")


if __name__ == "__main__":
    main()
