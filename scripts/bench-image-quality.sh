#!/usr/bin/env bash
# Calibrates and checks the edge's quality scale (imaging/src/quality.rs): one `quality` meaning
# the same fidelity in JPEG, WebP and AVIF, measured by DSSIM against the fitted image, with the
# imaging crate's own encoders built natively (the same libaom and libwebp the Worker runs).
#
#   scripts/bench-image-quality.sh           checks the table: each format's DSSIM against
#                                            JPEG's at the same quality, and bytes; fails when a
#                                            figure of the default quality is missed
#   scripts/bench-image-quality.sh calibrate prints the per-photograph matches, the fitted
#                                            table and a leave-one-out check of it
#
# Installs what is missing (sharp under target/bench-images, to decode WebP and AVIF; the dssim
# tool). Safe to re-run.
#
#   BENCH_IMAGES       folder of photographs         (default ../shared/data/images)
#   BENCH_WIDTH        width they are fitted to      (default 1200)
#   BENCH_MORE_PHOTOS  1: add 14 more photographs, downloaded once into target/bench-photos
#                      from the Debian package mate-backgrounds and the scikit-image wheel
#                      (the same sources as ../shared/data/images), as the table was fitted
set -euo pipefail
source "$(dirname "$0")/lib.sh"
cd "$ROOT"

MODE=${1:-verify}
IMAGES=${BENCH_IMAGES:-$ROOT/../shared/data/images}
WIDTH=${BENCH_WIDTH:-1200}
[ -d "$IMAGES" ] || die "no photographs at $IMAGES: set BENCH_IMAGES to a folder of JPEG and PNG files"
ensure_image_bench_tools

WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
PHOTOS="$WORK/photos"
mkdir -p "$PHOTOS"
for photo in "$IMAGES"/*; do
  case "$photo" in *.jpg | *.jpeg | *.JPG | *.png | *.PNG) ln -s "$(realpath "$photo")" "$PHOTOS/" ;; esac
done

if [ "${BENCH_MORE_PHOTOS:-0}" = 1 ]; then
  MORE="$ROOT/target/bench-photos"
  if [ ! -f "$MORE/.complete" ]; then
    log "downloading more photographs into target/bench-photos (mate-backgrounds, scikit-image)"
    rm -rf "$MORE" && mkdir -p "$MORE/download"
    (cd "$MORE/download" && apt-get download mate-backgrounds >/dev/null \
      && dpkg-deb -x mate-backgrounds_*.deb unpacked)
    for name in Dune Wood TwoWings Storm GreenMeadow RainDrops Blinds LadyBird YellowFlower; do
      cp "$MORE/download/unpacked/usr/share/backgrounds/mate/nature/$name.jpg" "$MORE/"
    done
    python3 -m pip download --quiet --no-deps --only-binary :all: -d "$MORE/download" scikit-image
    python3 - "$MORE" <<'EOF'
import glob, sys, zipfile
folder = sys.argv[1]
wheel = zipfile.ZipFile(sorted(glob.glob(f"{folder}/download/scikit_image-*.whl"))[-1])
for name in ["motorcycle_left.png", "retina.jpg", "ihc.png", "camera.png", "grass.png"]:
    open(f"{folder}/{name}", "wb").write(wheel.read(f"skimage/data/{name}"))
EOF
    rm -rf "$MORE/download"
    touch "$MORE/.complete"
  fi
  for photo in "$MORE"/*.jpg "$MORE"/*.png; do ln -sf "$photo" "$PHOTOS/"; done
fi

log "building the imaging crate's quality probe (release)"
cargo build --quiet --release -p imaging --example quality_probe
log "$MODE: $(ls "$PHOTOS" | wc -l) photographs fitted to $WIDTH px"
SHARP_MODULES="$BENCH_NODE/node_modules" node scripts/bench-image-quality.cjs "$MODE" \
  "${CARGO_TARGET_DIR:-$ROOT/target}/release/examples/quality_probe" "$PHOTOS" "$WIDTH" "$WORK"
