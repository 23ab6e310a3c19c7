"""``rma-desktop``: the volunteer's tray app (and its ``--self-test``)."""

from __future__ import annotations

import sys
from collections.abc import Sequence

from desktop_app.self_test import QT_PROBE_FLAG, SELF_TEST_FLAG


def main(argv: Sequence[str] | None = None) -> int:
    """Start the tray app (see :mod:`desktop_app.ui.app`), or run the self-test.

    The self-test is chosen before Qt is imported: it must report a missing or broken Qt
    rather than fail on it.
    """
    arguments = list(sys.argv[1:] if argv is None else argv)
    if SELF_TEST_FLAG in arguments:
        from desktop_app.self_test import main as self_test

        return self_test(arguments)
    try:
        if QT_PROBE_FLAG in arguments:
            from desktop_app.ui.qt_probe import main as qt_probe

            return qt_probe()
        from desktop_app.ui.app import main as run_app
    except ImportError as exc:  # installed without the desktop extra
        print(
            f"The RMA Compute tray app needs PySide6 ({exc}). Install it with:\n"
            "    pip install 'rma-compute-pool[desktop]'\n"
            "or run the headless worker instead: rma-worker --help",
            file=sys.stderr,
        )
        return 1
    return run_app(arguments)


if __name__ == "__main__":
    sys.exit(main())
