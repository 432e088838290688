#!/usr/bin/env python3
"""torchvision's MobileNetV2, adapted the way Quorum builds it (docs/architecture.md).

Importable (build, PRESETS, forward_flops) and a small CLI:

    python3 scripts/bench/mobilenet_reference.py names --width 1.0 --preset imagenet
    python3 scripts/bench/mobilenet_reference.py counts
    python3 scripts/bench/mobilenet_reference.py flops --width 0.5 --preset cifar

`names` prints {"parameters": N, "tensors": [{"name", "shape", "dtype"}, ...]} with the
tensors in state_dict order: the fixture Quorum's checkpoint names are tested against.
"""
import argparse
import json
import sys

import torch
from torch import nn
import torchvision

# (stem stride, stride of the first block of each of the 7 stages)
PRESETS = {
    "imagenet": (2, (1, 2, 2, 2, 1, 2, 1)),
    "cifar": (1, (1, 1, 2, 2, 1, 2, 1)),
}

# Blocks per stage in the inverted residual setting (t, c, n, s): the n column.
BLOCKS_PER_STAGE = (1, 2, 3, 4, 3, 3, 1)


def build(width=1.0, input_channels=1, classes=10, stem_stride=2,
          stage_strides=(1, 2, 2, 2, 1, 2, 1), dropout=0.2):
    """torchvision.models.mobilenet_v2 with a different stem input/stride and stage strides."""
    if len(stage_strides) != len(BLOCKS_PER_STAGE):
        raise ValueError(f"need 7 stage strides, got {stage_strides}")
    if not {stem_stride, *stage_strides} <= {1, 2}:
        raise ValueError("strides must be 1 or 2")
    model = torchvision.models.mobilenet_v2(num_classes=classes, width_mult=width, dropout=dropout)

    stem = model.features[0][0]
    model.features[0][0] = nn.Conv2d(input_channels, stem.out_channels, 3,
                                     stride=stem_stride, padding=1, bias=False)
    # torchvision initialised the stem it built; the replacement gets the same rule
    # (Kaiming normal, fan-out), not nn.Conv2d's default uniform init, which gave the
    # stem a weight norm of 3.33 against 1.44 (issue 17).
    nn.init.kaiming_normal_(model.features[0][0].weight, mode="fan_out")

    first_block = 1  # features[0] is the stem
    for blocks, stride in zip(BLOCKS_PER_STAGE, stage_strides):
        block = model.features[first_block]
        # With expansion t=1 (first stage) there is no 1x1 expand conv: the depthwise
        # conv is conv[0][0]; otherwise conv[1][0].
        depthwise = block.conv[0][0] if len(block.conv) == 3 else block.conv[1][0]
        assert depthwise.groups == depthwise.in_channels > 1, "expected the depthwise conv"
        depthwise.stride = (stride, stride)
        block.stride = stride
        block._is_cn = stride > 1  # torchvision keeps this beside stride; keep it consistent
        # torchvision decided the residual at construction from the old stride; redo it.
        # It matters: make-divisible rounding can leave a stage's first block with
        # inp == oup (width 0.35: features.2 is 8 -> 8), so the cifar preset's stride 1
        # there adds a residual that the imagenet preset does not have.
        block_input_channels = block.conv[0][0].in_channels
        block.use_res_connect = stride == 1 and block_input_channels == block.out_channels
        first_block += blocks
    return model


def build_preset(preset, width=1.0, input_channels=1, classes=10, dropout=0.2):
    stem_stride, stage_strides = PRESETS[preset]
    return build(width, input_channels, classes, stem_stride, stage_strides, dropout)


def trainable_parameters(model):
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def forward_flops(model, input_shape=(1, 1, 28, 28)):
    """Forward FLOPs per image = 2 x multiply-adds of every Conv2d and Linear.

    BN, ReLU6, pooling and residual adds are not counted (they are < 1 % and are what
    fvcore-style counters leave out too). Counted with forward hooks on one image.
    """
    total = 0

    def conv_hook(module, inputs, output):
        nonlocal total
        per_output = (module.in_channels // module.groups) * module.kernel_size[0] * module.kernel_size[1]
        total += 2 * output.numel() * per_output

    def linear_hook(module, inputs, output):
        nonlocal total
        total += 2 * output.numel() * module.in_features

    handles = []
    for module in model.modules():
        if isinstance(module, nn.Conv2d):
            handles.append(module.register_forward_hook(conv_hook))
        elif isinstance(module, nn.Linear):
            handles.append(module.register_forward_hook(linear_hook))
    was_training = model.training
    model.eval()
    with torch.inference_mode():
        model(torch.zeros(input_shape))
    model.train(was_training)
    for handle in handles:
        handle.remove()
    return total // input_shape[0]


def describe(model):
    tensors = [{"name": name, "shape": list(t.shape), "dtype": str(t.dtype).removeprefix("torch.")}
               for name, t in model.state_dict().items()]
    return {"parameters": trainable_parameters(model), "tensors": tensors}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("command", choices=["names", "counts", "flops"])
    parser.add_argument("--width", type=float, default=1.0)
    parser.add_argument("--preset", choices=sorted(PRESETS), default="imagenet")
    parser.add_argument("--input-channels", type=int, default=1)
    parser.add_argument("--classes", type=int, default=10)
    args = parser.parse_args(argv)

    if args.command == "names":
        model = build_preset(args.preset, args.width, args.input_channels, args.classes)
        result = describe(model)
    elif args.command == "counts":
        result = {str(w): trainable_parameters(build_preset(args.preset, w, args.input_channels, args.classes))
                  for w in (0.35, 0.5, 0.75, 1.0, 1.4)}
    else:
        model = build_preset(args.preset, args.width, args.input_channels, args.classes)
        result = {"preset": args.preset, "width": args.width,
                  "forward_flops_per_image": forward_flops(model, (1, args.input_channels, 28, 28))}
    if args.command == "names":
        # One tensor per line: a fixture that diffs well and still parses as JSON.
        lines = ",\n".join("  " + json.dumps(t) for t in result["tensors"])
        sys.stdout.write(f'{{"parameters": {result["parameters"]}, "tensors": [\n{lines}\n]}}\n')
    else:
        json.dump(result, sys.stdout, indent=1)
        sys.stdout.write("\n")


if __name__ == "__main__":
    main()
