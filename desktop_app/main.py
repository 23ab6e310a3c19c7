"""``rma-desktop``: the volunteer's tray app."""

from __future__ import annotations

import sys


def main(argv: list[str] | None = None) -> int:
    """Start the tray app (see :mod:`desktop_app.ui.app`)."""
    try:
        from desktop_app.ui.app import main as run_app
    except ImportError as exc:  # installed without the desktop extra
        print(
            f"The RMA Compute tray app needs PySide6 ({exc}). Install it with:\n"
            "    pip install 'rma-compute-pool[desktop]'\n"
            "or run the headless worker instead: rma-worker --help",
            file=sys.stderr,
        )
        return 1
    return run_app(argv)


if __name__ == "__main__":
    sys.exit(main())
