#!/usr/bin/env bash
# One call on a machine with an NVIDIA GPU and no network produces every GPU figure this repository needs:
#   1. installs the libraries the GPU machine lacks, from wheels carried beside the repository;
#   2. runs the CUDA tests (tests/ -k cuda: the precisions, fp16 with its GradScaler, inductor compile,
#      the batched loader on the GPU, the describing helpers, a deterministic resume bit for bit);
#   3. the throughput table (benchmarks/throughput.py --compile: fp32, auto, auto + compile; the
#      Albumentations DataLoader against the batched loader);
#   4. the S10 run on the real CIFAR-10: the range test, then 24 epochs of one-cycle at its min_loss LR
#      (main.py --find_lr --epochs 24, the automatic precision, the batched loader);
#   5. writes gpu_check.json and gpu_check.md (the GPU named) into the output folder.
# About 4-6 minutes on one H100-class GPU (most of it the S10 run and compiling).
#
#   bash benchmarks/gpu_check.sh --data DIR [--wheels DIR] [--out DIR] [--epochs 24]
#   bash benchmarks/gpu_check.sh --dry-run [--data DIR]   # CPU only: every step but the GPU ones, on a slice
#
# Preparing the carried folder (here, with network; `.carry/` is ignored by git):
#   wheels for the GPU machine's Python 3.12 (it has torch, torchvision, matplotlib, seaborn and pytest):
#     python3 -m pip download --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
#       --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
#       -d .carry/wheels albumentations==2.0.8 albucore opencv-python-headless pydantic pydantic-core \
#       annotated-types typing-inspection pyyaml stringzilla simsimd torch-lr-finder==0.2.2 torchsummary==1.5.1
#   the data: CIFAR-10 as train.npz/test.npz (keys images, labels; what dataset.load_cifar reads) in
#     .carry/cifar10. The two files are 170 MB together; where a call may carry less (the workplace's
#     device tool carries 64 MiB), split them (split -b 40M) and join them on the machine before the
#     check (cat part_* > train.npz), over consecutive calls while the machine stays warm.
# Options: --data DIR (default $CIFAR10_DIR), --wheels DIR (default .carry/wheels), --out DIR (default
# gpu_check), --epochs N (default 24), --dry-run. PYTHON names the interpreter (default python3).
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
DATA=${CIFAR10_DIR:-}
WHEELS=.carry/wheels
OUT=gpu_check
EPOCHS=24
DRY=0
while [ $# -gt 0 ]; do
  case "$1" in
    --data) DATA=$2; shift 2 ;;
    --wheels) WHEELS=$2; shift 2 ;;
    --out) OUT=$2; shift 2 ;;
    --epochs) EPOCHS=$2; shift 2 ;;
    --dry-run) DRY=1; shift ;;
    -h|--help) sed -n '2,30p' "$0"; exit 0 ;;
    *) echo "gpu_check.sh: unknown option $1 (see --help)" >&2; exit 2 ;;
  esac
done
if [ -z "$DATA" ] || [ ! -f "$DATA/train.npz" ] || [ ! -f "$DATA/test.npz" ]; then
  echo "gpu_check.sh: --data must name a folder with CIFAR-10's train.npz and test.npz (got '${DATA}')" >&2
  exit 2
fi
if [ "$DRY" = 0 ] && ! "$PYTHON" -c "import torch, sys; sys.exit(not torch.cuda.is_available())"; then
  echo "gpu_check.sh: no CUDA GPU here; --dry-run checks every step but the GPU ones on the CPU" >&2
  exit 2
fi
mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)
start=$(date +%s)
stamp() { echo "== $(( $(date +%s) - start )) s: $*"; }

