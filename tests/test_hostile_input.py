"""Hostile and careless input to the real CLI (issue 19, items 7-12 and the smaller list): each
case is one line, exit status 2, no traceback and the directory untouched, unless it says otherwise."""

from __future__ import annotations

import csv
import errno
import json
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from prunekit.core.rundir import layout as rundir

TINY = ["--dataset", "synthetic", "--dataset-opt", "train_size=16", "--dataset-opt", "test_size=8", "--batch-size", "8"]
TINY_RUN = [*TINY, "--epochs", "2", "--quiet", "--sample-interval", "0.05"]
BOMB = "a: &a [x, x, x, x, x, x, x, x, x]\n" + "".join(
    f"{n}: &{n} [{', '.join(['*' + p] * 9)}]\n" for p, n in zip("abcdefgh", "bcdefghi")
)  # 324 bytes, 9**9 values


def tree(root: Path) -> dict[str, tuple[int, int, int]]:
    """Every path under ``root`` with its mode, size and modification time."""
    return {str(p.relative_to(root)): (p.lstat().st_mode, p.lstat().st_size, p.lstat().st_mtime_ns) for p in root.rglob("*")}


def refused(result, *words: str) -> str:
    """The one error line of an exit-2 refusal, checked to name each of ``words``."""
    assert result.code == 2, (result.code, result.out, result.err)
    lines = result.err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: "), result.err
    assert "Traceback" not in result.out + result.err
    for word in words:
        assert word in lines[0], lines[0]
    return lines[0]


@pytest.fixture
def here(tmp_path, monkeypatch):
    """A working directory (so a default ``runs/`` would show) and a check that nothing in it changed."""
    monkeypatch.chdir(tmp_path)
    return tmp_path


def untouched(run_cli, root: Path, *args: str):
    before = tree(root)
    result = run_cli(*args)
    assert tree(root) == before, "the command changed the directory"
    return result


@pytest.fixture
def read_only():
    """``make(path)``: the directory ``path`` becomes read-only, contents kept. Modes do not stop root,
    so as root it becomes a read-only tmpfs (skipped where mounting is not allowed)."""
    mounts: list[Path] = []

    def make(path: Path) -> None:
        if os.geteuid() != 0:
            path.chmod(0o555)
            return
        aside = path.with_name(path.name + ".contents")
        path.rename(aside)
        path.mkdir()
        if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", str(path)], capture_output=True).returncode:
            path.rmdir()
            aside.rename(path)
            pytest.skip("as root, a read-only directory needs mount (not allowed here)")
        mounts.append(path)
        shutil.copytree(aside, path, dirs_exist_ok=True, symlinks=True)
        shutil.rmtree(aside)
        subprocess.run(["mount", "-o", "remount,ro", str(path)], check=True)

    yield make
    for path in mounts:
        subprocess.run(["umount", str(path)], check=False)


# ------------------------------------------------------------ 7: bounded reading and expansion


def test_yaml_alias_bomb_as_config_is_refused_at_once(here, run_cli):
    (here / "bomb.yaml").write_text(BOMB)
    refused(untouched(run_cli, here, "run", "--config", "bomb.yaml", *TINY_RUN), "bomb.yaml", "100,000 values")


def test_yaml_alias_bomb_as_matrix_spec_is_refused_at_once(here, run_cli):
    (here / "bomb.yaml").write_text(BOMB)
    refused(untouched(run_cli, here, "matrix", "bomb.yaml", "--dry-run"), "bomb.yaml", "100,000 values")


def test_dev_zero_as_config_is_refused(here, run_cli):
    refused(untouched(run_cli, here, "run", "--config", "/dev/zero", *TINY_RUN), "/dev/zero", "not a regular file")


def test_huge_config_file_is_refused_unread(here, run_cli):
    (here / "big.yaml").write_text("# " + "x" * (1 << 20) + "\n")
    refused(untouched(run_cli, here, "run", "--config", "big.yaml", *TINY_RUN), "larger than 1,048,576 bytes")


