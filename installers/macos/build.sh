#!/usr/bin/env bash
# Build the macOS installer: dist/installers/rma-compute-<version>-macos-<arch>.dmg
#
#   bash installers/macos/build.sh [--skip-freeze]
#
# 1. PyInstaller freezes the tray app with build.spec into "dist/RMA Compute.app"
#    (--skip-freeze: package the .app that is already there).
# 2. codesign signs the bundle's nested code inside-out (deepest first), then the bundle, all
#    with the hardened runtime; the app gets entitlements.plist. The identity is
#    MACOS_SIGN_IDENTITY, or ad-hoc ("-") when unset: then the .dmg runs on this Mac but
#    Gatekeeper blocks it on others.
# 3. hdiutil makes a compressed (UDZO) disk image holding the app and an Applications link to
#    drag it onto.
# 4. With an identity the .dmg is signed; with notary credentials it is also notarized, and
#    the ticket stapled to it.
#
# Environment:
#   MACOS_SIGN_IDENTITY    "Developer ID Application: Name (TEAMID)" in the keychain.
#   MACOS_NOTARY_PROFILE   a notarytool keychain profile (xcrun notarytool store-credentials),
#   or APPLE_ID, APPLE_TEAM_ID, APPLE_APP_PASSWORD (an app-specific password), e.g. in CI.
#   RMA_BUILD_COORDINATOR_URL  read by build.spec: the frozen app's preset pool address.
#   PYTHON                 the interpreter with `pip install -e ".[desktop,build]"` done
#                          (default: .venv/bin/python when there is one, else python3).
#   RMA_DIST_DIR           PyInstaller's output folder, and where installers/ goes
#                          (default: <repository>/dist).
#
# Runs with macOS's own bash 3.2: no mapfile, no empty arrays under set -u.
set -euo pipefail

APP_NAME="RMA Compute"
VOLUME_NAME="RMA Compute"

die() {
    echo "error: $*" >&2
    exit 1
}

note() {
    echo "==> $*"
}

usage() {
    # The comment block at the top of this file.
    awk 'NR == 1 { next } /^#/ { sub(/^# ?/, ""); print; next } { exit }' "$0"
}

skip_freeze=0
for argument in "$@"; do
    case "$argument" in
        --skip-freeze) skip_freeze=1 ;;
        -h | --help)
            usage
            exit 0
            ;;
        *) die "unknown argument: $argument (see --help)" ;;
    esac
done

script_dir=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo_root=$(cd "$script_dir/../.." && pwd)
dist_dir=${RMA_DIST_DIR:-$repo_root/dist}
entitlements="$script_dir/entitlements.plist"
if [ -n "${PYTHON:-}" ]; then
    python=$PYTHON
elif [ -x "$repo_root/.venv/bin/python" ]; then
    python="$repo_root/.venv/bin/python"
else
    python=python3
fi

identity=${MACOS_SIGN_IDENTITY:-}

# Notarization credentials, checked before anything is built so that a misconfigured release
# fails in seconds rather than after the freeze.
notarize=0
notary_credentials=()
if [ -n "${MACOS_NOTARY_PROFILE:-}" ]; then
    notarize=1
    notary_credentials=(--keychain-profile "$MACOS_NOTARY_PROFILE")
elif [ -n "${APPLE_ID:-}${APPLE_TEAM_ID:-}${APPLE_APP_PASSWORD:-}" ]; then
    missing=""
    for variable in APPLE_ID APPLE_TEAM_ID APPLE_APP_PASSWORD; do
        [ -n "${!variable:-}" ] || missing="$missing $variable"
    done
    [ -z "$missing" ] ||
        die "notarizing with an Apple ID needs APPLE_ID, APPLE_TEAM_ID and APPLE_APP_PASSWORD; missing:$missing"
    notarize=1
    notary_credentials=(--apple-id "$APPLE_ID" --team-id "$APPLE_TEAM_ID" --password "$APPLE_APP_PASSWORD")
fi
if [ "$notarize" -eq 1 ] && [ -z "$identity" ]; then
    die "notary credentials are set but MACOS_SIGN_IDENTITY is not: Apple notarizes only apps signed with a Developer ID, never an ad-hoc signature. Set MACOS_SIGN_IDENTITY, or unset the notary credentials for a local build."
fi

[ -f "$entitlements" ] || die "$entitlements is missing"
version=$(cd "$repo_root" && "$python" -c 'import desktop_app; print(desktop_app.__version__)') ||
    die "could not read the app's version with $python; is the project installed (pip install -e \".[desktop,build]\")?"
# PyInstaller builds for the interpreter's own architecture (arm64 or x86_64), so the file
# name says which Macs the image is for.
arch=$("$python" -c 'import platform; print(platform.machine())')
app="$dist_dir/$APP_NAME.app"
main_executable="$app/Contents/MacOS/rma-compute"
installers_dir="$dist_dir/installers"
dmg="$installers_dir/rma-compute-$version-macos-$arch.dmg"

note "RMA Compute $version for macOS ($arch)"
if [ -n "${RMA_BUILD_COORDINATOR_URL:-}" ]; then
    echo "    pool address preset: $RMA_BUILD_COORDINATOR_URL"
else
    echo "    pool address preset: none (the app's default)"
fi

if [ "$skip_freeze" -eq 1 ]; then
    note "using the existing $app (--skip-freeze)"
else
    note "pyinstaller build.spec ($python)"
    (cd "$repo_root" && "$python" -m PyInstaller --noconfirm --distpath "$dist_dir" build.spec)
