"""Which test examples a run classified correctly at its final epoch.

The format of ``test_correct.bin`` (:mod:`prunekit.core.rundir.layout` owns its name and
reads and writes it): one JSON header line (format, number of examples, test-set
fingerprint, epoch), then ``numpy.packbits`` of the booleans (big bit order; 50,000
examples take 6,250 bytes). Reports pair only runs with the same fingerprint: the
same examples in the same order. The
fingerprint is the SHA-256 of the dataset's name, its options, the number of test
examples and their labels in evaluation order: exact integers, unlike input bytes,
whose last bits can depend on the thread count that normalised them.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any

import numpy as np

FORMAT = 1


@dataclass(frozen=True)
class Outcomes:
    """Per-example correctness of one run on its test set."""

    correct: np.ndarray  # bool, shape (n,), in evaluation order
    fingerprint: str
    epoch: int

    @property
    def n(self) -> int:
        return int(self.correct.size)

    @property
    def accuracy(self) -> float:
        """Percent correct, as ``summary.json`` reports it."""
        return 100.0 * float(self.correct.mean()) if self.n else 0.0


def fingerprint_test_set(dataset: str, options: dict[str, Any], labels: Any) -> str:
    """``sha256:<hex>`` of the dataset's identity and its ordered test labels."""
    labels = np.ascontiguousarray(np.asarray(labels, dtype=np.int64))
    identity = json.dumps({"dataset": dataset, "options": options, "n": int(labels.size)}, sort_keys=True, default=str)
    digest = hashlib.sha256(identity.encode())
    digest.update(labels.tobytes())
    return f"sha256:{digest.hexdigest()}"


def encode(outcomes: Outcomes) -> bytes:
    """The file's bytes: a JSON header line, then the packed bits."""
    correct = np.asarray(outcomes.correct, dtype=bool).ravel()
    header = {
        "format": FORMAT,
        "n": int(correct.size),
        "bits": "numpy.packbits, big bit order",
        "fingerprint": outcomes.fingerprint,
        "epoch": int(outcomes.epoch),
    }
    return json.dumps(header).encode() + b"\n" + np.packbits(correct).tobytes()


def decode(data: bytes, name: str) -> Outcomes:
    """Parse :func:`encode`'s bytes; ValueError naming ``name`` and the problem otherwise."""
    head, _, packed = data.partition(b"\n")
    try:
        header = json.loads(head)
        n, fingerprint, epoch = int(header["n"]), str(header["fingerprint"]), int(header["epoch"])
        version = header["format"]
    except (ValueError, KeyError, TypeError):
        raise ValueError(f"{name} has no valid header line") from None
    if version != FORMAT:
        raise ValueError(f"{name} has format {version}; this prunekit reads format {FORMAT}")
    if n < 0 or len(packed) != (n + 7) // 8:
        raise ValueError(f"{name} holds {len(packed)} bytes of bits for {n} examples (expected {(n + 7) // 8})")
    bits = np.unpackbits(np.frombuffer(packed, dtype=np.uint8), count=n).astype(bool)
    return Outcomes(bits, fingerprint, epoch)
