"""PyTorch references of gdjax's DCGAN: same architecture, loss, optimizer, batch, steps.

Two references share this code:
- the twin (`init="flax"`), used by `benchmarks.dcgan_vs_pytorch` to check
  that gdjax's GAN is implemented right and by `benchmarks.suite` to time it,
  copies gdjax's initialisation;
- the pinned seed recipe (`init="pytorch"`), used by `benchmarks.gan_reference`
  as the yardstick of gdjax's GAN recipes, keeps PyTorch's default
  initialisation (`nn.Linear`/`nn.Conv2d`/`nn.ConvTranspose2d` as constructed:
  Kaiming-uniform kernels with a = sqrt(5), uniform biases) and is sampled
  with its raw weights, batch norm in eval mode.

The twin's matching details:
- Generator: Linear(100, 7*7*2w, no bias) -> BatchNorm1d -> ReLU -> reshape ->
  ConvTranspose(2w->w, 4, stride 2) -> BatchNorm2d -> ReLU ->
  ConvTranspose(w->1, 4, stride 2) -> tanh. Discriminator: Conv(1->w, 4, /2) ->
  LeakyReLU 0.2 -> Conv(w->2w, 4, /2) -> LeakyReLU 0.2 -> Linear(7*7*2w, 1).
- Initialisation as Flax's defaults: truncated-normal kernels with variance
  1/fan_in (LeCun normal), zero biases; batch-norm momentum 0.1 (Flax 0.9).
- Non-saturating loss, Adam(2e-4, betas=(0.5, 0.999)), batch 64, EMA of the
  generator (weights and batch-norm buffers) with decay 0.999 and the same
  warm-up as gdjax: min(0.999, (1 + t) / (10 + t)) at update t.

Requires the optional extra: `pip install -e '.[bench]'` (torch==2.13.0).
"""

from __future__ import annotations

import copy
import math

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F


def lecun_normal_(weight: torch.Tensor, fan_in: int) -> None:
  # Flax's lecun_normal: truncated normal in [-2, 2] std, rescaled to variance 1/fan_in.
  std = math.sqrt(1.0 / fan_in) / 0.87962566103423978
  nn.init.trunc_normal_(weight, std=std, a=-2 * std, b=2 * std)


class Generator(nn.Module):
  def __init__(self, noise_dim: int = 100, width: int = 64, init: str = "flax"):
    super().__init__()
    self.width = width
    self.dense = nn.Linear(noise_dim, 7 * 7 * 2 * width, bias=False)
    self.bn0 = nn.BatchNorm1d(7 * 7 * 2 * width, momentum=0.1, eps=1e-5)
    self.up1 = nn.ConvTranspose2d(2 * width, width, 4, stride=2, padding=1, bias=False)
    self.bn1 = nn.BatchNorm2d(width, momentum=0.1, eps=1e-5)
    self.up2 = nn.ConvTranspose2d(width, 1, 4, stride=2, padding=1)
    if init == "pytorch":
      return
    lecun_normal_(self.dense.weight, noise_dim)
    lecun_normal_(self.up1.weight, 2 * width * 16)
    lecun_normal_(self.up2.weight, width * 16)
    nn.init.zeros_(self.up2.bias)

  def forward(self, noise: torch.Tensor) -> torch.Tensor:
    x = F.relu(self.bn0(self.dense(noise)))
    # Flax reshapes [B, 7*7*C] as [B, 7, 7, C] (channels last); do the same, then go NCHW.
    x = x.view(-1, 7, 7, 2 * self.width).permute(0, 3, 1, 2)
    x = F.relu(self.bn1(self.up1(x)))
    return torch.tanh(self.up2(x))


class Discriminator(nn.Module):
  def __init__(self, width: int = 64, init: str = "flax"):
    super().__init__()
    self.conv1 = nn.Conv2d(1, width, 4, stride=2, padding=1)
    self.conv2 = nn.Conv2d(width, 2 * width, 4, stride=2, padding=1)
    self.dense = nn.Linear(7 * 7 * 2 * width, 1)
    if init == "pytorch":
      return
    for layer, fan_in in ((self.conv1, 16), (self.conv2, width * 16), (self.dense, 7 * 7 * 2 * width)):
      lecun_normal_(layer.weight, fan_in)
      nn.init.zeros_(layer.bias)

  def forward(self, images: torch.Tensor) -> torch.Tensor:
    x = F.leaky_relu(self.conv1(images), 0.2)
    x = F.leaky_relu(self.conv2(x), 0.2)
    # Flatten channels last, as Flax does.
    return self.dense(x.permute(0, 2, 3, 1).reshape(x.shape[0], -1))[:, 0]


