"""``--quick`` for benchmark scripts: the same measurement with smaller counts.

Each script names its own quick settings (argparse defaults); options given
explicitly on the command line still win. ``benchmarks/run.py --quick`` passes
``--quick`` to every script.
"""

from __future__ import annotations

import argparse
import sys


def parse_args(parser: argparse.ArgumentParser, quick: dict, argv: list[str] | None = None) -> argparse.Namespace:
    """Parse ``argv`` with ``quick`` as the defaults when ``--quick`` is among them."""
    argv = sys.argv[1:] if argv is None else argv
    shown = ", ".join(f"{k.replace('_', '-')}={v}" for k, v in quick.items())
    parser.add_argument("--quick", action="store_true", help=f"a short run for make bench QUICK=1 ({shown})")
    if "--quick" in argv:
        parser.set_defaults(**quick)
    return parser.parse_args(argv)
