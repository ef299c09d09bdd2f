"""The reference weight recipe of tests/data/torchvision_fidelity_vectors.json, shared by the tests
that compare resviz's and the test-local torchvision models with torchvision's own logits."""

from __future__ import annotations

import math

import torch
from torch import nn


def fill(model: nn.Module) -> None:
    """Every float tensor of the state dict filled by a closed formula (integer buffers kept)."""
    new = {}
    for i, (k, t) in enumerate(model.state_dict().items()):
        if not t.is_floating_point():
            new[k] = t
            continue
        idx = torch.arange(t.numel(), dtype=torch.float64)
        if k.endswith("running_var"):
            v = 1 + 0.5 * torch.sin(0.37 * idx + i)
        elif k.endswith("running_mean"):
            v = 0.1 * torch.cos(0.11 * idx + i)
        elif k.endswith("bias"):
            v = 0.05 * torch.cos(0.3 * idx + i)
        elif t.dim() == 1:
            v = 1 + 0.2 * torch.sin(0.7 * idx + i)
        else:
            v = torch.sin(0.618 * idx + i) * math.sqrt(3 / t[0].numel())
        new[k] = v.reshape(t.shape).float()
    model.load_state_dict(new)
