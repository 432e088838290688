#!/usr/bin/env python3
"""Writes the torchvision-made fixtures that WeightTransferTests loads:

  torchvision_mobilenet_v2_w0.35.safetensors
      torchvision.models.mobilenet_v2(width_mult=0.35, num_classes=1000): ImageNet's
      shape (3 input channels, 1000 classes) at a width small enough to commit, random
      weights (torch.manual_seed(0)), random batch-norm affines and running statistics,
      num_batches_tracked 7, saved in float16 as a user's
      `safetensors.torch.save_file(model.half().state_dict(), path)` would
      (metadata {"format": "pt"}, as the Hugging Face hub's files carry).
  torchvision_mobilenet_v2_w0.35_logits.safetensors
      input   [2, 32, 32, 3] float32, NHWC (Quorum's layout)
      logits  [2, 1000] float32: torchvision's eval-mode logits of those images, computed
              in float64 from the float16 weights as saved.

Run from the project root with torch, torchvision and safetensors installed:
    python3 Tests/TrainingTests/Fixtures/make_torchvision_state_dict.py
"""
import os

import torch
import torchvision
from safetensors.torch import save_file

HERE = os.path.dirname(os.path.abspath(__file__))


def main():
    torch.manual_seed(0)
    model = torchvision.models.mobilenet_v2(width_mult=0.35, num_classes=1000)
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, torch.nn.BatchNorm2d):
                module.weight.uniform_(0.5, 1.5)
                module.bias.normal_(0, 0.1)
                module.running_mean.normal_(0, 0.1)
                module.running_var.uniform_(0.5, 1.5)
                module.num_batches_tracked.fill_(7)
    model.half()
    save_file({name: tensor.contiguous() for name, tensor in model.state_dict().items()},
              os.path.join(HERE, "torchvision_mobilenet_v2_w0.35.safetensors"), metadata={"format": "pt"})

    model.double().eval()
    images = torch.randn(2, 3, 32, 32, dtype=torch.float64)
    with torch.no_grad():
        logits = model(images)
    save_file({"input": images.permute(0, 2, 3, 1).float().contiguous(), "logits": logits.float().contiguous()},
              os.path.join(HERE, "torchvision_mobilenet_v2_w0.35_logits.safetensors"))


if __name__ == "__main__":
    main()
