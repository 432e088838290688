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
metadata: loss (cross-entropy, label smoothing 0.1, mean over the batch) and the settings.

Run from the project root:  python3 Tests/TrainingTests/Fixtures/make_pytorch_parity.py
"""
import os
import sys

import torch
import torch.nn.functional as F
from safetensors.torch import save_file

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "..", "..", "scripts", "bench"))
from mobilenet_reference import PRESETS, build  # noqa: E402

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

tensors = {"weights/" + k: v for k, v in weights.items()}
tensors["input"] = images.permute(0, 2, 3, 1).contiguous()
tensors["labels"] = labels.float()
tensors["eval_logits"] = eval_logits.float()
tensors["train_logits"] = logits.detach().float()
for name, parameter in model.named_parameters():
    tensors["gradients/" + name] = parameter.grad.float().contiguous()
tensors["input_gradient"] = x.grad.float().permute(0, 2, 3, 1).contiguous()
for name, buffer in model.state_dict().items():
    if name.endswith("running_mean") or name.endswith("running_var"):
        tensors["updated/" + name] = buffer.float().contiguous()
out = os.path.join(os.path.dirname(__file__), "pytorch_parity.safetensors")
save_file(tensors, out, metadata={
    "loss": repr(loss.item()), "preset": "cifar", "width": "0.35", "input_channels": "2",
    "classes": "4", "image_size": "12", "label_smoothing": "0.1",
    "torch": torch.__version__})
print(f"wrote {out}: loss {loss.item():.6f}")
