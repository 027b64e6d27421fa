"""Measured inference of a pruned model: the dense model against its sparse forms on one device.

Forms: ``dense`` (the model as trained, pruned weights as zeros); ``csr`` (CPU: every masked
Linear layer multiplies with a ``torch.sparse_csr`` weight); ``semi_structured_2of4`` (CUDA:
``torch.sparse.to_sparse_semi_structured`` for 2:4 Linear weights, fp16). Convolutions stay dense
in every form: torch has no sparse convolution kernel, so unstructured conv sparsity buys no time.
Latency is wall time per batch (median and 90th percentile over ``repeats`` batches after
``warmup`` batches not counted); memory is the exact bytes of each form's weights, and the
peak of what one batch allocates beyond them: on CUDA the allocator's peak over the timed
batches (weights included); on CPU, where torch's allocator keeps no statistics, the peak of
the running sum of the allocations and frees torch's profiler records over one more batch
(activations and temporaries, weights excluded: they exist before the batch).
"""

from __future__ import annotations

import contextlib
import copy
import os
import statistics
import sys
import time
import warnings
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any, cast

import torch
from torch import nn

if TYPE_CHECKING:
    from torch.sparse import SparseSemiStructuredTensor

CONV_NOTE = "convolutions stay dense: torch has no sparse convolution kernel (unstructured conv sparsity gains nothing)"


class CsrLinear(nn.Module):
    """A Linear layer whose weight is held as CSR: ``y = (W_csr @ x^T)^T + b``."""

    def __init__(self, linear: nn.Linear) -> None:
        super().__init__()
        with warnings.catch_warnings():  # "Sparse CSR tensor support is in beta state"
            warnings.filterwarnings("ignore", message="Sparse CSR tensor support is in beta")
            self.weight = linear.weight.detach().to_sparse_csr()
        self.bias = None if linear.bias is None else linear.bias.detach().clone()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        flat = x.reshape(-1, x.shape[-1])
        y: torch.Tensor = torch.sparse.mm(self.weight, flat.t()).t()
        if self.bias is not None:
            y = y + self.bias
        return y.reshape(*x.shape[:-1], y.shape[-1])


class SemiStructuredLinear(nn.Module):
    """A 2:4 Linear layer on CUDA sparse tensor cores (fp16)."""

    def __init__(self, linear: nn.Linear) -> None:
        super().__init__()
        from torch.sparse import to_sparse_semi_structured

        self.weight = to_sparse_semi_structured(linear.weight.detach().half())
        self.bias = None if linear.bias is None else linear.bias.detach().half()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.nn.functional.linear(x, self.weight, self.bias)


def weight_bytes(model: nn.Module) -> int:
    """Bytes of every tensor the model holds (CSR: values, column and row indices)."""
    total = 0
    for tensor in [
        *model.parameters(),
        *model.buffers(),
        *(m.weight for m in model.modules() if isinstance(m, CsrLinear | SemiStructuredLinear)),
    ]:
        if tensor.layout == torch.sparse_csr:
            total += sum(t.numel() * t.element_size() for t in (tensor.values(), tensor.col_indices(), tensor.crow_indices()))
        elif hasattr(tensor, "packed"):  # SparseSemiStructuredTensor
            semi = cast("SparseSemiStructuredTensor", tensor)
            total += sum(t.numel() * t.element_size() for t in (semi.packed, semi.meta) if t is not None)
        elif isinstance(tensor, torch.Tensor):
            total += tensor.numel() * tensor.element_size()
    return total


def _swap(model: nn.Module, make: Callable[[nn.Linear], nn.Module], keep: Callable[[nn.Linear], bool]) -> tuple[nn.Module, int]:
    """A copy of ``model`` with each Linear that ``keep`` selects replaced by ``make(linear)``."""
    model = copy.deepcopy(model)
    swapped = 0
    for module in list(model.modules()):
        for child_name, child in list(module.named_children()):
            if isinstance(child, nn.Linear) and keep(child):
                setattr(module, child_name, make(child))
                swapped += 1
    return model, swapped


def _is_2_of_4(linear: nn.Linear) -> bool:
    w = linear.weight
    return w.shape[1] % 4 == 0 and bool(((w.reshape(-1, 4) != 0).sum(1) <= 2).all()) and min(w.shape) >= 64


