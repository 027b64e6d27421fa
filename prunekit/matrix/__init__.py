"""``prunekit matrix``: run a grid of training runs from a YAML spec, resumably.

- :mod:`prunekit.matrix.spec`: read and check a spec (axes and shared settings);
- :mod:`prunekit.matrix.expand`: the grid as validated run configs, plus skipped pairs;
- :mod:`prunekit.matrix.hashing`: stable run ids;
- :mod:`prunekit.matrix.store`: the matrix directory (``matrix.json``, ``runs/``, ``logs/``);
- :mod:`prunekit.matrix.scheduler`: child processes, ``--jobs``, failure records;
- :mod:`prunekit.matrix.worker`: what each child runs;
- :mod:`prunekit.matrix.examples`: the specs shipped with prunekit.
"""

from prunekit.matrix.expand import Plan, PlannedRun, Skipped, expand
from prunekit.matrix.hashing import config_hash, run_id
from prunekit.matrix.spec import MatrixSpec, load_spec, parse_spec

__all__ = [
    "MatrixSpec",
    "Plan",
    "PlannedRun",
    "Skipped",
    "config_hash",
    "expand",
    "load_spec",
    "parse_spec",
    "run_id",
]