stamp "1. libraries"
missing() { "$PYTHON" -c "import albumentations, torch_lr_finder, torchsummary, tqdm" 2>/dev/null && return 1 || return 0; }
if missing; then
  if [ "$DRY" = 1 ] || [ ! -d "$WHEELS" ]; then
    echo "gpu_check.sh: albumentations, torch-lr-finder, torchsummary or tqdm is missing and there are no wheels in $WHEELS (see the header)" >&2
    exit 2
  fi
  "$PYTHON" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target /tmp/gpu_check_site "$WHEELS"/*.whl
  export PYTHONPATH=/tmp/gpu_check_site${PYTHONPATH:+:$PYTHONPATH}
  missing && { echo "gpu_check.sh: the carried wheels did not provide every library" >&2; exit 2; }
fi
echo "libraries present"

stamp "2. CUDA tests"
if [ "$DRY" = 1 ]; then
  "$PYTHON" -m pytest -q -p no:cacheprovider tests -k cuda --collect-only > "$OUT/cuda_tests.txt" 2>&1
else
  "$PYTHON" -m pytest -q -p no:cacheprovider tests -k cuda -rs > "$OUT/cuda_tests.txt" 2>&1 || true
fi
tail -n 3 "$OUT/cuda_tests.txt"

stamp "3. throughput"
if [ "$DRY" = 1 ]; then
  "$PYTHON" benchmarks/throughput.py --device cpu --batch_size 8 --steps 1 --warmup 0 --json "$OUT/throughput.json" \
    > "$OUT/throughput.txt"
else
  "$PYTHON" benchmarks/throughput.py --compile --json "$OUT/throughput.json" > "$OUT/throughput.txt"
fi
grep '^|' "$OUT/throughput.txt"

stamp "4. S10: range test, then one-cycle"
if [ "$DRY" = 1 ]; then
  slice=(--max_samples 64 --batch_size 32 --lr_iter 6 --no_cuda)
  EPOCHS=2
else
  slice=()
fi
"$PYTHON" main.py --dataset cifar10 --data_dir "$DATA" --find_lr --epochs "$EPOCHS" --output_dir "$OUT/s10" \
  --overwrite --no_plots ${slice[@]+"${slice[@]}"} > "$OUT/s10.txt"
grep -E '^(min_loss|precision|epoch +[0-9]+/|best accuracy)' "$OUT/s10.txt" | tail -n 8

stamp "5. summary"
"$PYTHON" - "$OUT" "$DRY" "$(( $(date +%s) - start ))" <<'PY'
import json, re, sys
from pathlib import Path

import torch

from utils import describe_machine

out, dry, seconds = Path(sys.argv[1]), sys.argv[2] == "1", int(sys.argv[3])
device = "cpu" if dry or not torch.cuda.is_available() else "cuda"
tests = (out / "cuda_tests.txt").read_text().strip().splitlines()
throughput = json.loads((out / "throughput.json").read_text())
history = json.loads((out / "s10" / "history.json").read_text())
report = json.loads((out / "s10" / "suggested_lr.json").read_text())
log = (out / "s10.txt").read_text()
summary = {
    "machine": describe_machine(device), "dry_run": dry, "seconds": seconds,
    "cuda_tests": tests[-1] if tests else "",
    "throughput": throughput,
    "s10": {"range_test_min_loss": report["suggestions"].get("min_loss"), "epochs": len(history["test_acc"]),
            "test_acc": history["test_acc"], "final_test_acc": history["test_acc"][-1],
            "training_seconds": round(sum(history["epoch_time"]), 1),
            "precision": re.search(r"^precision (.*)$", log, re.M).group(1)},
}
(out / "gpu_check.json").write_text(json.dumps(summary, indent=1) + "\n")
s10 = summary["s10"]
lines = [f"# GPU check{' (dry run on the CPU)' if dry else ''}: {summary['machine']}", "",
         f"CUDA tests: {summary['cuda_tests']}", "",
         "| path | train with data (img/s) | model step alone (img/s) |", "| --- | ---: | ---: |",
         *[f"| {row['path']} | {row['with_data_img_s']} | {row['model_step_img_s']} |" for row in throughput["rows"]],
         "", f"S10 ({s10['precision']}): range test min_loss {s10['range_test_min_loss']:.3g}; "
         f"{s10['epochs']} epochs of one-cycle in {s10['training_seconds']} s (evaluation included), "
         f"test accuracy {s10['final_test_acc']:.2f}%", "", f"The whole check: {seconds} s."]
(out / "gpu_check.md").write_text("\n".join(lines) + "\n")
print("\n".join(lines))
PY
