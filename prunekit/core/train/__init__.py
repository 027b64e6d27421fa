"""The training step and the test pass: :mod:`.training` (one epoch of optimizer steps),
:mod:`.evaluation` (the test split), :mod:`.optim` (what an optimizer plugin returns),
:mod:`.preemption` (stop requests checked after each step), :mod:`.parts` (``Built``, ``Autocast``),
:mod:`.forward` (the module training calls: channels_last inputs, ``torch.compile``)."""
