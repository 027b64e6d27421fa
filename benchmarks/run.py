"""Run every benchmark (or those named) in its own process and print one JSON document.

Usage: python benchmarks/run.py [NAME ...] [-- extra args passed to each]
Each benchmarks/bench_<name>.py prints a JSON object as its last stdout line.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent


def main(argv: list[str]) -> int:
    extra = argv[argv.index("--") + 1 :] if "--" in argv else []
    names = argv[: argv.index("--")] if "--" in argv else argv
    scripts = sorted(HERE.glob("bench_*.py"))
    if names:
        wanted = {f"bench_{n.removeprefix('bench_').removesuffix('.py')}.py" for n in names}
        unknown = wanted - {s.name for s in scripts}
        if unknown:
            print(f"Error: unknown benchmark {sorted(unknown)[0]}; available: {', '.join(s.stem[6:] for s in scripts)}", file=sys.stderr)
            return 2
        scripts = [s for s in scripts if s.name in wanted]
    results = {}
    failed = False
    for script in scripts:
        start = time.perf_counter()
        proc = subprocess.run([sys.executable, str(script), *extra], capture_output=True, text=True)
        lines = [line for line in proc.stdout.splitlines() if line.strip().startswith("{")]
        if proc.returncode != 0 or not lines:
            failed = True
            results[script.stem] = {"error": (proc.stderr.strip().splitlines() or ["no output"])[-1]}
        else:
            results[script.stem] = json.loads(lines[-1])
        results[script.stem]["benchmark_wall_s"] = round(time.perf_counter() - start, 1)
        print(f"{script.stem}: done", file=sys.stderr, flush=True)
    print(json.dumps(results, indent=2))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
