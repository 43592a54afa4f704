"""benchmarks/gpu_check.sh --dry-run: every step of the GPU check but the GPU ones, on a CIFAR-10 slice
(the real data when CIFAR10_DIR points at it, generated images otherwise), ending in its two reports."""
import json
import os
import subprocess
import sys
from pathlib import Path

from tests.helpers import write_cifar_npz

ROOT = Path(__file__).resolve().parents[1]


def test_gpu_check_dry_run_writes_its_json_and_markdown(tmp_path):
    data = os.environ.get("CIFAR10_DIR")
    if not (data and Path(data, "train.npz").is_file()):
        data = write_cifar_npz(tmp_path, 128, 64)
    out = tmp_path / "check"
    result = subprocess.run(["bash", "benchmarks/gpu_check.sh", "--dry-run", "--data", str(data), "--out", str(out)],
                            cwd=ROOT, capture_output=True, text=True, timeout=600,
                            env={**os.environ, "PYTHON": sys.executable})
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    summary = json.loads((out / "gpu_check.json").read_text())
    assert summary["dry_run"] and "cores" in summary["machine"]
    assert "tests collected" in summary["cuda_tests"]
    assert [row["path"][:3] for row in summary["throughput"]["rows"]] == ["(a)", "(b)", "(c)"]
    assert summary["s10"]["epochs"] == 2 and summary["s10"]["range_test_min_loss"] > 0
    markdown = (out / "gpu_check.md").read_text()
    assert markdown.startswith("# GPU check (dry run on the CPU): ") and "| (c) default, batched loader |" in markdown


def test_gpu_check_refuses_a_folder_without_cifar(tmp_path):
    result = subprocess.run(["bash", "benchmarks/gpu_check.sh", "--dry-run", "--data", str(tmp_path)], cwd=ROOT,
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 2 and "train.npz and test.npz" in result.stderr
