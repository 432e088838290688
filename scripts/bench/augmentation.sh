#!/usr/bin/env bash
# Augmentation throughput, one core: Quorum's batch assembly beside numpy/scipy doing the
# same transforms (scripts/bench/numpy_augment.py), alternating, median of REPEATS.
# Target (issue: data and the imbalance toolkit): 20,000 augmented 28x28 images/s/core.
#   scripts/bench/augmentation.sh
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
QUORUM=${QUORUM:-.build/release/quorum}
REPEATS=${REPEATS:-3}
[ -x "$QUORUM" ] || swift build -c release
printf '| augmentation | Quorum img/s (1 thread) | numpy/scipy img/s (1 thread) | ratio |\n| --- | ---: | ---: | ---: |\n'
for augmentation in reference affine full; do
  # scipy's per-image loop is slow: time it on 5,000 images for the warped pipelines.
  limit=60000
  [ "$augmentation" = reference ] || limit=5000
  ours=$("$QUORUM" bench augment --augmentation "$augmentation" --threads 1 --repeats "$REPEATS")
  peer=$(python3 scripts/bench/numpy_augment.py --augmentation "$augmentation" --repeats "$REPEATS" --limit "$limit")
  python3 - "$ours" "$peer" <<'PY'
import json, sys
ours, peer = (json.loads(a) for a in sys.argv[1:3])
print(f"| {ours['augmentation']} | {ours['images_per_second']:,.0f} | {peer['images_per_second']:,.0f} | {ours['images_per_second'] / peer['images_per_second']:.1f} |")
PY
done
echo
echo "reference: shift ±2 px (zero padding) + horizontal flip; affine: + rotation ±15°, scale ±10 %, shear ±10° (bilinear);"
echo "full: affine + elastic distortion (α 8, σ 4) + random erasing (p 0.5). Command: REPEATS=$REPEATS scripts/bench/augmentation.sh"
