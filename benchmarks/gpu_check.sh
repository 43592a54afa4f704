#!/usr/bin/env bash
# One call on a machine with an NVIDIA GPU and no network produces every GPU figure this repository needs,
# and fails (exit 1, one line naming what) unless they hold up. Steps, with estimates for one H100/H200:
#   0. carried files (~5 s): benchmarks/gpu_carry.py join checks every part and wheel of the carry folder
#      against its manifest (sha256) and decodes CIFAR-10 into <out>/data (unless --data/CIFAR10_DIR);
#   1. libraries (~10 s): installs the carried wheels where albumentations, torch-lr-finder or
#      torchsummary is missing (pip --no-index --no-deps, into /tmp/gpu_check_site);
#   2. CUDA tests (~120 s: collecting 300 tests ~20 s, inductor compile ~40 s, the deterministic resume's
#      three main.py runs ~45 s): pytest tests -k cuda;
#   3. throughput (~100 s, compiling ~60 s of it): benchmarks/throughput.py --compile: fp32, automatic
#      precision, the batched loader, + torch.compile;
#   4. S10 (~80 s; Page's 79 s on a V100 is the 24 epochs alone): main.py --find_lr --epochs 24 on CIFAR-10;
#   5. summary and verdict (~5 s): gpu_check.json, gpu_check.md, and benchmarks/gpu_check_verdict.py's
#      PASS/FAIL lines: a CUDA test failed or none ran, the automatic precision no faster than fp32, S10
#      below --floor, or the whole check over --budget seconds (each step is stopped at the budget's end).
# About 5-6 minutes in all; the budget (450 s) leaves room in one 8-minute call.
#
#   bash benchmarks/gpu_check.sh [--carry .carry] [--data DIR] [--out gpu_check] [--copy-to DIR]
#        [--epochs 24] [--floor 93.5] [--budget 450]
#   bash benchmarks/gpu_check.sh --dry-run [--carry DIR | --data DIR]   # CPU: every step but the GPU ones, on a slice
#   bash benchmarks/gpu_check.sh --verdict-only --out DIR [--floor ...]  # judge a gpu_check.json again
#
# Data: --data DIR, else CIFAR10_DIR, else the carry folder's. Exit status: 0 every check passed; 1 a check
# or a step failed (the last line says which); 2 a usage error (no data, no wheels, no GPU).
# --copy-to DIR copies the reports (at most 7 files) there when the check ends, passed or not.
#
# Preparing the carry folder (here, with network; .carry/ is ignored by git), then the device call:
#   python benchmarks/gpu_carry.py prepare --data <folder of CIFAR-10's train.npz and test.npz>
#   device run: bash benchmarks/gpu_check.sh --copy-to "$OUT"    carry: [".carry"]    timeout_s: 480
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
export NO_ALBUMENTATIONS_UPDATE=1  # albumentations asks PyPI for a newer version on import: 2 s lost per process offline
DATA=${CIFAR10_DIR:-}
CARRY=.carry
OUT=gpu_check
COPY_TO=
EPOCHS=24
FLOOR=93.5
BUDGET=
DRY=0
VERDICT_ONLY=0
while [ $# -gt 0 ]; do
  case "$1" in
    --data) DATA=$2; [ -f "$DATA/train.npz" ] && [ -f "$DATA/test.npz" ] || {
      echo "gpu_check.sh: --data must name a folder with CIFAR-10's train.npz and test.npz (got '$DATA')" >&2; exit 2; }
      shift 2 ;;
    --carry) CARRY=$2; shift 2 ;;
    --out) OUT=$2; shift 2 ;;
    --copy-to) COPY_TO=$2; shift 2 ;;
    --epochs) EPOCHS=$2; shift 2 ;;
    --floor) FLOOR=$2; shift 2 ;;
    --budget) BUDGET=$2; shift 2 ;;
    --dry-run) DRY=1; shift ;;
    --verdict-only) VERDICT_ONLY=1; shift ;;
    -h|--help) sed -n '2,29p' "$0"; exit 0 ;;
    *) echo "gpu_check.sh: unknown option $1 (see --help)" >&2; exit 2 ;;
  esac
done
if [ "$DRY" = 1 ]; then EPOCHS=2; BUDGET=${BUDGET:-900}; else BUDGET=${BUDGET:-450}; fi
if [ "$DRY" = 0 ] && [ "$VERDICT_ONLY" = 0 ] &&
   ! "$PYTHON" -c "import torch, sys; sys.exit(not torch.cuda.is_available())"; then
  echo "gpu_check.sh: no CUDA GPU here; --dry-run checks every step but the GPU ones on the CPU" >&2
  exit 2
