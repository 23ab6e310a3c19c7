"""The base of every error a volunteer can meet: a short title and a plain sentence.

The tray app maps each to one line and, where there is one, the action that fixes it.
"""

from __future__ import annotations


class AgentError(Exception):
    """Something went wrong that a person should be told about.

    Attributes:
        title: A short heading for people.
        message: A plain sentence saying what went wrong and what to do.
    """

    def __init__(self, title: str, message: str) -> None:
        """Create the error.

        Args:
            title: A short heading for people.
            message: A plain sentence saying what went wrong and what to do.
        """
        super().__init__(f"{title}: {message}")
        self.title = title
        self.message = message
