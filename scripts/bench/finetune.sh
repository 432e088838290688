#!/usr/bin/env bash
# Does fine-tuning pay? Pretrain MobileNetV2 on five Fashion-MNIST classes (all their
# training images), then train on the other five with 50 images a class, once from the
# pretrained weights (--initialize-from) and once from scratch, with the same settings and
# seeds (the fine-tuned runs with a new classifier: the labels are others); score each on
# the 5,000 test images of those five classes. One line per run to RESULTS, then a markdown
# table with the means. The arms:
#   finetuned  every layer trains from the pretrained weights
#   frozen     the body frozen for the first FROZEN_EPOCHS epochs, then everything
#   decayed    as frozen, and layer-wise learning-rate decay LAYER_DECAY
#   probe      the body frozen throughout: a linear classifier on the pretrained features
#   scratch    random weights
#
#   scripts/bench/finetune.sh
#   SEEDS="0 1 2 3 4" EPOCHS=40 scripts/bench/finetune.sh
#
# Env: PRETRAIN_CLASSES (0,1,2,3,4: the five pretrained on; the other five are fine-tuned on), ARMS ("finetuned frozen decayed probe scratch"), FROZEN_EPOCHS (10), LAYER_DECAY (0.7), SEEDS ("0 1 2": each draws its own 50 a class and seeds training), PRETRAIN_EPOCHS
# (4), EPOCHS (30, the few-shot runs), WIDTH (0.5), LEARNING_RATE (0.05, both arms),
# QUORUM (.build/release/quorum), DATA (/usr/share/datasets/fashion-mnist), THREADS (2),
# RESULTS (bench-results/finetune.jsonl). Needs python3 with numpy.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."

SEEDS=${SEEDS:-0 1 2}
PRETRAIN_CLASSES=${PRETRAIN_CLASSES:-0,1,2,3,4}
ARMS=${ARMS:-finetuned frozen decayed probe scratch}
FROZEN_EPOCHS=${FROZEN_EPOCHS:-10}
LAYER_DECAY=${LAYER_DECAY:-0.7}
PRETRAIN_EPOCHS=${PRETRAIN_EPOCHS:-4}
EPOCHS=${EPOCHS:-30}
WIDTH=${WIDTH:-0.5}
LEARNING_RATE=${LEARNING_RATE:-0.05}
QUORUM=${QUORUM:-.build/release/quorum}
DATA=${DATA:-/usr/share/datasets/fashion-mnist}
THREADS=${THREADS:-2}
RESULTS=${RESULTS:-bench-results/finetune.jsonl}
# One folder per split: its pretrained model is reused by later runs of the same split.
work=bench-results/finetune
[ "$PRETRAIN_CLASSES" = 0,1,2,3,4 ] || work=bench-results/finetune-${PRETRAIN_CLASSES//,/}
mkdir -p "$work" "$(dirname "$RESULTS")"
[ -x "$QUORUM" ] || swift build -c release --product quorum

# shellcheck disable=SC2086  # SEEDS is a list
python3 scripts/bench/finetune_data.py "$DATA" "$work/data" --pretrain-classes "$PRETRAIN_CLASSES" $SEEDS

common=(--width "$WIDTH" --threads "$THREADS")
test_set=(--test-images "$work/data/test/images.idx" --test-labels "$work/data/test/labels.idx")
if [ ! -f "$work/pretrained/model.safetensors" ]; then
  "$QUORUM" train "${common[@]}" --train-images "$work/data/pretrain/images.idx" --train-labels "$work/data/pretrain/labels.idx" \
    --test-images none --epochs "$PRETRAIN_EPOCHS" --seed 0 --output "$work/pretrained" 2>&1 | tail -3
fi

: > "$RESULTS"
for seed in $SEEDS; do
  for arm in $ARMS; do
    # Other labels of the same count: the pretrained head is no start, the body is.
    pretrained=(--initialize-from "$work/pretrained/model.safetensors" --new-classifier)
    case $arm in
      finetuned) start=("${pretrained[@]}") ;;
      frozen) start=("${pretrained[@]}" --freeze "body:$FROZEN_EPOCHS") ;;
      decayed) start=("${pretrained[@]}" --freeze "body:$FROZEN_EPOCHS" --layer-decay "$LAYER_DECAY") ;;
      probe) start=("${pretrained[@]}" --freeze "body:$EPOCHS") ;;
      scratch) start=() ;;
      *) echo "unknown arm $arm (finetuned, frozen, decayed, probe, scratch)" >&2; exit 2 ;;
    esac
    log=$("$QUORUM" train "${common[@]}" "${test_set[@]}" --train-images "$work/data/few-$seed/images.idx" --train-labels "$work/data/few-$seed/labels.idx" \
      --epochs "$EPOCHS" --batch-size 32 --learning-rate "$LEARNING_RATE" --seed "$seed" --output "$work/$arm-$seed" "${start[@]}" 2>&1)
    accuracy=$(sed -n 's/^test: accuracy \([0-9.]*\).*/\1/p' <<< "$log" | tail -1)
    [ -n "$accuracy" ] || { echo "$log" >&2; exit 1; }
    echo "{\"arm\": \"$arm\", \"seed\": $seed, \"test_accuracy\": $accuracy}" | tee -a "$RESULTS"
  done
done

# shellcheck disable=SC2086  # ARMS is a list
python3 - "$RESULTS" $ARMS <<'PY'
import json, statistics, sys
rows = [json.loads(line) for line in open(sys.argv[1])]
print("| arm | seeds | test accuracy (5 classes, 5,000 images) | mean ± sd |")
print("| --- | --- | --- | ---: |")
for arm in sys.argv[2:]:
    values = [r["test_accuracy"] for r in rows if r["arm"] == arm]
    sd = statistics.stdev(values) if len(values) > 1 else 0
    print(f"| {arm} | {len(values)} | {', '.join(f'{v:.4f}' for v in values)} | {statistics.mean(values):.4f} ± {sd:.4f} |")
PY
