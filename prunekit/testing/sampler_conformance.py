"""Conformance checks every prunekit sampler must pass, reusable by plugin authors.

Call :func:`check_sampler` with your factory (``factory(device) -> Sampler``)
and a device your test environment supports; it raises ``AssertionError``
naming the broken rule. :func:`check_unavailable` checks the other path: on a
machine where the sampler cannot work, ``start()`` raises
``SamplerUnavailable`` with one line saying what is missing. With pytest::

    from prunekit.testing.sampler_conformance import check_sampler

    def test_my_sampler_conforms(fake_vendor_library):
        report = check_sampler(MySampler, torch.device("cuda", 0))
        assert "device_used_bytes" in report.figures

The rules (each a function below, usable on its own):

- the factory returns an object with ``scope`` in ``SCOPES`` and callable
  ``start``/``sample``/``stop`` (constructing it must not fail: ``start`` decides);
- ``sample()`` returns a dict of figure names (lower_snake_case) to finite
  numbers (``bool`` is not a number) or ``None`` (no reading this time);
  ``*_bytes`` figures are non-negative whole numbers, ``*_percent`` are 0..100;
- ``phase_changed(phase)``, when present, accepts every phase the core sends;
- ``stop()`` may be called twice; ``summary()``, when present, returns a
  JSON-serialisable dict after stop whose keys do not overwrite the core's;
- run by :class:`prunekit.core.measure.sampling.SamplingThread`, the sampler produces
  timeline lines with the core's fields and a summary with no errors whose
  counts match the timeline.
"""

from __future__ import annotations

import json
import math
import re
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from prunekit.core.measure.sampling import SCOPES, Sampler, SamplerUnavailable, SamplingThread

SamplerFactory = Callable[[torch.device], Any]

#: Phases the core announces through ``phase_changed``.
PHASES = ("train", "mask_update", "train", "eval")
#: Keys the core writes into each sampler's summary entry; ``summary()`` must not reuse them.
CORE_SUMMARY_KEYS = ("scope", "samples", "errors", "last_error", "interval_s", "figures")
#: Fields of every timeline line.
TIMELINE_FIELDS = {"t", "monotonic", "sampler", "scope", "phase", "step", "figures"}
_NAME = re.compile(r"^[a-z][a-z0-9_]*$")


@dataclass
class ConformanceReport:
    """What a passing sampler showed: its scope, figure names and summary."""

    scope: str
    figures: set[str] = field(default_factory=set)
    samples: int = 0
    timeline_lines: int = 0
    summary: dict[str, Any] = field(default_factory=dict)


def check_figures(figures: Any, where: str = "sample()") -> dict[str, float]:
    """Assert ``figures`` is a valid sample; return it without ``None`` values."""
    assert isinstance(figures, dict), f"{where} must return a dict, got {type(figures).__name__}"
    out: dict[str, float] = {}
    for name, value in figures.items():
        assert isinstance(name, str) and _NAME.match(name), (
            f"{where}: figure name {name!r} must be lower_snake_case and carry its unit (e.g. used_bytes)"
        )
        if value is None:
            continue
        assert isinstance(value, (int, float)) and not isinstance(value, bool), (
            f"{where}: figure {name!r} must be a number or None, got {type(value).__name__} {value!r}"
        )
        assert math.isfinite(value), f"{where}: figure {name!r} is not finite: {value!r}"
        if name.endswith("_bytes"):
            assert value >= 0, f"{where}: byte figure {name!r} is negative: {value!r}"
            assert float(value).is_integer(), f"{where}: byte figure {name!r} is not a whole number: {value!r}"
        if name.endswith("_percent"):
            assert 0 <= value <= 100, f"{where}: percentage {name!r} out of 0..100: {value!r}"
        out[name] = float(value)
    return out


def check_shape(sampler: Any) -> None:
    """Assert the object has the sampler protocol's attributes."""
    assert isinstance(sampler, Sampler), (
        f"{type(sampler).__name__} lacks part of the sampler protocol (scope, start, sample, stop)"
    )
    assert sampler.scope in SCOPES, f"scope {sampler.scope!r} is not one of {SCOPES}"
    for optional in ("phase_changed", "summary"):
        hook = getattr(sampler, optional, None)
        assert hook is None or callable(hook), f"{optional} must be a method when present"


def check_summary(sampler: Any) -> dict[str, Any]:
    """Assert ``summary()`` (if any) is a JSON-serialisable dict that keeps the core's keys intact."""
    hook = getattr(sampler, "summary", None)
    if hook is None:
        return {}
    extra = hook()
    assert isinstance(extra, dict), f"summary() must return a dict, got {type(extra).__name__}"
    clash = sorted(set(extra) & set(CORE_SUMMARY_KEYS))
    assert not clash, f"summary() keys {clash} would overwrite the core's summary fields"
    json.dumps(extra)  # raises TypeError when not serialisable
    return extra


def make(factory: SamplerFactory, device: torch.device) -> Any:
    """Build a sampler; the factory itself must not fail (``start`` decides availability)."""
    try:
        sampler = factory(device)
    except SamplerUnavailable as exc:  # pragma: no cover - reported as a failure
        raise AssertionError(f"the factory raised SamplerUnavailable ({exc}); raise it from start()") from exc
    check_shape(sampler)
    return sampler


