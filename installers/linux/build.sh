#!/usr/bin/env bash
# Build the Linux installers of the tray app from the PyInstaller one-folder build:
#
#   dist/installers/rma-compute_<version>_<arch>.deb           (Debian, Ubuntu, Mint…)
#   dist/installers/rma-compute-<version>-linux-<machine>.tar.gz  (portable: unpack and run)
#
# Usage: installers/linux/build.sh [--skip-freeze] [--autostart] [--out DIR]
#   --skip-freeze  package the existing dist/rma-compute instead of running PyInstaller
#   --autostart    also install /etc/xdg/autostart/rma-desktop.desktop, so the app starts at
#                  every user's login (for machines an organisation manages; a volunteer
#                  can still switch it off in the app, which masks it for them)
#   --out DIR      where the installers go (default dist/installers)
# Environment:
#   RMA_BUILD_DIR              where the frozen app and the staging folders go (default: the
#                              repository's dist/ and build/; the tests use a temporary one)
#   RMA_BUILD_COORDINATOR_URL  the pool address the app is preset with (see build.spec)
#   PYTHON                     the Python with the project and PyInstaller installed
#                              (default .venv/bin/python when it exists, else python3)
#   DEB_MAINTAINER             the package's Maintainer field
#
# Needs dpkg-deb (dpkg), readelf (binutils) and desktop-file-validate (desktop-file-utils).
set -euo pipefail

ROOT="$(cd "$(dirname "$0")/../.." && pwd)"
HERE="$ROOT/installers/linux"
freeze=1
autostart=0
if [ -n "${RMA_BUILD_DIR:-}" ]; then
    mkdir -p "$RMA_BUILD_DIR"
    dist="$(cd "$RMA_BUILD_DIR" && pwd)/dist"
    work_root="$(cd "$RMA_BUILD_DIR" && pwd)/build"
else
    dist="$ROOT/dist"
    work_root="$ROOT/build"
fi
out="$dist/installers"
while [ $# -gt 0 ]; do
    case "$1" in
        --skip-freeze) freeze=0 ;;
        --autostart) autostart=1 ;;
        --out) out="$(mkdir -p "$2" && cd "$2" && pwd)"; shift ;;
        -h|--help) sed -n '2,23p' "$0"; exit 0 ;;
        *) echo "build.sh: unknown option $1 (see --help)" >&2; exit 2 ;;
    esac
    shift
done

if [ -z "${PYTHON:-}" ]; then
    if [ -x "$ROOT/.venv/bin/python" ]; then PYTHON="$ROOT/.venv/bin/python"; else PYTHON=python3; fi
fi
for tool in dpkg-deb readelf desktop-file-validate; do
    command -v "$tool" >/dev/null || { echo "build.sh: $tool is missing (see the header)" >&2; exit 1; }
done

cd "$ROOT"
version="$("$PYTHON" -c 'import desktop_app; print(desktop_app.__version__)')"
# Debian sorts "~" before anything, so 0.1.0~rc1 comes before 0.1.0 (PEP 440's 0.1.0rc1).
deb_version="$(printf '%s' "$version" | sed -E 's/(a|b|rc|\.dev)([0-9]+)$/~\1\2/; s/~\.dev/~dev/')"
arch="$(dpkg --print-architecture)"
machine="$(uname -m)"
bundle="$dist/rma-compute"

if [ "$freeze" -eq 1 ]; then
    echo "==> PyInstaller (pool: ${RMA_BUILD_COORDINATOR_URL:-the default})"
    "$PYTHON" -m PyInstaller --noconfirm --log-level WARN \
        --distpath "$dist" --workpath "$work_root/pyinstaller" "$ROOT/build.spec"
fi
[ -x "$bundle/rma-compute" ] || { echo "build.sh: no app in $bundle; run without --skip-freeze" >&2; exit 1; }

desktop-file-validate "$HERE/rma-desktop.desktop" "$HERE/rma-desktop-autostart.desktop"
mkdir -p "$out"
work="$work_root/linux"
rm -rf "$work"
mkdir -p "$work"

