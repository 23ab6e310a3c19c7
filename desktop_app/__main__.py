"""``python -m desktop_app``: the tray app, as the ``rma-desktop`` command starts it.

Start at login uses this form where no ``rma-desktop`` script can be found (see
:func:`desktop_app.agent.autostart.launch_command`).
"""

from __future__ import annotations

import sys

from desktop_app.main import main

if __name__ == "__main__":
    sys.exit(main())
