#!/usr/bin/env python3
"""Writes pytorch_training_parity.safetensors: five optimizer steps of the reference recipe
in PyTorch float64, which PyTorchTrainingParityTests compares Quorum's Trainer with, step
by step (issue 17: what builds up over a run, which the one-step parity test cannot see).

torchvision's mobilenet_v2 adapted as Quorum builds it (scripts/bench/mobilenet_reference.py,
its own initialisation), imagenet preset (the stride-2 stem, maps down to 1x1) on 28x28x1,
width 0.5, 10 classes; one batch of 127 examples (Quorum's buffers are planned for 128),
the same batch at every step. The recipe's step: SGD with Nesterov momentum 0.9, weight
decay 5e-4 on conv and linear weights only (scripts/bench/pytorch_accuracy.py's groups),
OneCycleLR to 0.1 over 100 steps (15 % warm-up, cosine, div 25, final div 1e4, no momentum
cycling) of which these are the first 5 (the rate from 0.004 to 0.022), label smoothing
0.1, dropout 0.2 before the classifier with the masks Quorum draws at seed 5, steps 0..4
(its Philox streams, as in make_pytorch_parity.py).
  weights/<state_dict name>       the initial weights and buffers (PyTorch layouts)
  pixels                          the images' bytes as float32, NHWC [127, 28, 28, 1]
  labels                          float32 [127]
  after/<k>/<bn>.running_mean|var the running statistics after step k = 1..5
  update/<name>                   each parameter after step 5 minus before step 1
  update_norms                    [5, parameters]: ||w_k - w_0|| of each parameter after
                                  step k, in named_parameters order
  cycled/update_norms             the same five steps from the same start with OneCycleLR's
                                  momentum cycling on (0.95 -> 0.85 at the peak -> 0.95)
  ragged/...                      the plain run on the first 5 examples only (a ragged last
                                  batch in buffers planned for 128): losses, after/, update_norms
  float32/envelope/update_norms, float32/envelope/cycled/update_norms, .../ragged/update_norms,
  float32/envelope/update/<name>, metadata float32/envelope/[cycled/]loss_<k>
                                  the largest distance from float64 of seven PyTorch
                                  float32 runs (the same weights, and six nudged by one ulp):
                                  how far float32 rounding alone moves each result, which the
                                  test allows Quorum twice over
metadata: loss_<k> (the loss of step k, before its update), lr_<k>, cycled/loss_<k>, ragged/loss_<k>,
cycled/momentum_<k> (the momentum step k used), and the settings.
The input is (pixel/255 - 0.5)/0.25, Quorum's normalisation with mean 0.5 and std 0.25.

Run from the project root:  python3 Tests/TrainingTests/Fixtures/make_pytorch_training_parity.py
"""
import os
import sys

import torch
import torch.nn.functional as F
from safetensors.torch import save_file

here = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(here, "..", "..", "..", "scripts", "bench"))
from mobilenet_reference import PRESETS, build  # noqa: E402
from quorum_random import DROPOUT_PURPOSE, uniform  # noqa: E402
from pytorch_accuracy import parameter_groups  # noqa: E402

SEED, STEPS, TOTAL_STEPS, BATCH, CLASSES, SIZE = 5, 5, 100, 127, 10, 28
RAGGED = 5  # a last batch of 5 in buffers planned for 128
WIDTH, DROPOUT, SMOOTHING, PEAK = 0.5, 0.2, 0.1, 0.1
MEAN, STD = 0.5, 0.25


torch.manual_seed(20261207)
stem_stride, stage_strides = PRESETS["imagenet"]
reference = build(width=WIDTH, input_channels=1, classes=CLASSES, stem_stride=stem_stride,
                  stage_strides=stage_strides, dropout=0.0)
initial = {k: v.clone().contiguous() for k, v in reference.state_dict().items()}

# Noise images: Fashion-MNIST's were tried, and their black backgrounds put whole constant
# regions on one ReLU6 kink at once (after one step, PyTorch's float32 was 2 % of the
# largest update away from its float64; with noise, 0.5 %).
pixels = torch.randint(0, 256, (BATCH, SIZE, SIZE, 1), dtype=torch.uint8)
labels = torch.randint(0, CLASSES, (BATCH,))
images = ((pixels.double() / 255 - MEAN) / STD).permute(0, 3, 1, 2).contiguous()
names = [name for name, _ in reference.named_parameters()]
channels = reference.classifier[1].in_features
masks = [torch.tensor([
    [(1 / (1 - DROPOUT)) if uniform(SEED, DROPOUT_PURPOSE, step, n * channels + c) >= DROPOUT else 0.0
     for c in range(channels)] for n in range(BATCH)], dtype=torch.float64) for step in range(STEPS)]