def check_lifecycle(factory: SamplerFactory, device: torch.device, samples: int = 3) -> ConformanceReport:
    """start, sample (with phase changes), stop, stop again, summary."""
    sampler = make(factory, device)
    sampler.start()
    report = ConformanceReport(sampler.scope)
    try:
        hook = getattr(sampler, "phase_changed", None)
        for i in range(samples):
            figures = check_figures(sampler.sample(), f"sample() #{i + 1}")
            report.figures |= set(figures)
            report.samples += 1
            if hook is not None:
                hook(PHASES[i % len(PHASES)])
    finally:
        sampler.stop()
    sampler.stop()  # a second stop must be harmless
    report.summary = check_summary(sampler)
    assert report.figures, "sample() never returned a figure"
    return report


def check_sampling_thread(
    factory: SamplerFactory,
    device: torch.device,
    name: str = "sampler",
    interval: float = 0.01,
    min_samples: int = 4,
    timeout: float = 10.0,
) -> ConformanceReport:
    """Run the sampler on the core's SamplingThread; check timeline and summary content."""
    sampler = make(factory, device)
    sampler.start()
    counted = _Counting(sampler)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "timeline.jsonl"
        thread = SamplingThread({name: counted}, interval=interval, timeline=path)
        thread.start()
        try:
            deadline = time.monotonic() + timeout
            phases = iter(PHASES)
            while counted.calls < min_samples:
                assert time.monotonic() < deadline, f"no {min_samples} samples within {timeout} s"
                thread.step += 1
                phase = next(phases, None)
                if phase is not None:
                    thread.set_phase(phase)
                time.sleep(interval)
        finally:
            thread.stop()
        lines = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]
    summary = thread.summary()[name]
    assert summary["errors"] == 0, f"sampling raised {summary['errors']} error(s); last: {summary['last_error']}"
    assert summary["samples"] == len(lines), (
        f"summary counts {summary['samples']} samples but the timeline has {len(lines)} lines"
    )
    assert len(lines) >= min_samples, f"timeline has {len(lines)} lines, expected at least {min_samples}"
    report = ConformanceReport(sampler.scope, samples=summary["samples"], timeline_lines=len(lines), summary=summary)
    last_t, last_step = -1.0, 0
    for i, line in enumerate(lines):
        assert set(line) == TIMELINE_FIELDS, f"timeline line {i} has fields {sorted(line)}"
        assert line["sampler"] == name and line["scope"] == sampler.scope
        assert line["t"] >= last_t, f"timeline line {i} goes back in time"
        last_t = line["t"]
        assert isinstance(line["step"], int) and line["step"] >= last_step, f"timeline line {i}: bad step"
        last_step = line["step"]
        assert line["phase"] in ("setup", *PHASES), f"timeline line {i}: unknown phase {line['phase']!r}"
        report.figures |= set(check_figures(line["figures"], f"timeline line {i}"))
    assert set(summary["figures"]) == report.figures, (
        f"summary figures {sorted(summary['figures'])} differ from the timeline's {sorted(report.figures)}"
    )
    for key, stats in summary["figures"].items():
        values = [line["figures"][key] for line in lines if key in line["figures"]]
        assert stats["peak"] == max(values), f"summary peak of {key!r} is not the timeline's maximum"
        assert math.isclose(stats["mean"], sum(values) / len(values), rel_tol=1e-9, abs_tol=1e-9)
    json.dumps(summary)
    return report


class _Counting:
    """Forwards to a sampler and counts sample() calls (the thread's progress, errors included)."""

    def __init__(self, inner: Any) -> None:
        self._inner = inner
        self.calls = 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)

    def sample(self) -> Any:
        self.calls += 1
        return self._inner.sample()


def check_unavailable(factory: SamplerFactory, device: torch.device) -> str:
    """Assert ``start()`` raises SamplerUnavailable (nothing else) with one clear line; return it."""
    sampler = make(factory, device)
    try:
        sampler.start()
    except SamplerUnavailable as exc:
        message = str(exc)
    except Exception as exc:  # the point of the check: no other exception type
        raise AssertionError(
            f"start() raised {type(exc).__name__}: {exc}; an unavailable sampler must raise SamplerUnavailable"
        ) from exc
    else:
        sampler.stop()
        raise AssertionError("start() succeeded where the sampler was expected to be unavailable")
    assert message.strip(), "SamplerUnavailable needs a message saying what is missing and how to get it"
    assert "\n" not in message.strip(), f"SamplerUnavailable message must be one line: {message!r}"
    return message


def check_sampler(
    factory: SamplerFactory,
    device: torch.device | str = "cpu",
    *,
    name: str = "sampler",
    samples: int = 3,
) -> ConformanceReport:
    """Run every check on a sampler that works in this environment."""
    device = torch.device(device)
    report = check_lifecycle(factory, device, samples=samples)
    threaded = check_sampling_thread(factory, device, name=name)
    report.timeline_lines = threaded.timeline_lines
    report.figures |= threaded.figures
    return report


def check_available_or_unavailable(
    factory: SamplerFactory, device: torch.device | str = "cpu", *, name: str = "sampler"
) -> ConformanceReport | str:
    """On an arbitrary machine: either the sampler works and conforms, or it says why not.

    Returns the report, or the SamplerUnavailable message.
    """
    device = torch.device(device)
    probe = make(factory, device)
    try:
        probe.start()
    except SamplerUnavailable:
        return check_unavailable(factory, device)
    probe.stop()
    return check_sampler(factory, device, name=name)


__all__ = [
    "CORE_SUMMARY_KEYS",
    "ConformanceReport",
    "PHASES",
    "check_available_or_unavailable",
    "check_figures",
    "check_lifecycle",
    "check_sampler",
    "check_sampling_thread",
    "check_shape",
    "check_summary",
    "check_unavailable",
]
