#!/usr/bin/env bash
# Build dist/fota-studio_<version>_<arch>.deb from the PyInstaller bundle in dist/fota-studio.
# Usage: packaging/deb/build_deb.sh [PYTHON]   (run from anywhere; `make deb` calls it)
# Layout: /opt/fota-studio (the bundle), /usr/bin/fota-studio -> /opt/fota-studio/fota-studio,
# a .desktop entry, hicolor icons (SVG + PNG) and the application/x-fota-package MIME type.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/../.." && pwd)"
PY="${1:-$ROOT/.venv/bin/python}"
BUNDLE="$ROOT/dist/fota-studio"
[ -x "$BUNDLE/fota-studio" ] || { echo "no bundle in $BUNDLE: run \`make package\` first" >&2; exit 1; }

VERSION="$("$PY" "$ROOT/packaging/scripts/project_version.py")"
# The frozen app must report the same version as pyproject (it reads its bundled metadata).
FROZEN_VERSION="$("$BUNDLE/fota-studio" --version | awk '{print $2}')"
if [ "$FROZEN_VERSION" != "$VERSION" ]; then
  echo "bundle reports $FROZEN_VERSION, pyproject says $VERSION: rebuild with \`make package\`" >&2
  exit 1
fi
ARCH="$(dpkg --print-architecture)"
STAGE="$ROOT/build/deb/fota-studio_${VERSION}_${ARCH}"
OUT="$ROOT/dist/fota-studio_${VERSION}_${ARCH}.deb"
rm -rf "$STAGE"
mkdir -p "$STAGE/DEBIAN" "$STAGE/opt" "$STAGE/usr/bin" "$STAGE/usr/share/applications" \
  "$STAGE/usr/share/mime/packages" "$STAGE/usr/share/icons/hicolor/scalable/apps" \
  "$STAGE/usr/share/icons/hicolor/scalable/mimetypes" "$STAGE/usr/share/doc/fota-studio"

cp -a "$BUNDLE" "$STAGE/opt/fota-studio"
ln -s /opt/fota-studio/fota-studio "$STAGE/usr/bin/fota-studio"
install -m 644 "$ROOT/packaging/deb/fota-studio.desktop" "$STAGE/usr/share/applications/"
install -m 644 "$ROOT/packaging/deb/fota-studio-mime.xml" \
  "$STAGE/usr/share/mime/packages/fota-studio.xml"
install -m 644 "$ROOT/resources/icons/app.svg" \
  "$STAGE/usr/share/icons/hicolor/scalable/apps/fota-studio.svg"
install -m 644 "$ROOT/resources/icons/app.svg" \
  "$STAGE/usr/share/icons/hicolor/scalable/mimetypes/application-x-fota-package.svg"
QT_QPA_PLATFORM=offscreen "$PY" "$ROOT/packaging/scripts/render_icons.py" "$ROOT/build/icons" >/dev/null
for size in 16 32 48 64 128 256; do
  dir="$STAGE/usr/share/icons/hicolor/${size}x${size}/apps"
  mkdir -p "$dir"
  install -m 644 "$ROOT/build/icons/app-$size.png" "$dir/fota-studio.png"
done
printf 'FOTA Studio %s\nProprietary. Bundles Python, Qt (LGPLv3) and python-can, can-isotp,\nudsoncan, canopen, cantools under their own licenses.\n' \
  "$VERSION" > "$STAGE/usr/share/doc/fota-studio/copyright"

INSTALLED_SIZE_KIB="$(du -sk --exclude=DEBIAN "$STAGE" | cut -f1)"
sed -e "s/@VERSION@/$VERSION/" -e "s/@ARCH@/$ARCH/" -e "s/@INSTALLED_SIZE_KIB@/$INSTALLED_SIZE_KIB/" \
  "$ROOT/packaging/deb/control.in" > "$STAGE/DEBIAN/control"
install -m 755 "$ROOT/packaging/deb/postinst" "$ROOT/packaging/deb/postrm" "$STAGE/DEBIAN/"
# Files owned by root whoever builds; directories 755, no group-writable bits (lintian).
chmod -R u+rwX,go+rX,go-w "$STAGE"
dpkg-deb --root-owner-group -Zgzip -z6 --build "$STAGE" "$OUT" >/dev/null
echo "$OUT"
