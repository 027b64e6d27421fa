"""Sparsity schedules: how the target sparsity ramps up over optimizer steps.

Steps count completed optimizer steps (1 after the first ``optimizer.step()``).
With ``p = clip((step - warmup) / (end - warmup), 0, 1)``:

- ``gmp``: Zhu & Gupta (2017), ``s = s_f + (s_i - s_f) * (1 - p)**3`` (fast start, slow end);
- ``cubic``: the original AdamWPrune code, ``s = s_i + (s_f - s_i) * p**3`` (slow start, fast end);
- ``linear``: ``s = s_i + (s_f - s_i) * p``;
- ``constant``: ``s = s_f`` from the first step (sparse training and pruning at
  initialisation: RigL, SET, SNIP, random). Masks are set once, at step 0, before
  the first optimizer step; warm-up, end and frequency do not apply (0, 0, 1).
  A pruner may still change its masks on its own cadence (``Pruner.is_update_step``).

Masks are updated after step ``t`` when ``warmup < t <= end`` and
``(t - warmup) % frequency == 0``, and always at ``t == end`` so the final
sparsity is exactly the target.
"""

from __future__ import annotations

from dataclasses import dataclass

SCHEDULES = ("gmp", "cubic", "linear", "constant")


@dataclass(frozen=True)
class Schedule:
    """A sparsity ramp from ``initial`` at ``warmup`` to ``target`` at ``end``."""

    kind: str
    target: float
    warmup: int
    end: int
    frequency: int
    initial: float = 0.0

    def __post_init__(self) -> None:
        if self.kind not in SCHEDULES:
            raise ValueError(f"unknown schedule {self.kind!r}; valid: {', '.join(SCHEDULES)}")
        if self.frequency < 1:
            raise ValueError("frequency must be at least 1")
        if self.kind == "constant":
            if (self.warmup, self.end) != (0, 0):
                raise ValueError("the constant schedule has warmup = end = 0")
        elif self.warmup < 0 or self.end <= self.warmup:
            raise ValueError("need 0 <= warmup < end")

    @classmethod
    def constant(cls, target: float) -> Schedule:
        """The target from step 0 on."""
        return cls("constant", target, warmup=0, end=0, frequency=1)

    def progress(self, step: int) -> float:
        if self.kind == "constant":
            return 1.0
        p = (step - self.warmup) / (self.end - self.warmup)
        return min(1.0, max(0.0, p))

    def sparsity_at(self, step: int) -> float:
        """The scheduled sparsity after ``step`` optimizer steps."""
        p = self.progress(step)
        si, sf = self.initial, self.target
        if self.kind == "gmp":
            return sf + (si - sf) * (1.0 - p) ** 3
        if self.kind == "cubic":
            return si + (sf - si) * p**3
        return si + (sf - si) * p

    def is_update_step(self, step: int) -> bool:
        """Whether masks are recomputed after ``step`` optimizer steps (0: before the first)."""
        if self.kind == "constant":
            return step == 0
        if step <= self.warmup or step > self.end:
            return False
        return step == self.end or (step - self.warmup) % self.frequency == 0