@pytest.mark.parametrize("command", [["run", "--config", "fifo.yaml"], ["matrix", "fifo.yaml", "--dry-run"]])
def test_fifo_as_config_or_spec_is_refused_without_hanging(here, run_cli, command):
    os.mkfifo(here / "fifo.yaml")

    def hung(*_):
        raise TimeoutError("prunekit waited for a writer on the FIFO")

    signal.signal(signal.SIGALRM, hung)
    signal.alarm(20)
    try:
        refused(run_cli(*command), "fifo.yaml", "not a regular file")
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, signal.SIG_DFL)


def test_matrix_print_of_a_fifo_or_non_utf8_file_is_one_line(here, run_cli):
    os.mkfifo(here / "fifo.yaml")
    refused(run_cli("matrix", "fifo.yaml", "--print"), "not a regular file")
    (here / "latin1.yaml").write_bytes(b"name: caf\xe9\n")
    refused(run_cli("matrix", "latin1.yaml", "--print"), "not UTF-8", "0xe9")


def test_a_million_run_grid_is_refused_with_its_size(here, run_cli):
    spec = {"seeds": list(range(1000)), "epochs": list(range(1, 1001))}
    (here / "grid.yaml").write_text(json.dumps(spec))
    refused(untouched(run_cli, here, "matrix", "grid.yaml", "--dry-run"), "1,000,000 runs", "at most 10,000")


# ------------------------------------------------------------ 8: out-of-range values


@pytest.mark.parametrize("seed", ["-1", "4294967296", str(2**64)])
def test_out_of_range_seed_is_refused(here, run_cli, seed):
    refused(untouched(run_cli, here, "run", *TINY_RUN, "--seed", seed), "Seed must be an integer from 0 to 4294967295")


def test_matrix_negative_seed_is_refused(here, run_cli):
    (here / "spec.yaml").write_text("seeds: [-1]\n")
    refused(untouched(run_cli, here, "matrix", "spec.yaml", "--dry-run"), "Seed must be")


@pytest.mark.parametrize(
    ("options", "words"),
    [
        (["train_size=1000000000000"], "at most 10000000"),
        (["image_size=1024", "train_size=10000"], "would take 127,439,732,736 bytes"),
    ],
)
def test_synthetic_dataset_too_large_is_refused(here, run_cli, options, words):
    pairs = [a for o in options for a in ("--dataset-opt", o)]
    refused(untouched(run_cli, here, "run", "--dataset", "synthetic", *pairs, "--quiet"), words)


@pytest.mark.parametrize("model", ["timm:hf-hub:timm/resnet18.a1_in1k", "timm:local-dir:/tmp/model"])
def test_timm_remote_or_local_sources_are_refused(here, run_cli, model):
    refused(untouched(run_cli, here, "run", "--model", model, *TINY_RUN), "hf-hub: and local-dir:")


# ------------------------------------------------------------ 9: tracebacks where one line is promised


def test_unhashable_samplers_in_a_config_are_one_line(here, run_cli):
    (here / "c.yaml").write_text("samplers: [[process]]\n")
    refused(untouched(run_cli, here, "run", "--config", "c.yaml", *TINY_RUN), "'samplers' must be a list of sampler names")


@pytest.mark.parametrize("spec", ["settings: {samplers: [[process]]}\n", "samplers: [[[process]]]\n"])
def test_unhashable_samplers_in_a_spec_are_one_line(here, run_cli, spec):
    (here / "spec.yaml").write_text(spec)
    refused(untouched(run_cli, here, "matrix", "spec.yaml", "--dry-run"), "samplers")


def test_unhashable_samplers_in_an_edited_config_yaml_are_one_line(here, run_cli):
    stopped = here / "stopped"
    stopped.mkdir()
    (stopped / rundir.CONFIG).write_text("samplers: [[process]]\nepochs: 2\n")
    refused(untouched(run_cli, here, "run", "--resume", stopped), "'samplers' must be a list of sampler names")


