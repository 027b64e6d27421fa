"""Batched, seeded image transforms on the data's device.

Same distributions as the torchvision per-image transforms they replace:
``RandomCrop(size, padding=p)`` (zero padding, offsets uniform in ``0..2p``),
``RandomHorizontalFlip()`` (probability 1/2, after the crop), ``ToTensor()``
(``uint8 / 255``) and ``Normalize(mean, std)`` (``(x - mean) / std`` per channel).
The random choices are drawn up front (:func:`draw_crop_flip`, on the CPU, one
row per image) so that an epoch's augmentation, like its order, is decided when
the epoch begins: the same on every device, and a run resumed part-way through
an epoch sees the same augmentation.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F


def draw_crop_flip(n: int, padding: int, flip: bool, generator: torch.Generator | None) -> torch.Tensor:
    """``(n, 3)`` int64 rows ``(top, left, mirrored)``: crop offsets in ``0..2*padding``, mirror 0/1."""
    params = torch.zeros((n, 3), dtype=torch.long)
    if padding:
        params[:, :2] = torch.randint(0, 2 * padding + 1, (n, 2), generator=generator)
    if flip:
        params[:, 2] = torch.rand(n, generator=generator) < 0.5
    return params


def crop_flip(images: torch.Tensor, padding: int, params: torch.Tensor) -> torch.Tensor:
    """``HxW`` crops of the zero-padded ``(B, C, H, W)`` batch at ``params``' offsets, mirrored where it says.

    One gather per batch: every output pixel reads its source position in the
    padded batch, the flip folded into the column index. Works on any dtype
    (``uint8`` here, before conversion, so it moves a quarter of the bytes).
    """
    b, c, h, w = images.shape
    device = images.device
    if b == 0:
        return images
    params = params.to(device, non_blocking=True)
    padded = F.pad(images, (padding, padding, padding, padding)) if padding else images
    width = w + 2 * padding
    top, left, mirrored = params[:, 0:1], params[:, 1:2], params[:, 2:3].bool()
    columns = torch.arange(w, device=device).expand(b, w)
    columns = torch.where(mirrored, (w - 1) - columns, columns)
    rows = top + torch.arange(h, device=device)
    index = (rows * width).unsqueeze(2) + (left + columns).unsqueeze(1)  # (B, H, W) into the padded plane
    flat = padded.reshape(b, c, -1)
    return flat.gather(2, index.view(b, 1, h * w).expand(b, c, h * w)).view(b, c, h, w)


def normalize(images: torch.Tensor, mean: torch.Tensor, std: torch.Tensor) -> torch.Tensor:
    """``uint8`` images to ``(x / 255 - mean) / std`` in float32, as ToTensor + Normalize compute it."""
    return images.to(torch.float32).div_(255).sub_(mean).div_(std)


def channel_tensor(values: Sequence[float], device: torch.device | str) -> torch.Tensor:
    """Per-channel constants shaped ``(1, C, 1, 1)`` for broadcasting over a batch."""
    return torch.tensor(list(values), dtype=torch.float32, device=device).view(1, -1, 1, 1)
