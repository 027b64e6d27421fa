"""The run directory: :mod:`.layout` (file names, summary schema, the reader and writer),
:mod:`.checkpoint` (checkpoints), :mod:`.checkpoint_schema` (what a checkpoint may hold, its digest),
:mod:`.outcomes` (per-example results), :mod:`.files` (atomic writes), :mod:`.runlock` (one process per run directory)."""