@pytest.mark.parametrize(
    "command", [["run", *TINY_RUN, "--out"], ["matrix", "--example", "digits-quick", "--dry-run", "--out"], ["report"]]
)
def test_a_name_over_255_bytes_is_one_line(here, run_cli, command):
    refused(untouched(run_cli, here, *command, "x" * 300), "File name too long")


def test_existing_empty_unwritable_out_is_one_line(here, run_cli, read_only):
    (here / "out").mkdir()
    read_only(here / "out")
    refused(untouched(run_cli, here, "run", *TINY_RUN, "--out", "out"), "Cannot write to --out out")


def test_matrix_and_report_on_a_read_only_directory_are_one_line(here, run_cli, read_only, finished):
    copy_run(finished, here / "ro" / "good")
    read_only(here / "ro")
    refused(untouched(run_cli, here, "matrix", "--example", "digits-quick", "--out", "ro/m"), "not a writable directory")
    refused(untouched(run_cli, here, "report", "ro"), "Cannot write the report into ro: it is not a writable directory")


def _fail_on_call(monkeypatch, target, name: str, call: int) -> None:
    """Make ``target.name`` raise OSError(ENOSPC) from its ``call``-th call on."""
    real, calls = getattr(target, name), []

    def full(*args, **kwargs):
        calls.append(1)
        if len(calls) >= call:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return real(*args, **kwargs)

    monkeypatch.setattr(target, name, full)


def test_full_disk_at_the_second_checkpoint_fails_the_run_in_one_line(here, run_cli, monkeypatch):
    from prunekit.core.rundir import checkpoint

    _fail_on_call(monkeypatch, checkpoint.torch, "save", 2)  # torch.save, restored after the test
    result = run_cli("run", *TINY_RUN, "--out", "r")
    assert result.code == 1, result.err
    assert result.err.strip().splitlines() == [
        f"Error: run failed: OSError: [Errno 28] No space left on device (traceback in {Path('r') / rundir.FAILURE})"
    ]
    failure = json.loads((here / "r" / rundir.FAILURE).read_text())
    assert failure["epochs_completed"] == 2  # epoch 2's metrics line was written; its checkpoint was not
    assert not list((here / "r").glob(".*.tmp")), "a temporary checkpoint was left behind"


def test_full_disk_that_also_refuses_failure_json_is_one_line(here, run_cli, monkeypatch):
    from prunekit.core.rundir import checkpoint

    _fail_on_call(monkeypatch, checkpoint.torch, "save", 2)
    _fail_on_call(monkeypatch, rundir, "write_json", 1)  # failure.json is the first JSON the run writes
    result = run_cli("run", *TINY_RUN, "--out", "r")
    assert result.code == 1, result.err
    lines = result.err.strip().splitlines()
    assert len(lines) == 1 and "failure.json could not be written (No space left on device)" in lines[0], result.err
    assert not (here / "r" / rundir.FAILURE).exists()


# ------------------------------------------------------------ 10: a read-only run directory in a matrix

SPEC = """\
models: [lenet5]
pruners: [none]
seeds: [0, 1]
settings: {dataset: synthetic, dataset_opts: {train_size: 16, test_size: 8}, batch_size: 8, epochs: 1, sample_interval: 0.05}
"""


def test_a_read_only_run_directory_fails_that_run_not_the_matrix(here, run_cli, read_only):
    from prunekit.core.plugins.loading import get_plugins
    from prunekit.matrix import store
    from prunekit.matrix.expand import expand
    from prunekit.matrix.spec import load_spec

    (here / "spec.yaml").write_text(SPEC)
    plan = expand(load_spec(here / "spec.yaml"), get_plugins().registry)
    store.prepare(here / "m", plan)  # as an earlier matrix process left it
    locked = here / "m" / rundir.RUNS / plan.runs[0].id  # failed before, with a checkpoint: resumed, failure.json dropped
    locked.mkdir()
    (locked / rundir.CHECKPOINT).write_bytes(b"not read: the matrix cannot even prepare this run")
    (locked / rundir.FAILURE).write_text('{"status": "failed", "reason": "earlier"}\n')
    read_only(locked)
    result = run_cli("matrix", "spec.yaml", "--out", "m", "-q")
    assert result.code == 1 and "Traceback" not in result.out + result.err, result.out + result.err
    where = Path("m") / rundir.RUNS / locked.name / rundir.FAILURE
    assert f"failed {locked.name}: cannot prepare its files: {where}: " in result.out
    assert rundir.state(here / "m" / rundir.RUNS / plan.runs[1].id) == rundir.FINISHED


