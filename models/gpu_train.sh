#!/usr/bin/env bash
# Train on a lent GPU machine in one go: build the module (CPU paths only: the data generator and
# the preprocessing need it), generate simulator training data on every core, train the detector
# (and, with EMBEDDER=1, the embedding model beside it on the same GPU) under one wall-clock
# budget, and leave the weights, logs and ONNX files in OUT_DIR. Checkpoints are copied to OUT_DIR
# every 10 s, so a run stopped by the machine's time limit still returns its last epoch.
#
#   bash models/gpu_train.sh [OUT_DIR]          (default models/out/gpu)
#
# Environment (defaults in brackets):
#   DEADLINE_S [520]   seconds from the start by which training must end (budget = what is left
#                      after build and data, less RESERVE_S [60] for the ONNX export)
#   PROCS [nproc]      data-generator processes; FRAMES_PER_PROC [250]; GEN_SEED [42]
#   DISTRACTORS [0]    products from outside the store added to the generated frames (half the
#                      items; caper_edge.sim.catalog.distractors): training identities for the embedder
#   DETECTOR [1]       0: train the embedder only (with EMBEDDER=1)
#   WORKERS [nproc-2]  batch-making processes per training run (models/batches.py)
#   DET_INIT []        detector.pt to start from; DET_LR [1e-3 with DET_INIT, else 3e-3]
#   EMBEDDER [0]       1: train the embedder too (EMB_INIT, EMB_LR [1e-3], HOLDOUT_SKUS
#                      [SKU-0043..0048]); EXTRA_CROPS: a .tgz of crops/<SKU>/ folders to add
#   PY [python3]; WHEELS: a folder of wheels installed first (a machine that reaches no index);
#   SKIP_BUILD=1 where caper_edge is already installed (the build is an editable install)
# OUT_DIR gets at most 8 files: {detector,embedder}.{pt,onnx,train.json,log}.
#
# Used for the 26 Nov detector (models/README.md, "Training on a GPU"): on an H200 with 16 cores
# the detector trains at ~16 steps of 64 frames per second (one process on the GPU).
set -u
START=$(date +%s)
cd "$(dirname "$0")/.."
if [ "${DETECTOR:-1}" = 0 ] && [ "${EMBEDDER:-0}" != 1 ]; then
  echo "gpu_train.sh: DETECTOR=0 and EMBEDDER=${EMBEDDER:-0}: nothing to train (set EMBEDDER=1)" >&2; exit 2
fi
OUT_DIR=$(mkdir -p "${1:-models/out/gpu}" && cd "${1:-models/out/gpu}" && pwd)
PY=${PY:-python3}
export PYTHONUNBUFFERED=1
NP=${PROCS:-$(nproc)}; FR=${FRAMES_PER_PROC:-250}; DL=${DEADLINE_S:-520}
WK=${WORKERS:-$(( $(nproc) > 3 ? $(nproc) - 2 : 1 ))}
W=$(mktemp -d /tmp/caper_gpu_train.XXXXXX)
log() { echo "[$(( $(date +%s) - START )) s] $*"; }
nvidia-smi -L 2>/dev/null || log "nvidia-smi found no GPU (training uses --device auto)"
if [ -n "${WHEELS:-}" ]; then
  $PY -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target "$W/site" "$WHEELS"/*.whl || exit 3
  export PYTHONPATH="$W/site${PYTHONPATH:+:$PYTHONPATH}"
fi
if [ -z "${SKIP_BUILD:-}" ]; then
  CAPER_EDGE_CUDA=OFF CMAKE_BUILD_PARALLEL_LEVEL=$(nproc) $PY -m pip install -q --no-index --no-build-isolation --no-deps \
    -e . -Cbuild-dir=/tmp/caper_gpu_train_build >"$W/build.log" 2>&1 || { tail -30 "$W/build.log"; exit 4; }
fi
$PY -c "import caper_edge.sim.dataset, models.train_detector" || exit 5
log "built"

for i in $(seq 0 $((NP - 1))); do
  $PY -m caper_edge.sim.dataset "$W/gen/p$i" --split g$i --seed "${GEN_SEED:-42}" --frames "$FR" \
    --distractors "${DISTRACTORS:-0}" >/dev/null 2>"$W/gen$i.err" &
done
wait
D="$W/data"; mkdir -p "$D/images" "$D/labels" "$D/crops"
for i in $(seq 0 $((NP - 1))); do
  [ -d "$W/gen/p$i/images" ] || { cat "$W/gen$i.err"; exit 6; }
  mv "$W/gen/p$i/images/"* "$D/images/"; mv "$W/gen/p$i/labels/"* "$D/labels/"
  for s in "$W/gen/p$i/crops/"*/; do mkdir -p "$D/crops/$(basename "$s")"; mv "$s"* "$D/crops/$(basename "$s")/"; done
