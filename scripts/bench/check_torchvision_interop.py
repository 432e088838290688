#!/usr/bin/env python3
"""Check that a Quorum checkpoint loads into torchvision and gives Quorum's logits.

    python3 scripts/bench/check_torchvision_interop.py RUN_DIR [--test-images PATH]

RUN_DIR is what `quorum train --output RUN_DIR` writes:
  model.safetensors  torchvision mobilenet_v2 state_dict names and PyTorch layouts;
                     __metadata__ holds format, width, input_channels, classes,
                     stem_stride, stage_strides, dropout, mean, std, image_height,
                     image_width (all strings)
  test.logits.npy    float32 [n_test, classes]: Quorum's eval-mode logits on the test
                     images in file order, after pixels/255 and (x - mean) / std

Builds the model from the metadata (mobilenet_reference.build), loads the weights with
strict=True, runs it in eval mode and compares. Exit 0 when argmax agreement >= 99.9 %
and max |difference| <= 1e-3 * (1 + max |logit|); exit 1 otherwise.
"""
import argparse
import gzip
import os
import sys

import numpy as np
import torch
from safetensors import safe_open
from safetensors.torch import load_file

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import mobilenet_reference  # noqa: E402

DEFAULT_TEST_IMAGES = "/usr/share/datasets/fashion-mnist/t10k-images-idx3-ubyte.gz"
MIN_ARGMAX_AGREEMENT = 0.999
RELATIVE_TOLERANCE = 1e-3


def read_idx_images(path):
    """IDX unsigned-byte images, gzip'd or not -> uint8 [n, height, width, channels]."""
    with open(path, "rb") as file:
        data = file.read()
    if data[:2] == b"\x1f\x8b":
        data = gzip.decompress(data)
    zero, dtype_code, ndim = data[:2], data[2], data[3]
    if zero != b"\x00\x00" or dtype_code != 0x08 or ndim not in (3, 4):
        sys.exit(f"{path}: not an IDX file of unsigned-byte images (header {data[:4].hex()})")
    shape = tuple(int.from_bytes(data[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim))
    images = np.frombuffer(bytearray(data), dtype=np.uint8, offset=4 + 4 * ndim).reshape(shape)  # writable
    return images if ndim == 4 else images[..., None]


def floats(text):
    return [float(x) for x in text.split(",")]


def build_from_metadata(metadata):
    if metadata.get("format") != "quorum.mobilenet_v2":
        sys.exit(f"unexpected checkpoint format {metadata.get('format')!r}, want 'quorum.mobilenet_v2'")
    stage_strides = tuple(int(x) for x in metadata["stage_strides"].split(","))
    return mobilenet_reference.build(
        width=float(metadata["width"]),
        input_channels=int(metadata["input_channels"]),
        classes=int(metadata["classes"]),
        stem_stride=int(metadata["stem_stride"]),
        stage_strides=stage_strides,
        dropout=float(metadata["dropout"]),
    )


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("run_dir")
    parser.add_argument("--test-images", default=DEFAULT_TEST_IMAGES, help="IDX images, gzip or not")
    parser.add_argument("--batch", type=int, default=500)
    args = parser.parse_args()

    checkpoint = os.path.join(args.run_dir, "model.safetensors")
    with safe_open(checkpoint, framework="pt") as file:
        metadata = file.metadata() or {}
    model = build_from_metadata(metadata)
    state = load_file(checkpoint)
    # load_state_dict converts dtypes silently: check them first, so an F32 step counter
    # or an F16 weight is reported rather than hidden.
    expected = model.state_dict()
    wrong = [f"{name}: {state[name].dtype}, want {expected[name].dtype}"
             for name in state if name in expected and state[name].dtype != expected[name].dtype]
    if wrong:
        sys.exit("wrong dtypes:\n  " + "\n  ".join(wrong))
    model.load_state_dict(state, strict=True)
    model.eval()

    images = read_idx_images(args.test_images)
    n, height, width, channels = images.shape
    want = (int(metadata["image_height"]), int(metadata["image_width"]), int(metadata["input_channels"]))
    if (height, width, channels) != want:
        sys.exit(f"test images are {height}x{width}x{channels}, checkpoint expects {want[0]}x{want[1]}x{want[2]}")
    mean = torch.tensor(floats(metadata["mean"])).view(1, -1, 1, 1)
    std = torch.tensor(floats(metadata["std"])).view(1, -1, 1, 1)

    ours = np.load(os.path.join(args.run_dir, "test.logits.npy"))
    if ours.shape != (n, int(metadata["classes"])) or ours.dtype != np.float32:
        sys.exit(f"test.logits.npy is {ours.dtype} {ours.shape}, want float32 {(n, int(metadata['classes']))}")

    outputs = []
    with torch.inference_mode():
        for start in range(0, n, args.batch):
            batch = torch.from_numpy(images[start:start + args.batch]).permute(0, 3, 1, 2).float() / 255
            outputs.append(model((batch - mean) / std))
    theirs = torch.cat(outputs).numpy()

    difference = np.abs(ours - theirs)
    max_abs_logit = float(np.abs(theirs).max())
    max_abs = float(difference.max())
    # Relative to the larger magnitude of the pair; the floor keeps logits near 0 from
    # dominating (informative only: the pass criterion is the absolute one below).
    max_relative = float((difference / np.maximum(np.maximum(np.abs(ours), np.abs(theirs)), 1e-6)).max())
    agreement = float((ours.argmax(1) == theirs.argmax(1)).mean())
    tolerance = RELATIVE_TOLERANCE * (1 + max_abs_logit)

    print(f"images: {n}, classes: {ours.shape[1]}, max |logit| (torchvision): {max_abs_logit:.4g}")
    print(f"max abs difference: {max_abs:.3g} (tolerance {tolerance:.3g})")
    print(f"max relative difference: {max_relative:.3g}")
    print(f"argmax agreement: {agreement:.4%} (need {MIN_ARGMAX_AGREEMENT:.1%})")
    passed = agreement >= MIN_ARGMAX_AGREEMENT and max_abs <= tolerance
    print("PASS" if passed else "FAIL")
    sys.exit(0 if passed else 1)


if __name__ == "__main__":
    main()