# ------------------------------------------------------------ 11: one bad file does not kill the report


@pytest.fixture(scope="module")
def finished(tmp_path_factory) -> Path:
    """One finished two-epoch run."""
    from prunekit.cli import main

    out = tmp_path_factory.mktemp("hostile") / "good"
    with pytest.raises(SystemExit) as info:
        main(["run", *TINY_RUN, "--out", str(out)])
    assert info.value.code == 0
    return out


def copy_run(source: Path, target: Path, **summary_changes) -> Path:
    target.mkdir(parents=True)
    for path in source.iterdir():
        if path.is_file():
            (target / path.name).write_bytes(path.read_bytes())
    if summary_changes:
        summary = json.loads((target / rundir.SUMMARY).read_text())
        (target / rundir.SUMMARY).write_text(json.dumps(summary | summary_changes))
    return target


def test_bad_summaries_and_matrix_json_are_listed_not_fatal(finished, tmp_path, run_cli):
    runs = tmp_path / "runs"
    copy_run(finished, runs / "good")
    copy_run(finished, runs / "object-seed", seed={"x": 1})
    copy_run(finished, runs / "huge-accuracy", final_test_accuracy=1e308)
    (tmp_path / rundir.MATRIX).write_text(json.dumps({"spec_hash": "x", "runs": 5}))
    result = run_cli("report", tmp_path, "--no-figures")
    assert result.code == 0 and "Traceback" not in result.err, result.err
    assert "left out object-seed: malformed: summary.json has seed {'x': 1}, not an integer >= 0" in result.out
    assert "left out huge-accuracy: malformed: summary.json has final_test_accuracy 1e+308, outside [0, 100]" in result.out
    assert "Report of 1 runs" in result.out
    assert "matrix.json is malformed ('runs' is not a list)" in (tmp_path / "report.md").read_text()


# ------------------------------------------------------------ 12: leftovers


def _dead_pid() -> int:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def test_resume_cleans_stale_temporaries_and_the_old_failure(finished, tmp_path, run_cli):
    run_dir = copy_run(finished, tmp_path / "stopped")
    (run_dir / rundir.SUMMARY).unlink()
    stale = [run_dir / f".checkpoint.pt.{_dead_pid()}.k9x2.tmp", run_dir / ".checkpoint.pt.ab3dk1fz.tmp"]
    live = run_dir / f".checkpoint.pt.{os.getppid()}.live.tmp"  # a running process's: kept
    for path in [*stale, live]:
        path.write_bytes(b"partial")
    (run_dir / rundir.FAILURE).write_text('{"status": "failed", "reason": "an earlier attempt"}\n')
    result = run_cli("run", "--resume", run_dir, "--quiet")
    assert result.code == 0, result.err
    assert (run_dir / rundir.SUMMARY).exists() and not (run_dir / rundir.FAILURE).exists()
    assert not any(p.exists() for p in stale) and live.exists()


def test_a_killed_reports_hidden_png_is_removed(finished, tmp_path, run_cli):
    copy_run(finished, tmp_path / "good")
    figures = tmp_path / "figures"
    figures.mkdir()
    partial = figures / f".accuracy_vs_sparsity.png.{_dead_pid()}.x1y2.png"
    partial.write_bytes(b"\x89PNG partial")
    result = run_cli("report", tmp_path, "--no-figures")
    assert result.code == 0, result.err
    assert not partial.exists()


