"""Byte sizes and counts: real unit arithmetic, and never an exception."""

from __future__ import annotations

import math
from decimal import Decimal, localcontext

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from shared.units import MAX_BYTES, MAX_COUNT, format_bytes, parse_bytes, parse_count

GIB = 1024**3
MIB = 1024**2

FAST = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])

_json_scalars = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text()
)
_numberish_text = st.text(alphabet="0123456789.,eE+-_ \t\nkKmMgGtTpPiIbB٣²Ⅻ()", max_size=20)
anything = st.recursive(
    _json_scalars | _numberish_text | st.binary() | st.decimals() | st.fractions(),
    lambda children: (
        st.lists(children, max_size=3)
        | st.tuples(children)
        | st.dictionaries(st.text(max_size=5), children, max_size=3)
        | st.sets(st.integers(), max_size=3)
    ),
    max_leaves=6,
)


@st.composite
def unit_spellings(draw: st.DrawFn) -> tuple[int, str]:
    """A binary unit in any case, with an optional space and optional "iB" form."""
    exponent = draw(st.integers(min_value=0, max_value=4))
    base = ["B", "KB", "MB", "GB", "TB"][exponent]
    forms = [base] if exponent == 0 else [base, base[0] + "iB"]
    unit = draw(st.sampled_from(forms))
    lowers = draw(st.lists(st.booleans(), min_size=len(unit), max_size=len(unit)))
    unit = "".join(c.lower() if lower else c.upper() for c, lower in zip(unit, lowers, strict=True))
    space = draw(st.sampled_from(["", " "]))
    return exponent, space + unit


non_negative_decimals = st.one_of(
    st.decimals(min_value=0, max_value=10**20, allow_nan=False, allow_infinity=False),
    st.decimals(min_value=0, max_value=10**6, places=3),
    st.integers(min_value=0, max_value=10**20).map(Decimal),
    st.integers(min_value=0, max_value=10**6).map(lambda i: Decimal(i) / 2),  # half-way cases
).map(lambda d: d.copy_abs())  # no "-0"


def exact_bytes(number: Decimal, exponent: int) -> int | None:
    """The expected result, computed with enough precision to be exact."""
    with localcontext(prec=len(str(number)) + 60):
        size = number * 1024**exponent
        return round(size) if size <= MAX_BYTES else None


# --- never raises -------------------------------------------------------------------------


@FAST
@given(anything)
def test_parse_bytes_never_raises(value: object) -> None:
    result = parse_bytes(value)
    assert result is None or (type(result) is int and 0 <= result <= MAX_BYTES)


@FAST
@given(anything)
def test_parse_count_never_raises(value: object) -> None:
    result = parse_count(value)
    assert result is None or (type(result) is int and 0 <= result <= MAX_COUNT)


@pytest.mark.parametrize(
    "value",
    [
        "1" * 5000,  # int() refuses strings over 4300 digits
        "1" * 5000 + "GB",
        "1" + "0" * 1_000_001 + "B",  # a Decimal past the default context's Emax
        "0." + "0" * 1_000_001 + "1GB",
        "9" * 100 + "." + "9" * 100 + "PB",
        "\x00",
        "\u0663GB",  # Arabic-Indic digit
        "²GB",
        object(),
        b"64GB",
        bytearray(b"1"),
        Decimal("NaN"),
        Decimal("Infinity"),
        complex(1, 0),
    ],
    ids=repr,
)
def test_pathological_inputs_do_not_raise(value: object) -> None:
    for parse, limit in ((parse_bytes, MAX_BYTES), (parse_count, MAX_COUNT)):
        result = parse(value)
        assert result is None or 0 <= result <= limit


# --- parse_bytes: unit arithmetic --------------------------------------------------------


@FAST
@given(non_negative_decimals, unit_spellings())
def test_number_with_unit_is_exact_binary_arithmetic(
    number: Decimal, unit: tuple[int, str]
) -> None:
    exponent, spelling = unit
    text = f"{number:f}{spelling}"
    assert parse_bytes(text) == exact_bytes(number, exponent), text


@FAST
@given(non_negative_decimals)
def test_number_without_unit_is_bytes(number: Decimal) -> None:
    assert parse_bytes(f"{number:f}") == exact_bytes(number, 0)


@given(st.integers(min_value=0, max_value=MAX_BYTES))
def test_plain_int_is_bytes(size: int) -> None:
    assert parse_bytes(size) == size


@given(st.floats(min_value=0, max_value=MAX_BYTES, allow_nan=False, allow_infinity=False))
def test_plain_float_is_bytes_rounded(size: float) -> None:
    assert parse_bytes(size) == round(size)


@given(st.integers(min_value=MAX_BYTES + 1))
def test_int_above_max_is_unknown(size: int) -> None:
    assert parse_bytes(size) is None
    assert parse_bytes(str(size)) is None


@given(st.integers(max_value=-1))
def test_negative_int_is_unknown(size: int) -> None:
    assert parse_bytes(size) is None
    assert parse_bytes(float(size)) is None


