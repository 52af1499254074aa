"""PyTorch references of gdjax's CNN classifier and MLP GAN train steps, for speed comparisons.

Each trainer does what the gdjax config's train step does, with the same
layer shapes, initialisation, loss, optimizer and batch: `step(batch)` runs
one update on tensors already on the trainer's device and returns its
metrics as tensors (no host sync). The DCGAN reference is
`benchmarks.torch_dcgan.DCGANTrainer`; `benchmarks.suite` times them all.

- CNN (configs/cnn_fashion_mnist.py): two stages of two 3x3 conv-BN-ReLU
  blocks (16, then 32 channels), 2x2 max-pool after each, dropout 0.2,
  dense 256 + ReLU, dropout 0.2, dense 10; random horizontal flips; softmax
  cross-entropy; Adam 1e-3 with a cosine decay over the config's steps.
- MLP GAN (configs/mlp_gan_fashion_mnist.py): G 100 -> 256 (ReLU) -> 784
  (tanh); D 784 -> 256 (leaky ReLU 0.2) -> 1; non-saturating loss; Adam 2e-4,
  betas (0.5, 0.999); EMA of G with gdjax's warm-up.

Requires the optional extra: `pip install -e '.[bench]'` (torch==2.13.0).
"""

from __future__ import annotations

import copy
import math

import torch
from torch import nn
from torch.nn import functional as F

from benchmarks.torch_dcgan import lecun_normal_


def _dense(in_features: int, out_features: int) -> nn.Linear:
  layer = nn.Linear(in_features, out_features)
  lecun_normal_(layer.weight, in_features)
  nn.init.zeros_(layer.bias)
  return layer


class CNN(nn.Module):
  def __init__(self, stage_widths=(16, 32), convs_per_stage: int = 2, dense_width: int = 256, dropout: float = 0.2):
    super().__init__()
    blocks, channels = [], 1
    for width in stage_widths:
      for _ in range(convs_per_stage):
        conv = nn.Conv2d(channels, width, 3, padding=1, bias=False)
        lecun_normal_(conv.weight, channels * 9)
        blocks += [conv, nn.BatchNorm2d(width, momentum=0.1, eps=1e-5), nn.ReLU()]
        channels = width
      blocks.append(nn.MaxPool2d(2))
    self.features = nn.Sequential(*blocks)
    self.dropout = nn.Dropout(dropout)
    self.hidden = _dense(7 * 7 * channels, dense_width)
    self.out = _dense(dense_width, 10)

  def forward(self, images: torch.Tensor) -> torch.Tensor:
    x = self.features(images).permute(0, 2, 3, 1).flatten(1)  # Channels-last flatten, as Flax.
    x = F.relu(self.hidden(self.dropout(x)))
    return self.out(self.dropout(x))


class CNNTrainer:
  def __init__(self, *, seed: int = 0, total_steps: int = 8500, lr: float = 1e-3, device: str = "cpu"):
    torch.manual_seed(seed)
    self.device = device
    self.model = CNN().to(device)
    self.optimizer = torch.optim.Adam(self.model.parameters(), lr=lr)
    self.schedule = torch.optim.lr_scheduler.LambdaLR(
      self.optimizer, lambda step: 0.5 * (1 + math.cos(math.pi * min(step, total_steps) / total_steps))
    )

  def step(self, batch: dict) -> dict:
    """`batch`: uint8 images `[B, 1, 28, 28]` and int64 labels `[B]`, on the device."""
    images = batch["image"].float() / 127.5 - 1.0
    flip = torch.rand(images.shape[0], 1, 1, 1, device=self.device) < 0.5
    images = torch.where(flip, images.flip(-1), images)
    self.model.train()
    self.optimizer.zero_grad(set_to_none=True)
    scores = self.model(images)
    loss = F.cross_entropy(scores, batch["label"])
    loss.backward()
    self.optimizer.step()
    self.schedule.step()
    return {"loss": loss.detach()}


class MLPGANTrainer:
  def __init__(self, *, seed: int = 0, noise_dim: int = 100, hidden: int = 256, device: str = "cpu"):
    torch.manual_seed(seed)
    self.noise_dim, self.device, self.updates = noise_dim, device, 0
    self.generator = nn.Sequential(_dense(noise_dim, hidden), nn.ReLU(), _dense(hidden, 784), nn.Tanh()).to(device)
    self.discriminator = nn.Sequential(_dense(784, hidden), nn.LeakyReLU(0.2), _dense(hidden, 1)).to(device)
    self.ema_generator = copy.deepcopy(self.generator)
    self.g_optimizer = torch.optim.Adam(self.generator.parameters(), lr=2e-4, betas=(0.5, 0.999))
    self.d_optimizer = torch.optim.Adam(self.discriminator.parameters(), lr=2e-4, betas=(0.5, 0.999))

  def step(self, batch: dict) -> dict:
    """`batch`: uint8 images `[B, 1, 28, 28]` on the device (labels unused)."""
    real = (batch["image"].float() / 127.5 - 1.0).flatten(1)
    noise = torch.randn(real.shape[0], self.noise_dim, device=self.device)
    fake = self.generator(noise)
    self.d_optimizer.zero_grad(set_to_none=True)
    d_loss = (F.softplus(-self.discriminator(real)) + F.softplus(self.discriminator(fake.detach()))).mean()
    d_loss.backward()
    self.d_optimizer.step()
    self.g_optimizer.zero_grad(set_to_none=True)
    g_loss = F.softplus(-self.discriminator(fake)).mean()
    g_loss.backward()
    self.g_optimizer.step()
    decay = min(0.999, (1.0 + self.updates) / (10.0 + self.updates))
    self.updates += 1
    with torch.no_grad():
      ema, current = list(self.ema_generator.parameters()), list(self.generator.parameters())
      torch._foreach_mul_(ema, decay)  # Multi-tensor updates, as torch.optim's foreach Adam.
      torch._foreach_add_(ema, current, alpha=1.0 - decay)
    return {"d_loss": d_loss.detach(), "g_loss": g_loss.detach()}