@pytest.mark.parametrize("umask", [0o002, 0o077])
def test_every_run_file_follows_the_umask(tmp_path, run_cli, umask):
    old = os.umask(umask)
    try:
        result = run_cli("run", *TINY_RUN, "--out", tmp_path / "r")
    finally:
        os.umask(old)
    assert result.code == 0, result.err
    modes = {p.name: oct(p.stat().st_mode & 0o777) for p in (tmp_path / "r").iterdir()}
    assert set(modes.values()) == {oct(0o666 & ~umask)}, modes
    assert {rundir.SUMMARY, rundir.CONFIG, rundir.CHECKPOINT, rundir.METRICS} <= set(modes)


# ------------------------------------------------------------ smaller


def test_report_escapes_html_and_spreadsheet_formulas_from_run_names(finished, tmp_path, run_cli):
    copy_run(finished, tmp_path / "<img src=x onerror=alert(1)>")
    (tmp_path / "<img src=x onerror=alert(1)>" / rundir.SUMMARY).unlink()  # listed under Problems by name
    copy_run(finished, tmp_path / "=1+2")
    result = run_cli("report", tmp_path, "--no-figures", "--format", "csv")
    assert result.code == 0, result.err
    markdown = (tmp_path / "report.md").read_text()
    assert "- &lt;img src=x onerror=alert(1)&gt;: incomplete" in markdown and "<img" not in markdown
    assert "<img src=x" not in (tmp_path / "report.html").read_text()
    with open(tmp_path / "report.csv", newline="") as handle:
        assert [row["run"] for row in csv.DictReader(handle)] == ["'=1+2"]


def test_duplicate_yaml_keys_are_refused(here, run_cli):
    (here / "c.yaml").write_text("epochs: 1\nepochs: 50\n")
    refused(untouched(run_cli, here, "run", "--config", "c.yaml", *TINY), "duplicate key 'epochs'", "line 2")
    (here / "spec.yaml").write_text("seeds: [0]\nsettings: {epochs: 1}\nseeds: [1]\n")
    refused(untouched(run_cli, here, "matrix", "spec.yaml", "--dry-run"), "duplicate key 'seeds'", "line 3")


def test_yaml_merge_keys_may_still_be_overridden(here, run_cli):
    (here / "spec.yaml").write_text("settings:\n  <<: {epochs: 3, batch_size: 8}\n  epochs: 1\nseeds: [0]\n")
    result = run_cli("matrix", "spec.yaml", "--dry-run")
    assert result.code == 0, result.err


@pytest.mark.parametrize("flag", ["--model", "--out"])
def test_a_newline_in_a_name_is_one_line(here, run_cli, flag):
    line = refused(untouched(run_cli, here, "run", *TINY_RUN, flag, "lenet5\nInjected: yes"))
    assert "lenet5\\nInjected: yes" in line


def test_sample_interval_has_a_lower_bound(here, run_cli):
    refused(untouched(run_cli, here, "run", *TINY_RUN, "--sample-interval", "1e-300"), "at least 0.01 s")


@pytest.mark.parametrize("flag", ["--pruner", "--out", "--model"])
def test_an_empty_name_is_refused_not_the_default(here, run_cli, flag):
    refused(untouched(run_cli, here, "run", *TINY_RUN, flag, ""), f"{flag} must be a non-empty name")


def test_a_second_ctrl_c_while_exiting_prints_no_traceback(tmp_path):
    command = [sys.executable, "-m", "prunekit.cli", "run", *TINY, "--epochs", "100000", "--out", str(tmp_path / "r")]
    child = subprocess.Popen(command, stderr=subprocess.PIPE, text=True, env=os.environ | {"OMP_NUM_THREADS": "1"})
    assert child.stderr is not None
    first = child.stderr.readline()  # the first epoch's line: imports done, training under way
    assert first.startswith("epoch 1/"), first
    while child.poll() is None:  # Ctrl-C held down: the exit handlers run under a stream of SIGINTs
        child.send_signal(signal.SIGINT)
        try:
            child.wait(timeout=0.02)
        except subprocess.TimeoutExpired:
            pass
    rest = child.stderr.read()
    assert child.returncode == 130 and "Traceback" not in rest, rest
