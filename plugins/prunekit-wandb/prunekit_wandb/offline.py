"""Read W&B offline run files (``run-<id>.wandb``, what ``wandb sync`` uploads) back as records.

Used by this plugin's tests, and handy to inspect an offline run without a network.

The file is W&B's transaction log: a 7-byte header (``:W&B``, magic 0xBEE1,
version), then LevelDB-log framed chunks (32 KiB blocks; 7-byte chunk headers:
CRC-32, length, type full/first/middle/last) of ``wandb_internal_pb2.Record``
protobufs, decoded here with W&B's own protobuf classes.
"""

from __future__ import annotations

import json
import struct
import time
import zlib
from collections import defaultdict
from pathlib import Path
from typing import Any

from wandb.proto import wandb_internal_pb2 as pb

BLOCK = 32768
HEADER = 7
FULL, FIRST, MIDDLE, LAST = 1, 2, 3, 4


def chunks(path: Path) -> list[bytes]:
    data = Path(path).read_bytes()
    assert data[:4] == b":W&B" and struct.unpack("<H", data[4:6])[0] == 0xBEE1, f"{path} is not a W&B run file"
    pos, out, pending = HEADER, [], b""
    while pos + HEADER <= len(data):
        left = BLOCK - pos % BLOCK
        crc, length, kind = struct.unpack("<IHB", data[pos : pos + HEADER])
        if left < HEADER or kind == 0:  # block trailer / padding
            pos += left
            continue
        if pos + HEADER + length > len(data):  # still being written
            break
        chunk = data[pos + HEADER : pos + HEADER + length]
        assert zlib.crc32(bytes([kind]) + chunk) & 0xFFFFFFFF == crc, f"bad checksum at byte {pos} of {path}"
        pos += HEADER + length
        if kind == FULL:
            out.append(chunk)
        elif kind == FIRST:
            pending = chunk
        elif kind == MIDDLE:
            pending += chunk
        elif kind == LAST:
            out.append(pending + chunk)
    return out


def _records(path: Path) -> list[Any]:
    out = []
    for raw in chunks(path):
        record = pb.Record()  # type: ignore[attr-defined]  # protobuf classes built at import, no stubs
        record.ParseFromString(raw)
        out.append(record)
    return out


def read_run(run_dir: Path, wait_s: float = 30.0) -> dict[str, list[Any]]:
    """The records of every offline run under ``run_dir`` (or a wandb dir), by kind, in order.

    W&B's service writes the file asynchronously, shortly after ``run.finish()``
    returns: wait up to ``wait_s`` for each file's exit record.
    """
    paths = sorted(Path(run_dir).rglob("run-*.wandb"))
    assert paths, f"no offline W&B run under {run_dir}"
    out: dict[str, list[Any]] = defaultdict(list)
    for path in paths:
        deadline = time.monotonic() + wait_s
        records = _records(path)
        while not any(r.WhichOneof("record_type") == "exit" for r in records) and time.monotonic() < deadline:
            time.sleep(0.2)
            records = _records(path)
        for record in records:
            kind = record.WhichOneof("record_type")
            out[kind].append(getattr(record, kind))
    return out


def history(records: dict[str, list[Any]]) -> list[dict[str, Any]]:
    return [{".".join(i.nested_key) or i.key: json.loads(i.value_json) for i in h.item} for h in records["history"]]


def summary(records: dict[str, list[Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for s in records["summary"]:
        for u in s.update:
            out[".".join(u.nested_key) or u.key] = json.loads(u.value_json)
    return out


def config(records: dict[str, list[Any]]) -> dict[str, Any]:
    return {u.key: json.loads(u.value_json) for u in records["run"][0].config.update}


def files(records: dict[str, list[Any]]) -> set[str]:
    return {f.path for r in records["files"] for f in r.files}