def test_max_bytes_boundary() -> None:
    assert parse_bytes(MAX_BYTES) == MAX_BYTES
    assert parse_bytes(float(MAX_BYTES)) == MAX_BYTES
    assert parse_bytes(str(MAX_BYTES)) == MAX_BYTES
    assert parse_bytes("4096PB") == MAX_BYTES  # 4 EiB exactly
    assert parse_bytes("4096PiB") == MAX_BYTES
    assert parse_bytes("4096.001PB") is None
    assert parse_bytes(MAX_BYTES + 1) is None
    assert parse_bytes(float(MAX_BYTES) * 2) is None
    assert parse_bytes(f"{MAX_BYTES + 1}B") is None
    assert parse_bytes("1e300") is None


@pytest.mark.parametrize(
    "value",
    [
        "Unknown (AMD)",
        "",
        "   ",
        "GB",
        "-5GB",
        "-5",
        "+5GB",
        "1e3GB",
        "1E3",
        "12 parsecs",
        "5 XB",
        "1,024MB",
        "1_000",
        "1.2.3GB",
        "..5GB",
        ".",
        "5GB extra",
        "5 G B",
        "GB5",
        None,
        True,
        False,
        math.nan,
        math.inf,
        -math.inf,
        -0.5,
        -1,
        [],
        ["64GB"],
        {"size": "64GB"},
    ],
    ids=repr,
)
def test_not_a_size_is_unknown(value: object) -> None:
    assert parse_bytes(value) is None


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        # The seed agents' strings, which digit stripping once read as 627 and 24564 GiB.
        ("62.7GB", round(Decimal("62.7") * GIB)),
        ("24564MB", 24564 * MIB),
        ("94GB", 94 * GIB),
        ("64.0GB", 64 * GIB),
        ("1024.5GB", round(Decimal("1024.5") * GIB)),
        # Other spellings.
        ("0", 0),
        ("0GB", 0),
        ("512", 512),
        ("512B", 512),
        ("1K", 1024),
        ("1kb", 1024),
        ("1 KiB", 1024),
        ("1G", GIB),
        ("1 gib", GIB),
        ("2TB", 2 * 1024**4),
        ("1PB", 1024**5),
        ("1 PiB", 1024**5),
        (".5KB", 512),
        ("5.KB", 5 * 1024),
        ("  8 GB  ", 8 * GIB),
        ("8\tGB", 8 * GIB),
        # Rounding to the nearest byte, ties to even, with no precision lost on the way.
        ("0.5B", 0),
        ("1.5B", 2),
        ("2.5B", 2),
        ("0.0001KB", 0),
        ("1.4999999999999999999999999999B", 1),
        ("1.49999999999999999999999999999999999B", 1),
        ("1.50000000000000000000000000000000001B", 2),
    ],
)
def test_known_sizes(text: str, expected: int) -> None:
    assert parse_bytes(text) == expected


def test_seed_regressions_are_not_digit_stripped() -> None:
    ram = parse_bytes("62.7GB")
    assert ram is not None
    assert ram != 627
    assert 62 * GIB < ram < 63 * GIB
    assert ram == 67_323_612_365  # 62.7 * 1024**3 = 67323612364.8, rounded

    gpu = parse_bytes("24564MB")
    assert gpu is not None
    assert gpu == 24564 * 1024**2 == 25_757_220_864
    assert gpu < 24 * GIB
    assert gpu != 24564 * GIB

    assert parse_bytes("94GB") == 94 * GIB == 100_931_731_456


# --- parse_count -------------------------------------------------------------------------


@given(st.integers(min_value=0, max_value=MAX_COUNT))
def test_count_accepts_ints_digit_strings_and_integral_floats(count: int) -> None:
    assert parse_count(count) == count
    assert parse_count(str(count)) == count
    assert parse_count(f"  {count}\n") == count
    assert parse_count(float(count)) == count


@pytest.mark.parametrize(
    "value",
    [
        MAX_COUNT + 1,
        str(MAX_COUNT + 1),
        -1,
        "-1",
        "+1",
        16.5,
        "16.0",
        "16 cores",
        "1e3",
        "",
        "\u0661\u0666",  # Arabic-Indic "16"
        "²",
        math.nan,
        math.inf,
        True,
        False,
        None,
        [16],
        "1" * 5000,
    ],
    ids=repr,
)
def test_count_rejects(value: object) -> None:
    assert parse_count(value) is None


def test_count_leading_zeros() -> None:
    assert parse_count("016") == 16
    assert parse_count("0" * 50 + "16") == 16
    assert parse_count("0" * 5000) == 0


# --- format_bytes ------------------------------------------------------------------------


def test_format_bytes_examples() -> None:
    assert format_bytes(None) == "unknown"
    assert format_bytes(0) == "0 B"
    assert format_bytes(1023) == "1023 B"
    assert format_bytes(1024) == "1.0 KiB"
    assert format_bytes(parse_bytes("62.7GB")) == "62.7 GiB"
    assert format_bytes(24564 * MIB) == "24.0 GiB"
    assert format_bytes(MAX_BYTES) == "4096.0 PiB"


@given(st.integers(min_value=0, max_value=MAX_BYTES))
def test_format_bytes_round_trips_approximately(size: int) -> None:
    text = format_bytes(size)
    parsed = parse_bytes(text)
    assert parsed is not None, text
    if size < 1024:
        assert parsed == size
    else:
        # One decimal place of a unit that is at most 1/1024 of the size: within 5 %.
        assert abs(parsed - size) <= 0.05 * size + 1, text
