"""``prunekit report``: tables and figures from run directories.

- :mod:`prunekit.report.load`: read run directories (incomplete or malformed ones are reported, not fatal);
- :mod:`prunekit.report.table`: rows per method and target sparsity, the flat per-run table;
- :mod:`prunekit.report.memory`: measured memory figures, the exact ledger, what accuracy per 100 MiB divides by;
- :mod:`prunekit.report.stats`: row means, their seed-level and test-set variance, the one-seed interval;
- :mod:`prunekit.report.best`: multiple comparisons with the best (family-wise, the choice of the best included);
- :mod:`prunekit.report.compare`: intervals, ties with the best and shared ranks per table;
- :mod:`prunekit.report.findings`: the report's opening Findings;
- :mod:`prunekit.report.export`: ``report.csv`` and ``report.json``;
- :mod:`prunekit.report.document`: Markdown and HTML rendering;
- :mod:`prunekit.report.figures`: PNG figures (matplotlib, Agg, imported lazily);
- :mod:`prunekit.report.build`: writes it all.
"""

from prunekit.report.build import Report, build_report

__all__ = ["Report", "build_report"]