fi
mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)
REPORTS=(verdict.txt gpu_check.md gpu_check.json cuda_tests.txt throughput.txt s10.txt carry.txt)
if [ "$VERDICT_ONLY" = 0 ]; then (cd "$OUT" && rm -f "${REPORTS[@]}" cuda_tests.xml throughput.json); fi
start=$(date +%s)
DEADLINE=$(( start + BUDGET ))
stamp() { echo "== $(( $(date +%s) - start )) s: $*"; }
fail() { echo "gpu_check.sh: FAIL: $*" | tee -a "$OUT/verdict.txt" >&2; exit 1; }
usage_error() { echo "gpu_check.sh: $*" >&2; exit 2; }
copy_reports() {  # on exit, passed or failed: the device tool returns at most 8 files of its $OUT
  [ -n "$COPY_TO" ] || return 0
  mkdir -p "$COPY_TO"
  for name in "${REPORTS[@]}"; do
    if [ -f "$OUT/$name" ]; then cp "$OUT/$name" "$COPY_TO/"; fi
  done
}
trap copy_reports EXIT
run_step() {  # run_step NAME LOG COMMAND...: the command, output to LOG, stopped where the budget ends
  local name=$1 log=$2 left rc=0
  shift 2
  left=$(( DEADLINE - $(date +%s) ))
  [ "$left" -gt 0 ] || fail "time budget: the ${BUDGET} s budget ran out before ${name}"
  timeout --kill-after=10 "$left" "$@" > "$log" 2>&1 || rc=$?
  if [ "$rc" = 124 ] || [ "$rc" = 137 ]; then
    fail "time budget: ${name} was stopped at the ${BUDGET} s budget (see ${log##*/})"
  fi
  return "$rc"
}
judge() {  # judge [MARKDOWN]: the verdict on gpu_check.json into verdict.txt (and MARKDOWN); exit 1 naming what failed
  local options=(--epochs "$EPOCHS" --floor "$FLOOR" --max-seconds "$BUDGET") status=0
  [ "$DRY" = 0 ] || options+=(--dry-run)
  "$PYTHON" benchmarks/gpu_check_verdict.py "$OUT/gpu_check.json" "${options[@]}" > "$OUT/verdict.txt" || status=$?
  if [ -n "${1:-}" ]; then { echo; echo '```'; cat "$OUT/verdict.txt"; echo '```'; } >> "$1"; fi
  cat "$OUT/verdict.txt"
  case "$status" in
    0) ;;
    1) tail -n 1 "$OUT/verdict.txt" >&2; exit 1 ;;
    *) fail "verdict: gpu_check_verdict.py could not judge gpu_check.json (status $status; see above)" ;;
  esac
}
if [ "$VERDICT_ONLY" = 1 ]; then
  [ -f "$OUT/gpu_check.json" ] || usage_error "--verdict-only: no gpu_check.json in $OUT"
  judge
  exit 0
fi
step_failed() { fail "$1 exited with status $2: $(tail -n 1 "$3") (see ${3##*/})"; }

stamp "0. carried files"
joined=0
if [ -z "$DATA" ]; then
  [ -f "$CARRY/manifest.json" ] ||
    usage_error "no data: give --data DIR, set CIFAR10_DIR, or prepare $CARRY with benchmarks/gpu_carry.py prepare"
  DATA=$OUT/data
  run_step "joining the carried files" "$OUT/carry.txt" "$PYTHON" benchmarks/gpu_carry.py join --carry "$CARRY" --out "$DATA" ||
    step_failed "joining the carried files" $? "$OUT/carry.txt"
  joined=1
  cat "$OUT/carry.txt"
fi
[ -f "$DATA/train.npz" ] && [ -f "$DATA/test.npz" ] || usage_error "no train.npz and test.npz in $DATA (CIFAR10_DIR?)"
echo "data: $DATA"

