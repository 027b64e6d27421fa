"""One run on several processes: :mod:`.ddp` (torchrun process group, collectives, the DDP
wrapper) and :mod:`.rank_state` (what each rank keeps in the one checkpoint)."""
