#!/usr/bin/env python3
"""The augmentation peer: numpy/scipy applying the same transforms as Quorum's
BatchAssembler to Fashion-MNIST's 60,000 training images, one thread, in batches of 256.

  reference: zero-pad 2, random 28x28 crop, horizontal flip p=0.5, normalise (vectorised numpy)
  affine:    + rotation +-15 deg, scale 1+-0.1, shear +-10 deg (scipy.ndimage.affine_transform, bilinear)
  full:      + elastic distortion (alpha 8, sigma 4; scipy gaussian_filter + map_coordinates)
             + random erasing p=0.5
Prints one JSON line: {"engine": "numpy", "augmentation", "images_per_second", ...}.
"""
import argparse
import gzip
import json
import os
import time

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
import numpy as np  # noqa: E402
from scipy import ndimage  # noqa: E402


def load(path):
    with gzip.open(path) as f:
        data = f.read()
    return np.frombuffer(data, np.uint8, offset=16).reshape(-1, 28, 28)


def reference(batch, rng, mean, std):
    n = len(batch)
    padded = np.pad(batch, ((0, 0), (2, 2), (2, 2)))
    dy = rng.integers(0, 5, n)
    dx = rng.integers(0, 5, n)
    rows = dy[:, None] + np.arange(28)[None, :]
    cols = dx[:, None] + np.arange(28)[None, :]
    out = padded[np.arange(n)[:, None, None], rows[:, :, None], cols[:, None, :]]
    flip = rng.random(n) < 0.5
    out[flip] = out[flip, :, ::-1]
    return (out.astype(np.float32) / 255 - mean) / std


def affine(batch, rng, mean, std, elastic=False, erasing=False):
    base = reference(batch, rng, 0.0, 1.0 / 255)  # raw pixel values, shifted and flipped
    out = np.empty_like(base)
    centre = np.array([13.5, 13.5])
    for i, image in enumerate(base):
        angle = np.deg2rad(rng.uniform(-15, 15))
        factor = 1 + rng.uniform(-0.1, 0.1)
        shear = np.tan(np.deg2rad(rng.uniform(-10, 10)))
        c, s = np.cos(angle), np.sin(angle)
        forward = factor * np.array([[c, -s], [s, c]]) @ np.array([[1, shear], [0, 1]])
        inverse = np.linalg.inv(forward)
        offset = centre - inverse @ centre
        if elastic:
            dx = ndimage.gaussian_filter(rng.uniform(-1, 1, (28, 28)), 4) * 8
            dy = ndimage.gaussian_filter(rng.uniform(-1, 1, (28, 28)), 4) * 8
            y, x = np.meshgrid(np.arange(28), np.arange(28), indexing="ij")
            coords = np.stack([y, x]).reshape(2, -1).astype(np.float64)
            mapped = inverse @ coords + offset[:, None]
            mapped[0] += dy.ravel()
            mapped[1] += dx.ravel()
            out[i] = ndimage.map_coordinates(image, mapped, order=1, cval=0).reshape(28, 28)
        else:
            out[i] = ndimage.affine_transform(image, inverse, offset=offset, order=1, cval=0)
    out = (out / 255 - mean) / std
    if erasing:
        for i in range(len(out)):
            if rng.random() < 0.5:
                area = 784 * rng.uniform(0.02, 0.33)
                aspect = np.exp(rng.uniform(np.log(0.3), np.log(3.3)))
                h = min(28, max(1, int(round(np.sqrt(area * aspect)))))
                w = min(28, max(1, int(round(np.sqrt(area / aspect)))))
                top, left = rng.integers(0, 29 - h), rng.integers(0, 29 - w)
                out[i, top:top + h, left:left + w] = 0
    return out


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--augmentation", default="reference", choices=["reference", "affine", "full"])
    parser.add_argument("--data", default="/usr/share/datasets/fashion-mnist")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--limit", type=int, default=60000, help="images per repeat (scipy's per-image loop is slow)")
    args = parser.parse_args()
    images = load(os.path.join(args.data, "train-images-idx3-ubyte.gz"))[: args.limit]
    mean, std = images.mean() / 255, images.std() / 255
    rng = np.random.default_rng(1)
    rates = []
    for _ in range(args.repeats):
        start = time.perf_counter()
        for first in range(0, len(images), 256):
            batch = images[first:first + 256]
            if args.augmentation == "reference":
                reference(batch, rng, mean, std)
            else:
                affine(batch, rng, mean, std, elastic=args.augmentation == "full", erasing=args.augmentation == "full")
        rates.append(len(images) / (time.perf_counter() - start))
    rate = sorted(rates)[len(rates) // 2]
    print(json.dumps({"engine": "numpy", "augmentation": args.augmentation, "threads": 1, "images_per_second": rate,
                      "images_per_second_per_thread": rate, "numpy": np.__version__}))


if __name__ == "__main__":
    main()
