"""Run every benchmark (or those named), each in its own process, and collect one JSON document.

    python benchmarks/run.py [NAME ...] [--quick] [--out FILE] [--timeout S] [-- ARGS passed to each]

Each ``benchmarks/bench_<name>.py`` prints one JSON object on stdout (on one line or
indented, before or after other output: the last top-level JSON object is taken).
``--quick`` runs every script with its own ``--quick`` settings (smaller counts, the
same measurements). The combined document (results, the commit, the machine's load
before and after each benchmark) is printed and written atomically to ``--out``
(default ``runs/bench/<UTC time>-<commit>[-quick].json``), so figures can be compared
between commits. Exit status: 0 all succeeded, 1 some failed (their ``error`` is
recorded), 2 bad arguments.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import subprocess
import sys
import time
from importlib import metadata
from pathlib import Path

from prunekit.core.rundir.files import write_atomic

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent


def last_json_object(text: str) -> dict | None:
    """The last top-level JSON object in ``text`` (compact or indented), or None."""
    decoder = json.JSONDecoder()
    found, index = None, text.find("{")
    while index != -1:
        try:
            value, end = decoder.raw_decode(text, index)
        except json.JSONDecodeError:
            index = text.find("{", index + 1)
            continue
        if isinstance(value, dict):
            found = value
        index = text.find("{", end)
    return found


def _git(*args: str) -> str:
    done = subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True, check=False)
    return done.stdout.strip() if done.returncode == 0 else ""


def _load() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


def _version(name: str) -> str | None:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None


def run_one(script: Path, args: list[str], timeout: float | None) -> dict:
    """Run one benchmark script; its JSON result, or ``{"error": ...}``."""
    start, load_before = time.perf_counter(), _load()
    try:
        proc = subprocess.run([sys.executable, str(script), *args], capture_output=True, text=True, timeout=timeout)
        result = last_json_object(proc.stdout)
        if proc.returncode != 0 or result is None:
            last = (proc.stderr.strip().splitlines() or ["no JSON object on stdout"])[-1]
            result = {"error": f"exit status {proc.returncode}: {last}"}
    except subprocess.TimeoutExpired:
        result = {"error": f"timed out after {timeout} s"}
    result["benchmark_wall_s"] = round(time.perf_counter() - start, 1)
    result["load_average_before_after"] = [load_before, _load()]
    return result


def main(argv: list[str]) -> int:
    extra = argv[argv.index("--") + 1 :] if "--" in argv else []
    own = argv[: argv.index("--")] if "--" in argv else argv
    scripts = sorted(HERE.glob("bench_*.py"))
    available = [s.stem.removeprefix("bench_") for s in scripts]
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("names", nargs="*", metavar="NAME", help=f"benchmarks to run (default all: {', '.join(available)})")
    parser.add_argument("--quick", action="store_true", help="each benchmark's quick settings (make bench QUICK=1)")
    parser.add_argument("--out", type=Path, help="where to write the combined JSON (default runs/bench/<time>-<commit>.json)")
    parser.add_argument("--timeout", type=float, help="seconds allowed per benchmark (default: no limit)")
    args = parser.parse_args(own)
    unknown = [n for n in args.names if n.removeprefix("bench_").removesuffix(".py") not in available]
    if unknown:
        print(f"Error: unknown benchmark {unknown[0]!r}; available: {', '.join(available)}", file=sys.stderr)
        return 2
    if args.names:
        wanted = {n.removeprefix("bench_").removesuffix(".py") for n in args.names}
        scripts = [s for s in scripts if s.stem.removeprefix("bench_") in wanted]
    now = datetime.datetime.now(datetime.timezone.utc)
    commit = _git("rev-parse", "--short=12", "HEAD") or "unknown"
    out = args.out or ROOT / "runs" / "bench" / f"{now:%Y%m%dT%H%M%SZ}-{commit}{'-quick' if args.quick else ''}.json"
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        print(f"Error: cannot create {out.parent} for --out ({exc.strerror}); give a writable path", file=sys.stderr)
        return 2
    document: dict = {
        "meta": {
            "utc": now.isoformat(timespec="seconds"),
            "commit": commit,
            "dirty": bool(_git("status", "--porcelain", "--untracked-files=no")),
            "quick": args.quick,
            "extra_args": extra,
            "python": platform.python_version(),
            "torch": _version("torch"),
            "cpu_count": os.cpu_count(),
            "omp_num_threads": os.environ.get("OMP_NUM_THREADS"),
            "load_average_at_start": _load(),
        },
        "results": {},
    }
    per_script = (["--quick"] if args.quick else []) + extra
    failed = False
    for script in scripts:
        result = run_one(script, per_script, args.timeout)
        failed |= "error" in result
        document["results"][script.stem] = result
        status = f"FAILED: {result['error']}" if "error" in result else "done"
        print(f"{script.stem}: {status} ({result['benchmark_wall_s']} s)", file=sys.stderr, flush=True)
    text = json.dumps(document, indent=2) + "\n"
    write_atomic(out, text)
    print(text, end="")
    print(f"written to {out}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
