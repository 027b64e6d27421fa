"""Test helpers for prunekit and its plugins (public, importable by third parties).

- :mod:`prunekit.testing.sampler_conformance`: checks every sampler must pass.
- :mod:`prunekit.testing.pruner_conformance`: checks every pruner must pass.
- :mod:`prunekit.testing.tracker_conformance`: checks every tracker must pass;
  :mod:`prunekit.testing.tracker_samples`: the events it sends, to compare a tracker's output with.
- :mod:`prunekit.testing.runs`: a real, short run in-process (``short_run``), or the
  command line of one in a child process (``short_run_command``).
- :mod:`prunekit.testing.provenance`: a plugin is found through its installed entry point.
- :mod:`prunekit.testing.devices`: a fake GPU vendor library and the devices torch sees.
- :mod:`prunekit.testing.harness` (re-exported here): the core's pieces a plugin's
  tests drive (``load_plugins``, ``resolve_options``, ``LeNet5``, ``prunable_targets``...),
  so that plugin tests import only :mod:`prunekit.api` and :mod:`prunekit.testing`.

Nothing here is imported by prunekit itself at run time.
"""

from prunekit.testing.harness import *  # noqa: F403
from prunekit.testing.harness import __all__ as __all__
