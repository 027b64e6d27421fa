"""benchmarks/run.py: any JSON a benchmark prints is collected, and the document is written to a file."""

import importlib.util
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
spec = importlib.util.spec_from_file_location("bench_run", ROOT / "benchmarks" / "run.py")
bench_run = importlib.util.module_from_spec(spec)
spec.loader.exec_module(bench_run)


def test_last_json_object_compact_indented_and_surrounded_by_logs():
    indented = json.dumps({"a": {"b": [1, 2, {"c": "}{"}]}, "d": 1.5}, indent=2)
    assert bench_run.last_json_object(indented) == json.loads(indented)
    text = 'warming up {not json}\n{"first": 1}\n' + indented + "\ndone in 3 s\n"
    assert bench_run.last_json_object(text) == json.loads(indented)
    assert bench_run.last_json_object('{"x": 1}\n[1, 2]\n') == {"x": 1}
    assert bench_run.last_json_object("no json here") is None
    assert bench_run.last_json_object('{"truncated": ') is None


def test_run_one_reads_indented_json_and_reports_failures(tmp_path):
    good = tmp_path / "bench_good.py"
    good.write_text("import json, sys\nprint('log line')\nprint(json.dumps({'ratio': 1.0, 'args': sys.argv[1:]}, indent=2))\n")
    result = bench_run.run_one(good, ["--quick"], timeout=60)
    assert result["ratio"] == 1.0 and result["args"] == ["--quick"]
    assert "benchmark_wall_s" in result and len(result["load_average_before_after"]) == 2
    bad = tmp_path / "bench_bad.py"
    bad.write_text("import sys\nprint('{\"partial\": ')\nsys.exit('boom: the reason')\n")
    assert bench_run.run_one(bad, [], timeout=60)["error"] == "exit status 1: boom: the reason"
    slow = tmp_path / "bench_slow.py"
    slow.write_text("import time\ntime.sleep(30)\n")
    assert bench_run.run_one(slow, [], timeout=0.5)["error"] == "timed out after 0.5 s"


def test_unknown_benchmark_is_one_line_and_status_2(capsys):
    assert bench_run.main(["no_such_benchmark"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "unknown benchmark 'no_such_benchmark'; available:" in err[0]


def test_every_benchmark_accepts_quick():
    for script in sorted((ROOT / "benchmarks").glob("bench_*.py")):
        assert "parse_args(parser, quick=" in script.read_text(), f"{script.name} has no --quick settings"


def test_quick_defaults_yield_to_explicit_options():
    sys.path.insert(0, str(ROOT / "benchmarks"))
    try:
        from _quick import parse_args
    finally:
        sys.path.remove(str(ROOT / "benchmarks"))
    import argparse

    def parser():
        p = argparse.ArgumentParser()
        p.add_argument("--repeats", type=int, default=7)
        p.add_argument("--epochs", type=int, default=10)
        return p

    assert parse_args(parser(), {"repeats": 2, "epochs": 1}, []).repeats == 7
    quick = parse_args(parser(), {"repeats": 2, "epochs": 1}, ["--quick", "--epochs", "3"])
    assert (quick.repeats, quick.epochs, quick.quick) == (2, 3, True)
