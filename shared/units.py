"""Parsing of capability values: byte sizes and counts, with real unit arithmetic.

The seed agents sent human strings such as ``"62.7GB"`` and ``"24564MB"``; the system we
replace read them by stripping non-digits (``"62.7GB"`` became 627). Here a value is either
parsed to an exact quantity or reported as unknown (``None``); parsing never raises.

Memory and disk sizes with ``KB``/``MB``/``GB``/``TB`` suffixes are read in binary (JEDEC)
units, powers of 1024, because that is how the seed agents computed them
(``psutil.virtual_memory().total / 1024**3`` printed as ``"GB"``, and NVML/GPUtil report
MiB). The explicit IEC suffixes (``KiB``, ``MiB``, ...) mean the same; SI prefixes written in
lower case (``kB``) are not special-cased.
"""

from __future__ import annotations

import math
import re
from decimal import MAX_EMAX, MIN_EMIN, ROUND_HALF_EVEN, Decimal, InvalidOperation, localcontext
from typing import Final

MAX_BYTES: Final = 2**62
"""Largest byte size accepted (4 EiB): beyond this a value is implausible, and it must fit a
signed 64-bit database column."""

MAX_COUNT: Final = 1_000_000
"""Largest count accepted (cores, GPUs): beyond this a value is implausible."""

_UNIT_EXPONENTS: Final[dict[str, int]] = {
    "": 0,
    "B": 0,
    "K": 1,
    "KB": 1,
    "KIB": 1,
    "M": 2,
    "MB": 2,
    "MIB": 2,
    "G": 3,
    "GB": 3,
    "GIB": 3,
    "T": 4,
    "TB": 4,
    "TIB": 4,
    "P": 5,
    "PB": 5,
    "PIB": 5,
}

_QUANTITY = re.compile(r"^\s*(?P<number>\d+(?:\.\d*)?|\.\d+)\s*(?P<unit>[A-Za-z]*)\s*$")


def parse_bytes(value: object) -> int | None:
    """Read a byte size from a number of bytes or a string such as ``"62.7GB"``.

    Args:
        value: An ``int``/``float`` number of bytes, or a string of a number and an optional
            unit (``B``, ``KB``, ``MB``, ``GB``, ``TB``, ``PB`` or their ``KiB``-style forms,
            any case).

    Returns:
        The size in whole bytes (rounded to the nearest byte), or ``None`` when the value is
        not a size: text such as ``"Unknown (AMD)"``, a negative or non-finite number, a
        boolean, or a size larger than :data:`MAX_BYTES`.
    """
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value if 0 <= value <= MAX_BYTES else None
    if isinstance(value, float):
        if not math.isfinite(value) or value < 0 or value > MAX_BYTES:
            return None
        return round(value)
    if not isinstance(value, str):
        return None
    match = _QUANTITY.match(value)
    if match is None:
        return None
    exponent = _UNIT_EXPONENTS.get(match["unit"].upper())
    if exponent is None:
        return None
    try:
        number = Decimal(match["number"])
    except InvalidOperation:  # pragma: no cover - the pattern admits only valid decimals
        return None
    if number > MAX_BYTES:
        return None
    # Exact arithmetic: the default context rounds to 28 digits (so "1.4999…9B" became 2)
    # and traps overflow (so a number of a million digits raised decimal.Overflow).
    digits = len(match["number"]) + 20
    with localcontext(prec=digits, Emax=MAX_EMAX, Emin=MIN_EMIN):
        size = number * (1024**exponent)
        if size > MAX_BYTES:
            return None
        return int(size.to_integral_value(rounding=ROUND_HALF_EVEN))


def parse_count(value: object) -> int | None:
    """Read a whole count (CPU cores, GPUs) from a number or a numeric string.

    Args:
        value: An ``int``, an integral ``float`` or a string of digits (``"16"``).

    Returns:
        The count, or ``None`` when the value is not a non-negative whole number no larger
        than :data:`MAX_COUNT`.
    """
    if isinstance(value, bool):
        return None
    if isinstance(value, float):
        if not math.isfinite(value) or not value.is_integer():
            return None
        value = int(value)
    elif isinstance(value, str):
        stripped = value.strip()
        if not stripped.isascii() or not stripped.isdigit():
            return None
        digits = stripped.lstrip("0") or "0"
        if len(digits) > len(str(MAX_COUNT)):
            return None  # too large; and int() refuses strings over 4300 digits
        value = int(digits)
    if not isinstance(value, int):
        return None
    return value if 0 <= value <= MAX_COUNT else None


def format_bytes(size: int | None) -> str:
    """Write a byte size for people, in binary units: ``"62.7 GiB"``, or ``"unknown"``."""
    if size is None:
        return "unknown"
    units = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"]
    amount = float(size)
    for unit in units:
        if amount < 1024 or unit == units[-1]:
            return f"{amount:.0f} {unit}" if unit == "B" else f"{amount:.1f} {unit}"
        amount /= 1024
    raise AssertionError("unreachable")  # pragma: no cover
