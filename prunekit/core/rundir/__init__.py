"""The run directory: :mod:`.layout` (file names, summary schema, the reader and writer),
:mod:`.checkpoint` (checkpoints), :mod:`.outcomes` (per-example results), :mod:`.files` (atomic writes)."""