# -- the files both installers carry ---------------------------------------------------------
# install_share DEST: the menu entry and the icons under DEST (a usr/share layout).
install_share() {
    install -D -m 0644 "$HERE/rma-desktop.desktop" "$1/applications/rma-desktop.desktop"
    for size in 16 24 32 48 64 128 256 512; do
        install -D -m 0644 "$ROOT/assets/icons/app-$size.png" \
            "$1/icons/hicolor/${size}x${size}/apps/rma-desktop.png"
    done
    install -D -m 0644 "$ROOT/assets/icons/app.svg" "$1/icons/hicolor/scalable/apps/rma-desktop.svg"
}

# -- .deb --------------------------------------------------------------------------------------
echo "==> .deb"
package="rma-compute_${deb_version}_${arch}"
root="$work/$package"
mkdir -p "$root/opt" "$root/usr/bin" "$root/DEBIAN"
cp -a "$bundle" "$root/opt/rma-compute"
# Relative, so the package also works unpacked under another root (dpkg --root, images).
ln -s ../../opt/rma-compute/rma-compute "$root/usr/bin/rma-desktop"
install_share "$root/usr/share"
install -D -m 0644 "$HERE/copyright" "$root/usr/share/doc/rma-compute/copyright"
if [ "$autostart" -eq 1 ]; then
    install -D -m 0644 "$HERE/rma-desktop-autostart.desktop" "$root/etc/xdg/autostart/rma-desktop.desktop"
    echo "/etc/xdg/autostart/rma-desktop.desktop" > "$root/DEBIAN/conffiles"
fi
install -m 0755 "$HERE/prerm" "$root/DEBIAN/prerm"
# Files 0644 and folders 0755 whatever the umask; the programs keep their x bits.
find "$root" -type d -exec chmod 0755 {} +
find "$root/opt" -type f -perm /111 -exec chmod 0755 {} +
find "$root/opt" -type f ! -perm /111 -exec chmod 0644 {} +

depends="$("$PYTHON" "$HERE/debian_depends.py" "$root/opt/rma-compute")"
installed_size="$(du -sk --exclude=DEBIAN "$root" | cut -f1)"
cat > "$root/DEBIAN/control" <<CONTROL
Package: rma-compute
Version: $deb_version
Architecture: $arch
Maintainer: ${DEB_MAINTAINER:-RMA Compute Pool <pool@rma.example.org>}
Installed-Size: $installed_size
Depends: $depends
Recommends: docker.io | docker-ce
Suggests: nvidia-container-toolkit
Section: utils
Priority: optional
Homepage: https://github.com/rma/compute-pool
Description: give this computer's spare power to the RMA Compute Pool
 RMA Compute runs in the system tray and lends this computer's spare CPU and
 GPU time to the RMA Compute Pool, which runs the AI services of a debt-advice
 organisation (language models, document reading, search). It runs the pool's
 work in Docker containers, only when the volunteer allows it: when the
 computer is idle, after hours, or whenever it is switched on.
 .
 Docker must be installed and running for the app to contribute.
CONTROL
dpkg-deb --root-owner-group -Zxz --build "$root" "$out/$package.deb" >/dev/null
echo "    $out/$package.deb ($(du -h "$out/$package.deb" | cut -f1))"

# -- portable tarball ----------------------------------------------------------------------
echo "==> tarball"
name="rma-compute-$version-linux-$machine"
portable="$work/$name"
cp -a "$bundle" "$portable"
install_share "$portable/share"
install -m 0755 "$HERE/add-to-menu.sh" "$portable/add-to-menu.sh"
install -m 0644 "$HERE/copyright" "$portable/COPYRIGHT"
cat > "$portable/README.txt" <<README
RMA Compute $version, portable

Run it:           ./rma-compute
Add it to the applications menu (for you only): ./add-to-menu.sh
Check this computer (for support): ./rma-compute --self-test
Docker must be installed and running for the app to contribute.
README
tar -C "$work" --owner=0 --group=0 --numeric-owner -czf "$out/$name.tar.gz" "$name"
echo "    $out/$name.tar.gz ($(du -h "$out/$name.tar.gz" | cut -f1))"
