#!/usr/bin/env python3
"""Writes pytorch_parity.safetensors: the double-precision reference that Quorum's
whole-network test (PyTorchParityTests) compares its float32 forward and backward with.

torchvision's mobilenet_v2, adapted as Quorum builds it (scripts/bench/mobilenet_reference.py),
cifar preset, width 0.35, 2 input channels, 4 classes, 12x12 images, batch 6, no dropout,
with random batch-norm parameters and running statistics, run in float64:
  weights/<state_dict name>    the weights (float32; PyTorch layouts)
  input                        images, NHWC float32 [6, 12, 12, 2]
  labels                       float32 [6]
  eval_logits                  logits in eval mode (running statistics)
  train_logits                 logits in train mode (batch statistics)
  gradients/<parameter name>   d loss / d parameter, PyTorch layouts
  input_gradient               d loss / d input, NHWC
  updated/<name>               running_mean / running_var after the training forward
                               (momentum 0.1, unbiased batch variance)
  noisy/train_logits, noisy/gradients/<name>, noisy/input_gradient
                               the same training step with Noisy Student's noise on:
                               dropout 0.5 before the classifier and stochastic depth 0.6,
                               with the masks Quorum draws at seed 21, step 34 (its Philox
                               streams, re-implemented below and checked against the
                               Random123 known answers)
metadata: loss and noisy_loss (cross-entropy, label smoothing 0.1, mean over the batch)
and the settings.

Run from the project root:  python3 Tests/TrainingTests/Fixtures/make_pytorch_parity.py

The committed fixture was made before the peer's stem got torchvision's Kaiming-normal
initialisation (commit 337505d), which draws from the generator in another order: running
this now makes an equivalent fixture with other weights (checked 2026-12-07: the tests
pass with it too), and PyTorchParityTests' counts of ReLU6 inputs near a kink are the
committed fixture's.
"""
import os
import sys

import torch
import torch.nn.functional as F
from safetensors.torch import save_file

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "..", "..", "scripts", "bench"))
from mobilenet_reference import PRESETS, build  # noqa: E402
from quorum_random import DEPTH_PURPOSE, DROPOUT_PURPOSE, uniform  # noqa: E402

NOISY_SEED, NOISY_STEP, NOISY_DROPOUT, NOISY_DEPTH = 21, 34, 0.5, 0.6


torch.manual_seed(20261122)
stem_stride, stage_strides = PRESETS["cifar"]
model = build(width=0.35, input_channels=2, classes=4, stem_stride=stem_stride,
              stage_strides=stage_strides, dropout=0.0)
with torch.no_grad():
    for module in model.modules():
        if isinstance(module, torch.nn.BatchNorm2d):
            module.weight.uniform_(0.5, 1.5)
            module.bias.uniform_(-0.3, 0.3)
            module.running_mean.uniform_(-0.2, 0.2)
            module.running_var.uniform_(0.5, 2.0)
        if isinstance(module, torch.nn.Linear):
            module.weight.normal_(0, 0.1)  # torchvision's 0.01 leaves tiny gradients
weights = {k: v.clone().contiguous() for k, v in model.state_dict().items()}
model = model.double()

images = torch.randn(6, 2, 12, 12, dtype=torch.float32)
labels = torch.tensor([0, 1, 2, 3, 1, 2])

model.eval()
with torch.no_grad():
    eval_logits = model(images.double())

model.train()
x = images.double().requires_grad_(True)
logits = model(x)
loss = F.cross_entropy(logits, labels, label_smoothing=0.1)
loss.backward()
updated = {k: v.clone() for k, v in model.state_dict().items()}
gradients = {name: parameter.grad.clone() for name, parameter in model.named_parameters()}
input_gradient = x.grad.clone()

# The same step with the noise on: every residual block i of B drops its branch per
# example with probability 0.6·i/B (its keep draw: the block's 1-based index in the
# network << 32 | example), the pooled features are dropped with probability 0.5 (draw:
# example · channels + channel); kept values are scaled by 1/(1 − p).
for parameter in model.parameters():
    parameter.grad = None
residual = [i for i in range(1, len(model.features) - 1) if model.features[i].use_res_connect]
for number, i in enumerate(residual, start=1):
    block = model.features[i]
    p = NOISY_DEPTH * number / len(residual)
    scale = torch.tensor([
        (1 / (1 - p)) if uniform(NOISY_SEED, DEPTH_PURPOSE, NOISY_STEP, (i << 32) | n) >= p else 0.0
        for n in range(len(labels))], dtype=torch.float64).view(-1, 1, 1, 1)
    block.forward = lambda x, block=block, scale=scale: x + block.conv(x) * scale
channels = model.classifier[1].in_features
dropout_mask = torch.tensor([
    [(1 / (1 - NOISY_DROPOUT)) if uniform(NOISY_SEED, DROPOUT_PURPOSE, NOISY_STEP, n * channels + c) >= NOISY_DROPOUT else 0.0
     for c in range(channels)] for n in range(len(labels))], dtype=torch.float64)
model.classifier[0].forward = lambda features: features * dropout_mask
noisy_x = images.double().requires_grad_(True)
noisy_logits = model(noisy_x)
noisy_loss = F.cross_entropy(noisy_logits, labels, label_smoothing=0.1)
noisy_loss.backward()
dropped_blocks = sum(int((model.features[i].forward.__defaults__[1] == 0).sum()) for i in residual)
assert dropped_blocks > 0, "the noise must drop some branch, or the check is an ordinary one"

tensors = {"weights/" + k: v for k, v in weights.items()}
tensors["input"] = images.permute(0, 2, 3, 1).contiguous()
tensors["labels"] = labels.float()
tensors["eval_logits"] = eval_logits.float()
tensors["train_logits"] = logits.detach().float()
for name, gradient in gradients.items():
    tensors["gradients/" + name] = gradient.float().contiguous()
tensors["input_gradient"] = input_gradient.float().permute(0, 2, 3, 1).contiguous()
tensors["noisy/train_logits"] = noisy_logits.detach().float()
for name, parameter in model.named_parameters():
    tensors["noisy/gradients/" + name] = parameter.grad.float().contiguous()
tensors["noisy/input_gradient"] = noisy_x.grad.float().permute(0, 2, 3, 1).contiguous()
for name, buffer in updated.items():
    if name.endswith("running_mean") or name.endswith("running_var"):
        tensors["updated/" + name] = buffer.float().contiguous()
out = os.path.join(os.path.dirname(__file__), "pytorch_parity.safetensors")
save_file(tensors, out, metadata={
    "loss": repr(loss.item()), "noisy_loss": repr(noisy_loss.item()),
    "noisy_seed": str(NOISY_SEED), "noisy_step": str(NOISY_STEP), "noisy_dropout": str(NOISY_DROPOUT),
    "noisy_stochastic_depth": str(NOISY_DEPTH), "noisy_dropped_branches": str(dropped_blocks), "preset": "cifar", "width": "0.35", "input_channels": "2",
    "classes": "4", "image_size": "12", "label_smoothing": "0.1",
    "torch": torch.__version__})
print(f"wrote {out}: loss {loss.item():.6f}, noisy {noisy_loss.item():.6f} ({dropped_blocks} branches dropped)")
