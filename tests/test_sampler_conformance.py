"""Every registered sampler passes prunekit's sampler conformance suite.

- ``process``: always runs for real.
- ``torch``: runs for real where CUDA exists; elsewhere its unavailable path is checked.
- ``nvidia`` / ``rocm``: their plugins' own tests run the suite against fake vendor
  libraries (which live with those tests); here, their CPU refusal is checked.
- any other (third-party) sampler: on this machine it either works and conforms,
  or its start() raises SamplerUnavailable with one clear line.
"""

from __future__ import annotations

import pytest
import torch

from prunekit.core.measure.sampling import SCOPES
from prunekit.core.plugins.loading import build
from prunekit.testing.sampler_conformance import (
    check_available_or_unavailable,
    check_sampler,
    check_unavailable,
)

REGISTRY = build().registry
NAMES = REGISTRY.names("samplers")


#: GPU vendor samplers: conformance against fake libraries runs in their plugins' tests.
VENDOR = ("nvidia", "rocm")


def test_the_builtin_samplers_are_registered():
    assert {"process", "torch"} <= set(NAMES)


@pytest.mark.parametrize("name", NAMES)
def test_registered_sampler_conforms(name, monkeypatch):
    entry = REGISTRY.get("samplers", name)
    scope = entry.metadata["scope"]
    assert scope in SCOPES
    if name == "torch" and not torch.cuda.is_available():
        message = check_unavailable(entry.factory, torch.device("cpu"))
        assert "cpu" in message
        return
    elif name == "torch":
        report = check_sampler(entry.factory, torch.device("cuda", 0), name=name)
        assert "allocated_bytes" in report.figures
    elif name == "process":
        report = check_sampler(entry.factory, torch.device("cpu"), name=name)
        assert "rss_bytes" in report.figures
    else:
        report = check_available_or_unavailable(entry.factory, torch.device("cpu"), name=name)
        if isinstance(report, str):
            return
    assert report.scope == scope, f"registered scope {scope!r} but the sampler says {report.scope!r}"


@pytest.mark.parametrize("name", VENDOR)
def test_vendor_samplers_refuse_a_cpu_run(name):
    if name not in NAMES:
        pytest.skip(f"sampler {name!r} is not installed")
    message = check_unavailable(REGISTRY.get("samplers", name).factory, torch.device("cpu"))
    assert "this run is on cpu" in message


# -- the suite itself rejects broken samplers ------------------------------------
class Good:
    """A minimal conforming sampler; the broken ones below change one thing each."""

    scope = "process"

    def __init__(self, device: torch.device) -> None:
        self.started = False
        self.n = 0

    def start(self) -> None:
        self.started = True

    def sample(self) -> dict:
        assert self.started, "sample() before start()"
        self.n += 1
        return {"used_bytes": 1024 * self.n, "load_percent": 50.0, "maybe_bytes": None}

    def stop(self) -> None:
        self.started = False

    def summary(self) -> dict:
        return {"note": "ok"}


def broken(**changes) -> type:
    return type("Broken", (Good,), changes)


def test_the_suite_accepts_a_good_sampler():
    report = check_sampler(Good)
    assert report.figures == {"used_bytes", "load_percent"}
    assert report.summary == {"note": "ok"}
    assert report.timeline_lines >= 4


@pytest.mark.parametrize(
    "sampler, words",
    [
        (broken(scope="gpu"), "scope 'gpu'"),
        (broken(sample=lambda self: {"used_bytes": -1}), "negative"),
        (broken(sample=lambda self: {"used_bytes": 1.5}), "whole number"),
        (broken(sample=lambda self: {"used_bytes": True}), "number or None"),
        (broken(sample=lambda self: {"used_bytes": "12"}), "number or None"),
        (broken(sample=lambda self: {"used_bytes": float("inf")}), "not finite"),
        (broken(sample=lambda self: {"load_percent": 130}), "out of 0..100"),
        (broken(sample=lambda self: {"Used MiB": 3}), "lower_snake_case"),
        (broken(sample=lambda self: [1, 2]), "must return a dict"),
        (broken(sample=lambda self: {}), "never returned a figure"),
        (broken(summary=lambda self: {"samples": 3}), "overwrite the core's"),
        (broken(summary=lambda self: {"when": object()}), "not JSON serializable"),
    ],
)
def test_the_suite_rejects(sampler, words):
    with pytest.raises((AssertionError, TypeError), match=words):
        check_sampler(sampler)


def test_the_suite_rejects_a_second_stop_that_fails():
    class Once(Good):
        def stop(self) -> None:
            assert self.started, "stopped twice"
            self.started = False

    with pytest.raises(AssertionError, match="stopped twice"):
        check_sampler(Once)


def test_the_suite_rejects_a_sampler_that_errors_on_the_sampling_thread():
    class Flaky(Good):
        def sample(self) -> dict:
            figures = super().sample()
            if self.n > 3:  # passes the direct lifecycle check, fails on the thread
                raise RuntimeError("device went away")
            return figures

    with pytest.raises(AssertionError, match="sampling raised .* device went away"):
        check_sampler(Flaky)


def test_unavailable_must_be_sampler_unavailable_with_one_line():
    from prunekit.core.measure.sampling import SamplerUnavailable

    def raising(exc: BaseException) -> type:
        def start(self) -> None:
            raise exc

        return broken(start=start)

    assert check_unavailable(raising(SamplerUnavailable("no driver; install it")), torch.device("cpu")) == (
        "no driver; install it"
    )
    with pytest.raises(AssertionError, match="raised KeyError"):
        check_unavailable(raising(KeyError("libfoo.so")), torch.device("cpu"))
    with pytest.raises(AssertionError, match="one line"):
        check_unavailable(raising(SamplerUnavailable("no driver\ninstall it")), torch.device("cpu"))
    with pytest.raises(AssertionError, match="needs a message"):
        check_unavailable(raising(SamplerUnavailable("")), torch.device("cpu"))
    with pytest.raises(AssertionError, match="start\\(\\) succeeded"):
        check_unavailable(Good, torch.device("cpu"))
    assert check_available_or_unavailable(raising(SamplerUnavailable("missing")), "cpu") == "missing"
