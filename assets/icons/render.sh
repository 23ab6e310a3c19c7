#!/bin/sh
# Render the PNG icons from the SVG sources in this folder, and pack the app icon for
# Windows (app.ico) and macOS (app.icns).
# Usage: sh assets/icons/render.sh   (from anywhere)
# Uses rsvg-convert (apt-get install librsvg2-bin) if present, else ImageMagick; ImageMagick
# writes app.ico, and pack_icns.py (Python's standard library only) writes app.icns.
set -eu
cd "$(dirname "$0")"

render() { # render SRC.svg SIZE OUT.png
  if command -v rsvg-convert >/dev/null 2>&1; then
    rsvg-convert -w "$2" -h "$2" "$1" -o "$3"
  else
    convert -background none -density 384 "$1" -resize "$2x$2" "$3"
  fi
}

# The app icon at every size a desktop, the Windows shell and Finder ask for.
for size in 16 24 32 48 64 128 256 512 1024; do
  render app.svg "$size" "app-$size.png"
done
for state in contributing paused waiting attention; do
  render "tray-$state.svg" 22 "tray-$state-22.png"
  render "tray-$state.svg" 44 "tray-$state-44.png"
done
convert app-16.png app-24.png app-32.png app-48.png app-64.png app-128.png app-256.png app.ico
python3 pack_icns.py app.icns
echo "rendered PNGs, app.ico and app.icns in $(pwd)"