fi
[ -d "$app" ] || die "$app is missing; build.spec should have produced it (or drop --skip-freeze)"
[ -f "$main_executable" ] || die "$main_executable is missing"

work=$(mktemp -d "${TMPDIR:-/tmp}/rma-macos-build.XXXXXX")
trap 'rm -rf "$work"' EXIT

# --- signing ----------------------------------------------------------------------------------

if [ -n "$identity" ]; then
    timestamp=--timestamp
else
    # Apple's timestamp service only countersigns real identities.
    timestamp=--timestamp=none
fi

is_macho() {
    # Mach-O and universal ("fat") binaries, by their first four bytes; extensions cannot be
    # trusted (Qt's framework binaries and PyInstaller's Python library have none).
    local magic
    magic=$(od -An -tx1 -N4 "$1" 2>/dev/null) || return 1
    magic=${magic//[[:space:]]/}
    case "$magic" in
        cffaedfe | cefaedfe | feedfacf | feedface | cafebabe | cafebabf) return 0 ;;
    esac
    return 1
}

list_nested_code() {
    # Every .framework bundle and every loose Mach-O file in the app except its main
    # executable (signing the bundle signs that), deepest path first: codesign seals what a
    # bundle contains, so the contents must carry their final signatures before it.
    # Symbolic links (PyInstaller links Resources/ into Frameworks/) are not code of their own.
    local tab
    tab=$(printf '\t')
    {
        find "$app/Contents" -type d -name '*.framework' -print
        find "$app/Contents" -type f -print | while IFS= read -r file; do
            [ "$file" = "$main_executable" ] && continue
            if is_macho "$file"; then printf '%s\n' "$file"; fi
        done
    } | awk -F/ '{ print NF "\t" $0 }' | sort -t "$tab" -k1,1nr -k2,2 | cut -f2-
}

sign() {
    # Hardened runtime on everything: notarization requires it of every executable, and it
    # is harmless on libraries. --force replaces the ad-hoc signatures PyInstaller leaves.
    codesign --force --sign "${identity:--}" --options runtime "$timestamp" "$@"
}

if [ -z "$identity" ]; then
    note "NOT SIGNED FOR DISTRIBUTION: MACOS_SIGN_IDENTITY is not set, signing ad-hoc"
    echo "    The app runs on this Mac; Gatekeeper blocks it on others. Do not publish this .dmg."
else
    note "signing with \"$identity\""
fi
# Extended attributes (Finder info, quarantine flags) on any file make codesign refuse the
# bundle ("resource fork, Finder information, or similar detritus not allowed").
xattr -cr "$app"
list_nested_code >"$work/nested-code"
count=0
while IFS= read -r item; do
    sign "$item"
    count=$((count + 1))
done <"$work/nested-code"
echo "    signed $count nested code items"
# No --deep: it would also give the entitlements to every nested library, and hides what was
# signed; the loop above did the nested code.
sign --entitlements "$entitlements" "$app"
codesign --verify --deep --strict --verbose=2 "$app"

# --- disk image -------------------------------------------------------------------------------

staging="$work/staging"
mkdir -p "$staging" "$installers_dir"
# ditto keeps the bundle exactly as signed (symbolic links, modes, extended attributes).
ditto "$app" "$staging/$APP_NAME.app"
ln -s /Applications "$staging/Applications"
rm -f "$dmg"
note "hdiutil create $dmg"
# hdiutil now and then fails with "Resource busy" while Spotlight or XProtect still reads the
# staging folder, notably on CI runners: try again a few times.
attempt=1
until hdiutil create -volname "$VOLUME_NAME" -srcfolder "$staging" -fs HFS+ -ov -format UDZO "$dmg"; do
    [ "$attempt" -lt 3 ] || die "hdiutil create failed $attempt times"
    attempt=$((attempt + 1))
    echo "    hdiutil create failed; trying again ($attempt of 3)" >&2
    sleep 5
done

if [ -n "$identity" ]; then
    codesign --force --sign "$identity" --timestamp "$dmg"
fi

# --- notarization -----------------------------------------------------------------------------

if [ "$notarize" -eq 1 ]; then
    note "notarizing $dmg (Apple's service takes a few minutes)"
    result=$(xcrun notarytool submit "$dmg" "${notary_credentials[@]}" --wait --output-format json) ||
        die "notarytool could not submit $dmg"
    # notarytool exits 0 whenever it got a verdict, "Invalid" included: read the verdict.
    status=$(printf '%s' "$result" | "$python" -c 'import json, sys; print(json.load(sys.stdin).get("status", ""))') ||
        die "notarytool answered something that is not JSON: $result"
    submission=$(printf '%s' "$result" | "$python" -c 'import json, sys; print(json.load(sys.stdin).get("id", ""))')
    if [ "$status" != "Accepted" ]; then
        if [ -n "$submission" ]; then
            xcrun notarytool log "$submission" "${notary_credentials[@]}" >&2 || true
        fi
        die "Apple did not notarize $dmg (status: ${status:-unknown}, submission: ${submission:-unknown}); its log is above"
    fi
    # The ticket covers the app inside too: Gatekeeper finds it online when the app is first
    # opened from /Applications; stapled to the .dmg it also works offline at mount time.
    xcrun stapler staple "$dmg"
    xcrun stapler validate "$dmg"
    note "built $dmg (signed, notarized)"
elif [ -n "$identity" ]; then
    note "built $dmg (signed, NOT notarized: set MACOS_NOTARY_PROFILE or APPLE_ID, APPLE_TEAM_ID, APPLE_APP_PASSWORD)"
else
    note "built $dmg (ad-hoc signed: NOT for distribution)"
fi
