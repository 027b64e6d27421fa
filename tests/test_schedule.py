import pytest

from prunekit.core.sparsity.schedule import Schedule


def test_gmp_is_zhu_gupta_fast_start():
    s = Schedule("gmp", 0.8, warmup=10, end=110, frequency=10)
    assert s.sparsity_at(10) == 0.0
    assert s.sparsity_at(60) == pytest.approx(0.8 + (0.0 - 0.8) * 0.5**3)  # 0.7
    assert s.sparsity_at(110) == pytest.approx(0.8)
    assert s.sparsity_at(500) == pytest.approx(0.8)


def test_cubic_is_the_seed_slow_start():
    s = Schedule("cubic", 0.8, warmup=10, end=110, frequency=10)
    assert s.sparsity_at(60) == pytest.approx(0.8 * 0.5**3)  # 0.1
    assert s.sparsity_at(110) == pytest.approx(0.8)


def test_linear():
    s = Schedule("linear", 0.9, warmup=0, end=100, frequency=1)
    assert s.sparsity_at(25) == pytest.approx(0.225)


def test_update_steps_off_by_one_convention():
    # Steps count completed optimizer steps. No update at the warm-up step itself
    # (the schedule is 0 there), every `frequency` after it, and always at `end`.
    s = Schedule("gmp", 0.5, warmup=10, end=35, frequency=10)
    updates = [t for t in range(1, 60) if s.is_update_step(t)]
    assert updates == [20, 30, 35]
    assert s.sparsity_at(updates[-1]) == pytest.approx(0.5)


@pytest.mark.parametrize("kwargs", [dict(frequency=0), dict(warmup=5, end=5), dict(warmup=-1)])
def test_invalid_schedules(kwargs):
    args = dict(kind="gmp", target=0.5, warmup=0, end=10, frequency=1) | kwargs
    with pytest.raises(ValueError):
        Schedule(**args)


def test_constant_is_the_target_from_step_0_with_one_update_before_the_first_step():
    s = Schedule.constant(0.9)
    assert (s.warmup, s.end, s.frequency) == (0, 0, 1)
    assert [s.sparsity_at(t) for t in (0, 1, 500)] == [0.9, 0.9, 0.9]
    assert [t for t in range(0, 100) if s.is_update_step(t)] == [0]
    with pytest.raises(ValueError):
        Schedule("constant", 0.9, warmup=0, end=10, frequency=1)
