"""The data of a run: :mod:`.loaders` (what a dataset plugin returns, the batch loaders),
:mod:`.augment` (batched seeded transforms), :mod:`.sharded` (each rank's share under torchrun),
:mod:`.order` (what orders an epoch, saved in checkpoints, skipped on resume)."""
