"""Pack PNG renderings of the app icon into a macOS ``.icns`` file (render.sh runs it).

An ``.icns`` file is the magic ``icns``, the file's length, then one element per size: a
four-character type, the element's length (both big-endian, the length including its own
eight bytes) and the PNG data. The types below are the PNG-holding ones macOS 10.7 and later
read (Apple's "Icon Services" types; listed at https://en.wikipedia.org/wiki/Apple_Icon_Image_format).

Usage: python3 pack_icns.py OUT.icns  (reads app-<size>.png beside this script)
"""

from __future__ import annotations

import struct
import sys
from pathlib import Path

# type -> the PNG's pixel size
ELEMENTS = {
    "icp4": 16,
    "icp5": 32,
    "ic11": 32,  # 16 pt @2x
    "icp6": 64,
    "ic12": 64,  # 32 pt @2x
    "ic07": 128,
    "ic08": 256,
    "ic13": 256,  # 128 pt @2x
    "ic09": 512,
    "ic14": 512,  # 256 pt @2x
    "ic10": 1024,  # 512 pt @2x
}


def pack(folder: Path) -> bytes:
    """The ``.icns`` file made of ``folder``'s ``app-<size>.png`` files."""
    body = b""
    for kind, size in ELEMENTS.items():
        png = (folder / f"app-{size}.png").read_bytes()
        body += kind.encode("ascii") + struct.pack(">I", len(png) + 8) + png
    return b"icns" + struct.pack(">I", len(body) + 8) + body


if __name__ == "__main__":
    out = Path(sys.argv[1])
    out.write_bytes(pack(Path(__file__).resolve().parent))