def train(cycle_momentum, prefix, metadata, tensors, dtype=torch.float64, jitter=None, batch=BATCH):
    """The five steps from the initial weights (each nudged by one float32 ulp up or down
    at random where `jitter` seeds it) on the first `batch` examples; returns the model
    after them."""
    model = build(width=WIDTH, input_channels=1, classes=CLASSES, stem_stride=stem_stride,
                  stage_strides=stage_strides, dropout=0.0)
    model.load_state_dict(initial)
    if jitter is not None:
        generator = torch.Generator().manual_seed(jitter)
        with torch.no_grad():
            for parameter in model.parameters():
                sign = torch.randint(0, 2, parameter.shape, generator=generator) * 2 - 1
                parameter.copy_(torch.nextafter(parameter, parameter + sign * torch.inf))
    model = model.to(dtype).train()
    optimizer = torch.optim.SGD(parameter_groups(model, 5e-4), lr=PEAK, momentum=0.9, nesterov=True)
    scheduler = torch.optim.lr_scheduler.OneCycleLR(
        optimizer, max_lr=PEAK, total_steps=TOTAL_STEPS, pct_start=0.15, anneal_strategy="cos",
        div_factor=25, final_div_factor=1e4, cycle_momentum=cycle_momentum, base_momentum=0.85, max_momentum=0.95)
    start = {name: parameter.detach().clone() for name, parameter in model.named_parameters()}
    norms = []
    for step in range(STEPS):
        model.classifier[0].forward = lambda features, mask=masks[step][:batch].to(dtype): features * mask
        metadata[f"{prefix}lr_{step + 1}"] = repr(optimizer.param_groups[0]["lr"])
        metadata[f"{prefix}momentum_{step + 1}"] = repr(optimizer.param_groups[0]["momentum"])
        optimizer.zero_grad()
        loss = F.cross_entropy(model(images[:batch].to(dtype)), labels[:batch], label_smoothing=SMOOTHING)
        loss.backward()
        optimizer.step()
        scheduler.step()
        metadata[f"{prefix}loss_{step + 1}"] = repr(loss.item())
        if prefix in ("", "ragged/"):
            for name, buffer in model.state_dict().items():
                if name.endswith("running_mean") or name.endswith("running_var"):
                    tensors[f"{prefix}after/{step + 1}/{name}"] = buffer.float().contiguous()
        parameters = dict(model.named_parameters())
        norms.append([float((parameters[name].detach() - start[name]).norm()) for name in names])
        print(f"{prefix or 'plain/'} step {step + 1}: lr {metadata[f'{prefix}lr_{step + 1}']}, "
              f"momentum {metadata[f'{prefix}momentum_{step + 1}']}, loss {loss.item():.6f}")
    tensors[prefix + "update_norms"] = torch.tensor(norms, dtype=torch.float32)
    return model, start


metadata, tensors = {}, {}
model, start = train(False, "", metadata, tensors)
train(True, "cycled/", metadata, tensors)
train(False, "ragged/", metadata, tensors, batch=RAGGED)
# The same in float32, from the same weights and from six nudged by one ulp: how far float32
# arithmetic itself moves each result from the float64 reference (ReLU6 gates that flip with
# rounding, carried on by the steps). The largest distance of the seven is the envelope the
# test allows Quorum twice over, beside its own summation orders' spread.
for cycled, prefix, batch in ((False, "", BATCH), (True, "cycled/", BATCH), (False, "ragged/", RAGGED)):
    reference_norms = tensors[prefix + "update_norms"]
    norm_envelope = torch.zeros_like(reference_norms)
    loss_envelope = [0.0] * STEPS
    update_envelope = {name: torch.zeros_like(initial[name]) for name in names}
    for jitter in [None, 1, 2, 3, 4, 5, 6]:
        sample_metadata, sample_tensors = {}, {}
        sample, sample_start = train(cycled, "", sample_metadata, sample_tensors, torch.float32, jitter, batch)
        norm_envelope = torch.maximum(norm_envelope, (sample_tensors["update_norms"] - reference_norms).abs())
        for step in range(STEPS):
            distance = abs(float(sample_metadata[f"loss_{step + 1}"]) - float(metadata[f"{prefix}loss_{step + 1}"]))
            loss_envelope[step] = max(loss_envelope[step], distance)
        if prefix == "":
            for name, parameter in sample.named_parameters():
                distance = ((parameter.detach() - sample_start[name]).double() - (dict(model.named_parameters())[name].detach() - start[name])).abs()
                update_envelope[name] = torch.maximum(update_envelope[name], distance.float())
    tensors[f"float32/envelope/{prefix}update_norms"] = norm_envelope.contiguous()
    for step in range(STEPS):
        metadata[f"float32/envelope/{prefix}loss_{step + 1}"] = repr(loss_envelope[step])
    if prefix == "":
        for name in names:
            tensors["float32/envelope/update/" + name] = update_envelope[name].contiguous()
tensors.update({"weights/" + k: v for k, v in initial.items()})
tensors["pixels"] = pixels.float().contiguous()
tensors["labels"] = labels.float()
for name, parameter in model.named_parameters():
    tensors["update/" + name] = (parameter.detach() - start[name]).float().contiguous()

out = os.path.join(here, "pytorch_training_parity.safetensors")
metadata.update({
    "seed": str(SEED), "steps": str(STEPS), "total_steps": str(TOTAL_STEPS), "batch": str(BATCH),
    "capacity": "128", "preset": "imagenet", "width": str(WIDTH), "classes": str(CLASSES),
    "image_size": str(SIZE), "dropout": str(DROPOUT), "label_smoothing": str(SMOOTHING),
    "peak_learning_rate": str(PEAK), "mean": str(MEAN), "std": str(STD), "parameters": ",".join(names),
    "torch": torch.__version__})
save_file(tensors, out, metadata=metadata)
print(f"wrote {out}")