def forms(model: nn.Module, device: torch.device) -> tuple[dict[str, nn.Module], dict[str, str]]:
    """The forms measurable here (name -> module on ``device``), and those skipped with the reason."""
    model = model.eval()
    made: dict[str, nn.Module] = {"dense": model.to(device)}
    skipped: dict[str, str] = {}
    if device.type == "cpu":
        csr, n = _swap(model, CsrLinear, lambda lin: bool((lin.weight == 0).any()))
        if n:
            made["csr"] = csr
        else:
            skipped["csr"] = "no Linear layer has pruned weights"
        skipped["semi_structured_2of4"] = "needs CUDA sparse tensor cores (no GPU here)"
    else:
        skipped["csr"] = "measured on CPU only"
        if not torch.cuda.get_device_capability(device) >= (8, 0):
            skipped["semi_structured_2of4"] = "needs compute capability 8.0 or newer"
        else:
            made["dense"] = copy.deepcopy(model).half()
            semi, n = _swap(made["dense"], SemiStructuredLinear, _is_2_of_4)
            if n:
                made["semi_structured_2of4"] = semi
            else:
                skipped["semi_structured_2of4"] = "no Linear layer is 2:4 (64+ rows and columns)"
    return made, skipped


@contextlib.contextmanager
def _native_stderr_silenced() -> Iterator[None]:
    """File descriptor 2 to /dev/null: the profiler's C++ side prints start/stop lines there."""
    try:
        sys.stderr.flush()
        saved = os.dup(2)
    except (AttributeError, OSError):  # no stderr (pythonw) or fd 2 closed: nothing to silence
        yield
        return
    try:
        with open(os.devnull, "w") as devnull:
            os.dup2(devnull.fileno(), 2)
            yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


@torch.no_grad()
def peak_batch_bytes(model: nn.Module, example: torch.Tensor) -> int:
    """Peak bytes torch's CPU allocator holds for one ``model(example)`` beyond what it held before.

    The running sum of the allocation (+) and free (-) events torch's profiler records
    (``profile_memory=True``), in time order; the output counts until the batch ends.
    """
    activities = [torch.profiler.ProfilerActivity.CPU]
    with _native_stderr_silenced(), torch.profiler.profile(activities=activities, profile_memory=True) as prof:
        model(example)
    events = [e for e in prof.profiler.kineto_results.events() if e.name() == "[memory]" and e.device_type().name == "CPU"]
    held = peak = 0
    for event in sorted(events, key=lambda e: e.start_ns()):
        held += event.nbytes()
        peak = max(peak, held)
    return peak


@torch.no_grad()
def measure(model: nn.Module, example: torch.Tensor, warmup: int = 10, repeats: int = 50) -> dict[str, Any]:
    """Latency of ``model(example)`` per batch in ms (median, p90; warm-up excluded) and its memory."""
    cuda = example.device.type == "cuda"
    for _ in range(warmup):
        model(example)
    if cuda:
        torch.cuda.synchronize(example.device)
        torch.cuda.reset_peak_memory_stats(example.device)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        model(example)
        if cuda:
            torch.cuda.synchronize(example.device)
        times.append(1000 * (time.perf_counter() - start))
    out = {
        "median_ms": statistics.median(times),
        "p90_ms": statistics.quantiles(times, n=10)[-1],
        "batches": repeats,
        "warmup_batches": warmup,
        "weight_bytes": weight_bytes(model),
    }
    if cuda:
        out["peak_allocated_bytes"] = torch.cuda.max_memory_allocated(example.device)
    elif example.device.type == "cpu":
        out["peak_batch_bytes"] = peak_batch_bytes(model, example)
    return out


def compare(model: nn.Module, example: torch.Tensor, warmup: int = 10, repeats: int = 50) -> dict[str, Any]:
    """Every form's measurement on ``example.device``, the ratios to dense, and what was skipped."""
    made, skipped = forms(model, example.device)
    results = {}
    for name, form in made.items():
        x = example.half() if next(form.parameters()).dtype == torch.float16 else example
        results[name] = measure(form, x, warmup, repeats)
    dense = results["dense"]
    for r in results.values():
        r["latency_ratio_to_dense"] = r["median_ms"] / dense["median_ms"]
        r["weight_bytes_ratio_to_dense"] = r["weight_bytes"] / dense["weight_bytes"]
    return {
        "device": str(example.device),
        "batch_size": example.shape[0],
        "forms": results,
        "skipped": skipped,
        "note": CONV_NOTE,
    }
