import pytest

from prunekit.core.config.options import Option, parse_pairs, resolve_options
from prunekit.errors import UsageError

DECLARED = (
    Option("scope", str, "global", choices=("global", "layer")),
    Option("eps", float, 1e-8, minimum=0.0),
    Option("steps", int, 3, minimum=1),
    Option("fast", bool, False),
)


def test_defaults_and_conversion():
    got = resolve_options(DECLARED, {"eps": "0.5", "steps": "7", "fast": "yes"}, "pruner 'x'")
    assert got == {"scope": "global", "eps": 0.5, "steps": 7, "fast": True}


@pytest.mark.parametrize(
    "given, message",
    [
        ({"scope": "world"}, "must be one of: global, layer"),
        ({"eps": "tiny"}, "must be float"),
        ({"steps": "2.5"}, "must be int"),
        ({"steps": "0"}, "at least 1"),
        ({"fast": "maybe"}, "must be bool"),
        ({"colour": "red"}, "Unknown option 'colour' for pruner 'x'. Valid options: scope, eps, steps, fast."),
    ],
)
def test_bad_values_name_the_problem(given, message):
    with pytest.raises(UsageError, match=message.replace(".", r"\.").replace("(", r"\(")):
        resolve_options(DECLARED, given, "pruner 'x'")


def test_parse_pairs():
    assert parse_pairs(["a=1", " b = two "], "--x") == {"a": "1", "b": "two"}
    with pytest.raises(UsageError, match="--x expects key=value, got 'novalue'"):
        parse_pairs(["novalue"], "--x")


def test_exclusive_lower_bound():
    eps = (Option("eps", float, 1e-8, above=0.0),)
    assert resolve_options(eps, {"eps": "1e-6"}, "pruner 'x'") == {"eps": 1e-6}
    for bad in ("0", "-1"):
        with pytest.raises(UsageError, match="must be greater than 0.0"):
            resolve_options(eps, {"eps": bad}, "pruner 'x'")


def test_inclusive_upper_bound():
    alpha = (Option("alpha", float, 0.3, minimum=0.0, maximum=1.0),)
    assert resolve_options(alpha, {"alpha": "1"}, "pruner 'x'") == {"alpha": 1.0}
    with pytest.raises(UsageError, match=r"Option 'alpha' of pruner 'x' must be at most 1.0, got '1.5'\."):
        resolve_options(alpha, {"alpha": "1.5"}, "pruner 'x'")


@pytest.mark.parametrize("bad", ["nan", "inf", "-inf"])
def test_numbers_must_be_finite(bad):
    eps = (Option("eps", float, 1e-8, above=0.0),)
    with pytest.raises(UsageError, match=f"^Option 'eps' of pruner 'x' must be a finite number, got '{bad}'.$"):
        resolve_options(eps, {"eps": bad}, "pruner 'x'")