done
if [ -n "${EXTRA_CROPS:-}" ]; then
  mkdir -p "$W/extra" && tar xzf "$EXTRA_CROPS" -C "$W/extra" || exit 7
  for s in $(find "$W/extra" -type d -name 'SKU-*'); do mkdir -p "$D/crops/$(basename "$s")"; cp "$s"/* "$D/crops/$(basename "$s")/"; done
fi
log "data: $(ls "$D/images" | wc -l) frames, $(find "$D/crops" -type f | wc -l) crops"
BUDGET=$($PY -c "print(round(max(0.5, ($DL - ($(date +%s) - $START) - ${RESERVE_S:-60}) / 60), 2))")
log "training budget $BUDGET min"

PIDS=()
DET_ARGS=(--data "$D" --epochs 100000 --seed 21 --out "$W/detector" --device auto --workers "$WK" --batch 64
          --edge-weight 3 --threads 2 --time-budget-min "$BUDGET")
if [ -n "${DET_INIT:-}" ]; then DET_ARGS+=(--init "$DET_INIT" --lr "${DET_LR:-1e-3}"); else DET_ARGS+=(--lr "${DET_LR:-3e-3}"); fi
if [ "${DETECTOR:-1}" != 0 ]; then
  $PY -m models.train_detector "${DET_ARGS[@]}" >"$OUT_DIR/detector.log" 2>&1 &
  PIDS+=($!)
fi
if [ "${EMBEDDER:-0}" = 1 ]; then
  EMB_ARGS=(--data "$D" --epochs 100000 --seed 13 --out "$W/embedder" --device auto --workers "$WK" --p 32 --k 4
            --lr "${EMB_LR:-1e-3}" --threads 2 --time-budget-min "$BUDGET"
            --holdout-skus "${HOLDOUT_SKUS:-SKU-0043,SKU-0044,SKU-0045,SKU-0046,SKU-0047,SKU-0048}")
  [ -n "${EMB_INIT:-}" ] && EMB_ARGS+=(--init "$EMB_INIT")
  $PY -m models.train_embedder "${EMB_ARGS[@]}" >"$OUT_DIR/embedder.log" 2>&1 &
  PIDS+=($!)
fi
copy_back() {
  for f in "$W"/detector/detector.pt "$W"/embedder/embedder.pt; do
    [ -f "$f" ] && cp "$f" "$OUT_DIR/.copy" && mv "$OUT_DIR/.copy" "$OUT_DIR/$(basename "$f")"
  done
}
( while sleep 10; do copy_back; done ) &
COPIER=$!
status=0
for p in "${PIDS[@]}"; do wait "$p" || status=8; done
kill "$COPIER" 2>/dev/null
copy_back
for r in detector embedder; do
  [ -f "$W/$r/$r.onnx" ] && cp "$W/$r/$r.onnx" "$OUT_DIR/$r.onnx"
  [ -f "$W/$r/train.json" ] && cp "$W/$r/train.json" "$OUT_DIR/$r.train.json"
done
log "done (exit $status)"; tail -n 3 "$OUT_DIR"/*.log
rm -rf "$W"
exit $status
