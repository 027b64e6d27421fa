"""What a run measures about memory: :mod:`.sampling` (the sampler protocol and its thread),
:mod:`.device_sampler` (the GPU vendor sampler skeleton), :mod:`.ledger` (exact bytes kept),
:mod:`.flops` (FLOPs, dense and over nonzero weights, by ``torch.utils.flop_counter``)."""
