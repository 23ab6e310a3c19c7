#!/bin/sh
# Render the PNG icons from the SVG sources in this folder.
# Usage: sh assets/icons/render.sh   (from anywhere)
# Uses rsvg-convert (apt-get install librsvg2-bin) if present, else ImageMagick.
set -eu
cd "$(dirname "$0")"

render() { # render SRC.svg SIZE OUT.png
  if command -v rsvg-convert >/dev/null 2>&1; then
    rsvg-convert -w "$2" -h "$2" "$1" -o "$3"
  else
    convert -background none -density 384 "$1" -resize "$2x$2" "$3"
  fi
}

render app.svg 256 app-256.png
render app.svg 512 app-512.png
for state in contributing paused waiting attention; do
  render "tray-$state.svg" 22 "tray-$state-22.png"
  render "tray-$state.svg" 44 "tray-$state-44.png"
done
echo "rendered PNGs in $(pwd)"
