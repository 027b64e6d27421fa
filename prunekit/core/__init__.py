"""prunekit's core, one subpackage per concern. Higher layers may import lower ones, never the
reverse (the ``layers`` contract in pyproject.toml, checked by tests/test_architecture.py):

- ``run/``         a run from validation to summary: runner, building, epochs, resume, launch, ...
- ``plugins/``     the hook definitions, loading plugins, the registry and each kind's checks
- ``train/``       one epoch of optimizer steps and one test pass, and the parts they work on
- ``measure/``     memory samplers and the exact byte ledger
- ``tracking/``    the tracker protocol, running trackers off the training thread, redaction
- ``data/``        what a dataset returns, the batch loaders, per-rank shards, epoch order
- ``sparsity/``    the pruner protocol, masks, thresholds, targets, layer-wise distribution, schedules
- ``distributed/`` DDP collectives under torchrun and each rank's checkpoint state
- ``rundir/``      the run directory's files, checkpoints, atomic writes
- ``config/``      what users set: the run's settings and the options plugins declare
"""