stamp "1. libraries"
imports() { "$PYTHON" -c "import albumentations, torch_lr_finder, torchsummary, tqdm" 2>&1 | tail -n 1; }
missing() { ! "$PYTHON" -c "import albumentations, torch_lr_finder, torchsummary, tqdm" 2>/dev/null; }
if missing; then
  [ "$DRY" = 0 ] && [ -d "$CARRY/wheels" ] ||
    usage_error "libraries: $(imports), and there are no wheels in $CARRY/wheels (see the header)"
  if [ "$joined" = 0 ]; then
    run_step "checking the carried wheels" "$OUT/carry.txt" "$PYTHON" benchmarks/gpu_carry.py join --carry "$CARRY" ||
      step_failed "checking the carried wheels" $? "$OUT/carry.txt"
  fi
  "$PYTHON" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
    --target /tmp/gpu_check_site "$CARRY"/wheels/*.whl ||
    fail "libraries: pip could not install $CARRY/wheels (see above; gpu_carry.py made them for Python 3.12)"
  export PYTHONPATH=/tmp/gpu_check_site${PYTHONPATH:+:$PYTHONPATH}
  if missing; then
    fail "libraries: still missing after installing $CARRY/wheels: $(imports)"
  fi
fi
echo "libraries present"

stamp "2. CUDA tests"
cuda_rc=0
run_step "the CUDA tests" "$OUT/cuda_tests.txt" "$PYTHON" -m pytest -q -p no:cacheprovider tests -k cuda -rs \
  --junitxml="$OUT/cuda_tests.xml" || cuda_rc=$?   # failures are judged by the verdict, after the figures
tail -n 3 "$OUT/cuda_tests.txt"

stamp "3. throughput"
if [ "$DRY" = 1 ]; then
  bench=(--device cpu --batch_size 8 --steps 1 --warmup 0)
else
  bench=(--compile)
fi
run_step "the throughput benchmark" "$OUT/throughput.txt" "$PYTHON" benchmarks/throughput.py "${bench[@]}" \
  --json "$OUT/throughput.json" || step_failed "the throughput benchmark" $? "$OUT/throughput.txt"
grep '^|' "$OUT/throughput.txt" || true

stamp "4. S10: range test, then one-cycle"
if [ "$DRY" = 1 ]; then
  slice=(--max_samples 64 --batch_size 32 --lr_iter 6 --no_cuda)
else
  slice=()
fi
run_step "the S10 run" "$OUT/s10.txt" "$PYTHON" main.py --dataset cifar10 --data_dir "$DATA" --find_lr --epochs "$EPOCHS" \
  --output_dir "$OUT/s10" --overwrite --no_plots ${slice[@]+"${slice[@]}"} || step_failed "the S10 run" $? "$OUT/s10.txt"
grep -E '^(min_loss|precision|epoch +[0-9]+/|best accuracy)' "$OUT/s10.txt" | tail -n 8 || true

stamp "5. summary and verdict"
"$PYTHON" - "$OUT" "$DRY" "$(( $(date +%s) - start ))" "$cuda_rc" "$DATA" <<'PY' || fail "summary: see above"
import json, re, sys
from pathlib import Path

import torch

sys.path.insert(0, "benchmarks")
from gpu_check_verdict import cuda_test_counts
from utils import describe_machine

out, dry, data = Path(sys.argv[1]), sys.argv[2] == "1", Path(sys.argv[5])
seconds, cuda_rc = int(sys.argv[3]), int(sys.argv[4])
device = "cpu" if dry or not torch.cuda.is_available() else "cuda"
throughput = json.loads((out / "throughput.json").read_text())
history = json.loads((out / "s10" / "history.json").read_text())
report = json.loads((out / "s10" / "suggested_lr.json").read_text())
log = (out / "s10.txt").read_text()
encoding = (data / "encoding.txt").read_text().strip() if (data / "encoding.txt").is_file() else "the .npz files as given"
summary = {
    "machine": describe_machine(device), "dry_run": dry, "seconds": seconds,
    "cuda_tests": cuda_test_counts(out / "cuda_tests.xml", cuda_rc),
    "throughput": throughput,
    "s10": {"data": encoding, "range_test_min_loss": report["suggestions"].get("min_loss"),
            "epochs": len(history["test_acc"]), "test_acc": history["test_acc"], "final_test_acc": history["test_acc"][-1],
            "training_seconds": round(sum(history["epoch_time"]), 1),
            "precision": re.search(r"^precision (.*)$", log, re.M).group(1)},
}
(out / "gpu_check.json").write_text(json.dumps(summary, indent=1) + "\n")
s10, tests = summary["s10"], summary["cuda_tests"]
lines = [f"# GPU check{' (dry run on the CPU)' if dry else ''}: {summary['machine']}", "",
         f"CUDA tests: {tests['passed']} passed, {tests['failed']} failed, {tests['errors']} errors, "
         f"{tests['skipped']} skipped", "",
         "| path | train with data (img/s) | model step alone (img/s) |", "| --- | ---: | ---: |",
         *[f"| {row['path']} | {row['with_data_img_s']} | {row['model_step_img_s']} |" for row in throughput["rows"]],
         "", f"S10 ({s10['precision']}; data: {s10['data']}): range test min_loss {s10['range_test_min_loss']:.3g}; "
         f"{s10['epochs']} epochs of one-cycle in {s10['training_seconds']} s (evaluation included), "
         f"test accuracy {s10['final_test_acc']:.2f}%", "", f"The whole check: {seconds} s."]
(out / "gpu_check.md").write_text("\n".join(lines) + "\n")
print("\n".join(lines))
PY
judge "$OUT/gpu_check.md"
