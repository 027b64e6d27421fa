"""Test helpers for prunekit and its plugins (public, importable by third parties).

- :mod:`prunekit.testing.sampler_conformance`: checks every sampler must pass.
- :mod:`prunekit.testing.pruner_conformance`: checks every pruner must pass.
- :mod:`prunekit.testing.tracker_conformance`: checks every tracker must pass;
  :mod:`prunekit.testing.tracker_samples`: the events it sends, to compare a tracker's output with.
- :mod:`prunekit.testing.runs`: a real, short run in-process (``short_run``).
- :mod:`prunekit.testing.fake_pynvml`: a fake ``pynvml`` (nvidia-ml-py) module.
- :mod:`prunekit.testing.fake_amdsmi`: a fake ``amdsmi`` module.

The fakes are installed with ``monkeypatch.setitem(sys.modules, "pynvml", fake.module)``;
nothing here is imported by prunekit itself at run time.
"""
