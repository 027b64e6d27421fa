"""How each export format lays out a state_dict in safetensors (tensors by name, JSON metadata).

- ``dense``: the plain model's ``state_dict`` under its own names, pruned weights as zeros.
- ``sparse``: each masked weight ``K`` becomes ``K::bitmask`` (``uint8``; element ``j`` of the
  row-major flattened weight is bit ``j % 8`` of byte ``j // 8``; 1 = kept) and ``K::values``
  (the kept values in row-major order, the weight's dtype); everything else as in ``dense``.
- ``nm``: each N:M weight ``K`` becomes ``K::values`` (``(groups, N)``) and ``K::indices``
  (``uint8`` ``(groups, N)``: each value's position 0..M-1 in its group), groups being M
  consecutive weights along the input dimension with that dimension moved last
  (:func:`prunekit.core.sparsity.structure.groups`); layers left dense stay as in ``dense``.

The metadata ``prunekit_export`` (JSON) holds the format, each packed tensor's shape and the
model to rebuild (name, options, classes, channels, image size).
"""

from __future__ import annotations

import torch

from prunekit.core.sparsity.structure import groups, ungroup

FORMATS = ("dense", "sparse", "nm")
SEP = "::"


def _bits(mask: torch.Tensor) -> torch.Tensor:
    flat = mask.reshape(-1).to(torch.uint8)
    pad = (-flat.numel()) % 8
    flat = torch.cat([flat, flat.new_zeros(pad)]).view(-1, 8)
    return (flat << torch.arange(8, dtype=torch.uint8)).sum(1, dtype=torch.uint8)


def _unbits(packed: torch.Tensor, numel: int) -> torch.Tensor:
    return ((packed.unsqueeze(1) >> torch.arange(8, dtype=torch.uint8)) & 1).view(-1)[:numel].bool()


def pack(
    state: dict[str, torch.Tensor], masks: dict[str, torch.Tensor], fmt: str, nm: tuple[int, int] | None
) -> tuple[dict[str, torch.Tensor], dict[str, list[int]]]:
    """The tensors to save, and the shape of each packed weight (``masks``: keep-masks by state_dict key)."""
    out: dict[str, torch.Tensor] = {}
    shapes: dict[str, list[int]] = {}
    for key, value in state.items():
        mask = masks.get(key)
        if fmt == "dense" or mask is None:
            out[key] = value.contiguous().clone()
        elif fmt == "sparse":
            out[key + SEP + "bitmask"] = _bits(mask)
            out[key + SEP + "values"] = value[mask].contiguous()
            shapes[key] = list(value.shape)
        else:
            assert nm is not None
            n, m = nm
            order = groups(mask, m).to(torch.uint8).topk(n, dim=1, sorted=False).indices.sort(1).values
            out[key + SEP + "values"] = groups(value, m).gather(1, order).contiguous()
            out[key + SEP + "indices"] = order.to(torch.uint8)
            shapes[key] = list(value.shape)
    return out, shapes


def unpack(
    tensors: dict[str, torch.Tensor], fmt: str, shapes: dict[str, list[int]], nm: tuple[int, int] | None
) -> dict[str, torch.Tensor]:
    """The dense state_dict back from :func:`pack`'s tensors; ValueError when they do not fit."""
    state = {k: v for k, v in tensors.items() if SEP not in k}
    for key, shape in shapes.items():
        numel = 1
        for d in shape:
            numel *= d
        values = tensors[key + SEP + "values"]
        if fmt == "sparse":
            keep = _unbits(tensors[key + SEP + "bitmask"], numel)
            if int(keep.sum()) != values.numel():
                raise ValueError(f"{key}: the bitmask keeps {int(keep.sum())} weights but {values.numel()} values are stored")
            dense = values.new_zeros(numel)
            dense[keep] = values
            state[key] = dense.view(shape)
        else:
            assert nm is not None
            n, m = nm
            index = tensors[key + SEP + "indices"].long()
            if index.shape != values.shape or index.numel() * m != numel * n or bool((index >= m).any()):
                raise ValueError(f"{key}: its N:M values and indices do not fit shape {shape}")
            grouped = values.new_zeros(numel // m, m).scatter_(1, index, values)
            state[key] = ungroup(grouped, tuple(shape))
    return state
