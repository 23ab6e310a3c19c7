"""Reading a service catalogue file (JSON or TOML) into a :class:`shared.ServiceCatalog`.

A catalogue that cannot be read or does not validate is an error that names the file and
every bad field (``services[2].port: Input should be less than or equal to 65535``); the
coordinator refuses to start rather than run with a half-understood catalogue.
"""

from __future__ import annotations

import json
import tomllib
from collections.abc import Sequence
from importlib import resources
from importlib.resources.abc import Traversable
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from shared import ServiceCatalog

DEFAULT_CATALOG: Traversable = resources.files("coordinator.catalog").joinpath("default.toml")
"""The catalogue shipped with the coordinator, used when no ``--catalog`` is given."""

_PARSERS = {".json": "JSON", ".toml": "TOML"}


class CatalogError(Exception):
    """The catalogue file could not be used; :attr:`problems` says why, one line each."""

    def __init__(self, source: str, problems: Sequence[str]) -> None:
        self.source = source
        self.problems = list(problems)
        super().__init__(self.describe())

    def describe(self) -> str:
        """The file and each problem, on its own line, for people."""
        lines = [f"The service catalogue {self.source} cannot be used:"]
        lines.extend(f"  {problem}" for problem in self.problems)
        return "\n".join(lines)


def field_path(location: Sequence[int | str]) -> str:
    """Write a pydantic error location the way the file spells it: ``services[2].port``."""
    text = ""
    for part in location:
        if isinstance(part, int):
            text += f"[{part}]"
        else:
            text += f".{part}" if text else str(part)
    return text or "(the whole file)"


def parse_catalog(text: str, kind: str, source: str) -> ServiceCatalog:
    """Parse catalogue text of ``kind`` (``"JSON"`` or ``"TOML"``).

    Raises:
        CatalogError: The text does not parse or does not validate.
    """
    data: Any
    try:
        data = json.loads(text) if kind == "JSON" else tomllib.loads(text)
    except json.JSONDecodeError as exc:
        raise CatalogError(
            source, [f"not valid JSON: {exc.msg} (line {exc.lineno}, column {exc.colno})"]
        ) from exc
    except tomllib.TOMLDecodeError as exc:
        raise CatalogError(source, [f"not valid TOML: {exc}"]) from exc
    try:
        return ServiceCatalog.model_validate(data)
    except ValidationError as exc:
        raise CatalogError(
            source, [f"{field_path(error['loc'])}: {error['msg']}" for error in exc.errors()]
        ) from exc


def load_catalog(path: Path | None = None) -> ServiceCatalog:
    """Load the catalogue at ``path``, or the built-in one when ``path`` is None.

    The file's extension, ``.json`` or ``.toml``, says how to read it.

    Raises:
        CatalogError: The file is missing, unreadable, of another format, or invalid.
    """
    if path is None:
        return parse_catalog(DEFAULT_CATALOG.read_text(encoding="utf-8"), "TOML", "(built-in)")
    source = str(path)
    kind = _PARSERS.get(path.suffix.lower())
    if kind is None:
        raise CatalogError(
            source, ["the file name must end in .json or .toml, which says how to read it"]
        )
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError as exc:
        raise CatalogError(source, ["the file does not exist"]) from exc
    except UnicodeDecodeError as exc:
        raise CatalogError(source, [f"the file is not UTF-8 text ({exc.reason})"]) from exc
    except OSError as exc:
        raise CatalogError(source, [f"the file cannot be read: {exc.strerror or exc}"]) from exc
    return parse_catalog(text, kind, source)