class DCGANTrainer:
  """Holds G, D, their Adam optimizers and the EMA generator; `step(real)` trains once."""

  def __init__(
    self,
    *,
    seed: int = 0,
    noise_dim: int = 100,
    width: int = 64,
    lr: float = 2e-4,
    ema_decay: float = 0.999,
    init: str = "flax",
    device: str = "cpu",
  ):
    if init not in ("flax", "pytorch"):
      raise ValueError(f"init={init!r}: use 'flax' (gdjax's initialisation) or 'pytorch' (PyTorch's defaults).")
    torch.manual_seed(seed)
    self.noise_dim, self.ema_decay, self.device = noise_dim, ema_decay, device
    self.generator, self.discriminator = (
      Generator(noise_dim, width, init).to(device),
      Discriminator(width, init).to(device),
    )
    self.ema_generator = copy.deepcopy(self.generator).eval()
    self.g_optimizer = torch.optim.Adam(self.generator.parameters(), lr=lr, betas=(0.5, 0.999))
    self.d_optimizer = torch.optim.Adam(self.discriminator.parameters(), lr=lr, betas=(0.5, 0.999))
    self.noise_generator = torch.Generator(device=device).manual_seed(seed + 1)
    self.updates = 0  # For the EMA warm-up, as gdjax's `ema_warmup`.

  def step(self, real: torch.Tensor) -> dict:
    batch = real.shape[0]
    noise = torch.randn(batch, self.noise_dim, generator=self.noise_generator, device=self.device)
    fake = self.generator(noise)

    self.d_optimizer.zero_grad(set_to_none=True)
    real_logits = self.discriminator(real)
    fake_logits = self.discriminator(fake.detach())
    d_loss = (F.softplus(-real_logits) + F.softplus(fake_logits)).mean()
    d_loss.backward()
    self.d_optimizer.step()

    self.g_optimizer.zero_grad(set_to_none=True)
    g_loss = F.softplus(-self.discriminator(fake)).mean()
    g_loss.backward()
    self.g_optimizer.step()

    decay = min(self.ema_decay, (1.0 + self.updates) / (10.0 + self.updates))
    self.updates += 1
    with torch.no_grad():
      # One multi-tensor update per list, as torch.optim's foreach Adam: on a GPU, a loop of
      # per-tensor kernels would make the eager reference launch-bound for no reason.
      ema_floats, current_floats = [], []
      pairs = [*zip(self.ema_generator.parameters(), self.generator.parameters(), strict=True)]
      pairs += zip(self.ema_generator.buffers(), self.generator.buffers(), strict=True)
      for ema, current in pairs:
        if ema.dtype.is_floating_point:
          ema_floats.append(ema)
          current_floats.append(current)
        else:
          ema.copy_(current)
      torch._foreach_mul_(ema_floats, decay)
      torch._foreach_add_(ema_floats, current_floats, alpha=1.0 - decay)
    # Tensors, not floats: reading them back is a host sync, left to the caller's log steps.
    return {"d_loss": d_loss.detach(), "g_loss": g_loss.detach()}

  @torch.no_grad()
  def sample_uint8(
    self, num: int, *, seed: int = 0, batch_size: int = 500, use_ema: bool = True, batch_statistics: bool = False
  ) -> np.ndarray:
    """`[num, 28, 28, 1]` uint8 images from the EMA (or raw) generator.

    Batch norm is in inference mode (running statistics), or with
    `batch_statistics` normalises each batch of `batch_size` samples by its
    own statistics, on a copy, so the running statistics stay as trained.
    """
    model = self.ema_generator if use_ema else self.generator
    if batch_statistics:
      model = copy.deepcopy(model)
    was_training = model.training
    model.train(batch_statistics)
    generator = torch.Generator().manual_seed(seed)
    out = []
    for start in range(0, num, batch_size):
      noise = torch.randn(min(batch_size, num - start), self.noise_dim, generator=generator).to(self.device)
      images = model(noise).permute(0, 2, 3, 1).cpu().numpy()
      out.append(np.clip(np.round((images + 1.0) * 127.5), 0, 255).astype(np.uint8))
    model.train(was_training)
    return np.concatenate(out)


def train(
  images_uint8: np.ndarray,
  *,
  steps: int,
  batch_size: int = 64,
  seed: int = 0,
  log_every: int = 500,
  init: str = "flax",
  on_step=None,
) -> DCGANTrainer:
  """Trains on `[N, 28, 28, 1]` uint8 images, reshuffled every epoch, for `steps` steps.

  `on_step(step, trainer)`, if given, is called after every step (for snapshots).
  """
  trainer = DCGANTrainer(seed=seed, init=init)
  data = torch.from_numpy(images_uint8.astype(np.float32) / 127.5 - 1.0).permute(0, 3, 1, 2).contiguous()
  order_generator = torch.Generator().manual_seed(seed + 2)
  order, position = torch.randperm(len(data), generator=order_generator), 0
  for step in range(1, steps + 1):
    if position + batch_size > len(data):
      order, position = torch.randperm(len(data), generator=order_generator), 0
    metrics = trainer.step(data[order[position : position + batch_size]])
    position += batch_size
    if on_step is not None:
      on_step(step, trainer)
    if log_every and step % log_every == 0:
      d_loss, g_loss = metrics["d_loss"].item(), metrics["g_loss"].item()
      print(f"torch step {step}: d_loss={d_loss:.4f} g_loss={g_loss:.4f}", flush=True)
  return trainer
