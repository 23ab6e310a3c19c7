"""Base classes for every protocol message.

Two bases, because the two directions have different failure modes:

- :class:`RequestModel` is what an agent or admin sends. Unknown fields are refused, so a
  typo (``"current_lod"``) is a clear 422 instead of silently lost data.
- :class:`ResponseModel` is what the coordinator answers. Unknown fields are ignored, so an
  older agent keeps working when a newer coordinator adds fields.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import AfterValidator, BaseModel, ConfigDict, StringConstraints


def _no_nul(text: str) -> str:
    if "\x00" in text:
        raise ValueError("must not contain NUL characters")
    return text


ShortText = Annotated[
    str, StringConstraints(strip_whitespace=True, max_length=256), AfterValidator(_no_nul)
]
"""Free text from a peer (names, versions, models): bounded so a row cannot be bloated, and
without NUL characters, which PostgreSQL cannot store in text."""

WorkerId = Annotated[
    str,
    StringConstraints(
        strip_whitespace=True,
        to_lower=True,
        # The pattern is checked before to_lower applies, so it must admit upper case.
        pattern=r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$",
    ),
]
"""A worker's identity: a UUID in its canonical text form, chosen by the coordinator."""


class RequestModel(BaseModel):
    """A message sent to the coordinator; unknown fields are an error."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True, frozen=True)


class ResponseModel(BaseModel):
    """A message sent by the coordinator; unknown fields are ignored by older peers."""

    model_config = ConfigDict(extra="ignore", populate_by_name=True, frozen=True)
