"""``rma-desktop``: the volunteer's tray app."""

from __future__ import annotations

import sys


def main() -> int:
    """Say plainly that the tray app is not built yet, and what to use meanwhile."""
    print(
        "The RMA Compute tray app is not built yet. Meanwhile, run the headless worker:\n"
        "    rma-worker --coordinator https://your-coordinator\n"
        "(rma-worker --help lists its options.)",
        file=sys.stderr,
    )
    return 1


if __name__ == "__main__":
    sys.exit(main())
