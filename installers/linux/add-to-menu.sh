#!/bin/sh
# Portable RMA Compute: add it to your applications menu (for you only), or take it out.
# Usage: ./add-to-menu.sh [--remove]
# The entry points at this folder; run it again after moving the folder.
set -eu
HERE="$(cd "$(dirname "$0")" && pwd)"
DATA="${XDG_DATA_HOME:-$HOME/.local/share}"
ENTRY="$DATA/applications/rma-desktop.desktop"

if [ "${1:-}" = "--remove" ]; then
    rm -f "$ENTRY"
    for size in 16 24 32 48 64 128 256 512; do
        rm -f "$DATA/icons/hicolor/${size}x${size}/apps/rma-desktop.png"
    done
    rm -f "$DATA/icons/hicolor/scalable/apps/rma-desktop.svg"
    if command -v update-desktop-database >/dev/null 2>&1; then
        update-desktop-database -q "$DATA/applications" || true
    fi
    echo "RMA Compute is no longer in your applications menu."
    exit 0
fi

case "$HERE" in
    *%*)
        # The specification allows %% in Exec, but GLib (GNOME) refuses to load such an entry.
        echo "add-to-menu.sh: menus cannot start a program from a folder whose path has a %" >&2
        echo "in it ($HERE); move the folder and run this again." >&2
        exit 1
        ;;
esac

# The Exec key's quoting (Desktop Entry Specification, "The Exec key"): the path in double
# quotes, with \ " ` and $ escaped by a backslash, then every backslash doubled again for the
# key-file string layer, and % written %%.
quoted=$(printf '%s' "$HERE/rma-compute" | sed -e 's/[\\"`$]/\\&/g' -e 's/\\/\\\\/g' -e 's/%/%%/g')
mkdir -p "$DATA/applications"
cp -R "$HERE/share/icons" "$DATA/"
# (and for sed's replacement text: | & and \ escaped once more)
replacement=$(printf '%s' "$quoted" | sed 's/[|&\\]/\\&/g')
# TryExec is a plain string: only the key-file layer (backslashes doubled). With it, menus
# hide the entry once the folder is deleted.
try_exec=$(printf '%s' "$HERE/rma-compute" | sed -e 's/\\/\\\\/g' -e 's/[|&\\]/\\&/g')
sed -e "s|^Exec=rma-desktop|TryExec=$try_exec\nExec=\"$replacement\"|" \
    "$HERE/share/applications/rma-desktop.desktop" > "$ENTRY"
if command -v desktop-file-validate >/dev/null 2>&1; then
    desktop-file-validate "$ENTRY"
fi
if command -v update-desktop-database >/dev/null 2>&1; then
    update-desktop-database -q "$DATA/applications" || true
fi
echo "RMA Compute is in your applications menu ($ENTRY)."
