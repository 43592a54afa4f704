"""benchmarks/gpu_check.sh and what it needs, on the CPU: the dry run (every step but the GPU ones, on
generated CIFAR-shaped data carried as gpu_carry.py carries the real one), the verdict failing on results
that break each floor, a step stopped at the time budget, and pytest without the notebook packages (the GPU
machine has none). No test here has "cuda" in its name: gpu_check.sh runs ``pytest -k cuda``."""
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.helpers import write_cifar_npz

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))
import gpu_check_verdict  # noqa: E402

REPORTS = {"verdict.txt", "gpu_check.md", "gpu_check.json", "cuda_tests.txt", "throughput.txt", "s10.txt", "carry.txt"}


def carried(tmp_path):
    """A carry folder of generated train/test images (no wheels), as gpu_carry.py prepares the real data."""
    data = write_cifar_npz(tmp_path, 128, 64)
    subprocess.run([sys.executable, "benchmarks/gpu_carry.py", "prepare", "--data", str(data), "--carry",
                    str(tmp_path / "carry"), "--no-wheels", "--budget-mib", "0"], cwd=ROOT, check=True,
                   capture_output=True)
    return tmp_path / "carry"


def gpu_check(*args, timeout=600):
    """gpu_check.sh with this interpreter, the data only from what the arguments name (no CIFAR10_DIR)."""
    env = {key: value for key, value in os.environ.items() if key != "CIFAR10_DIR"}
    return subprocess.run(["bash", "benchmarks/gpu_check.sh", *map(str, args)], cwd=ROOT, capture_output=True,
                          text=True, timeout=timeout, env={**env, "PYTHON": sys.executable})


def test_gpu_check_dry_run_joins_the_carry_and_writes_its_reports_and_verdict(tmp_path):
    """The whole check as the device call runs it (a carry folder, --copy-to), on the CPU; then its results
    judged as a GPU run's, which they are not: the script exits 1 and its last line names the checks."""
    out, copies = tmp_path / "check", tmp_path / "copies"
    result = gpu_check("--dry-run", "--carry", carried(tmp_path), "--out", out, "--copy-to", copies)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    summary = json.loads((out / "gpu_check.json").read_text())
    assert summary["dry_run"] and "cores" in summary["machine"]
    assert summary["cuda_tests"]["passed"] + summary["cuda_tests"]["skipped"] > 0
    assert not summary["cuda_tests"]["failed"] and not summary["cuda_tests"]["errors"]
    assert [row["path"][:3] for row in summary["throughput"]["rows"]] == ["(a)", "(b)", "(c)"]
    assert summary["s10"]["epochs"] == 2 and summary["s10"]["range_test_min_loss"] > 0
    assert summary["s10"]["data"].startswith("train jpeg q90 (lossy, mean abs error ")
    assert summary["s10"]["data"].endswith("; test webp (lossless)")
    markdown = (out / "gpu_check.md").read_text()
    assert markdown.startswith("# GPU check (dry run on the CPU): ") and "| (c) default, batched loader |" in markdown
    verdict = (out / "verdict.txt").read_text().splitlines()
    assert [line.split()[0] for line in verdict[:-1]] == ["PASS"] * 4 and verdict[-1] == "gpu_check: PASS (4 checks)"
    assert {path.name for path in copies.iterdir()} == REPORTS  # what the device tool returns: at most 8 files
    # the same results judged as a GPU run's: the CUDA tests skipped and 2 epochs fail it, by name
    judged_again = gpu_check("--verdict-only", "--out", out)
    last = judged_again.stderr.strip().splitlines()[-1]
    assert judged_again.returncode == 1 and last.startswith("gpu_check: FAIL: cuda tests, ") and "s10 accuracy" in last


def test_gpu_check_stops_a_step_at_the_time_budget_and_names_it(tmp_path):
    """A hung step (a deadlocked DataLoader, a compile that never ends) must not outlast the device call:
    the step running when the budget ends is stopped, and the last line says which (5 s: the CUDA tests'
    collection alone takes longer)."""
    carry = carried(tmp_path)
    start = time.monotonic()
    result = gpu_check("--dry-run", "--carry", carry, "--out", tmp_path / "check", "--budget", 5)
    seconds = time.monotonic() - start
    assert result.returncode == 1, result.stdout[-2000:] + result.stderr[-2000:]
    last = result.stderr.strip().splitlines()[-1]
    # the step running at the 5 s mark is stopped; on a slow CPU the budget may end between two steps instead
    assert last.startswith("gpu_check.sh: FAIL: time budget: ") and (
        "was stopped at the 5 s budget" in last or "the 5 s budget ran out before " in last), last
    assert seconds < 5 + 10 + 30  # the budget, timeout's --kill-after, the summary's own seconds


def test_gpu_check_refuses_a_folder_without_cifar(tmp_path):
    result = subprocess.run(["bash", "benchmarks/gpu_check.sh", "--dry-run", "--data", str(tmp_path)], cwd=ROOT,
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 2 and "train.npz and test.npz" in result.stderr


# Runs pytest as on the GPU machine, which has pytest but neither nbval nor nbformat (nor nbclient): an
# import of those fails as for a package that is not installed, and pytest's plugin discovery does not see
# nbval's entry point (it would fail to import it).
WITHOUT_NOTEBOOK_PACKAGES = """
import importlib.abc, importlib.metadata, runpy, sys
HIDDEN = {"nbval", "nbformat", "nbclient"}

class Hidden(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.partition(".")[0] in HIDDEN:
            raise ModuleNotFoundError(f"No module named {name!r} (hidden by the test)", name=name)
        return None

sys.meta_path.insert(0, Hidden())
distributions = importlib.metadata.distributions
importlib.metadata.distributions = lambda **kwargs: [
    dist for dist in distributions(**kwargs) if (dist.metadata["Name"] or "").lower() not in HIDDEN]
sys.argv[0] = "pytest"
runpy.run_module("pytest", run_name="__main__", alter_sys=True)
"""


def test_pytest_collects_the_unit_and_gpu_tests_without_nbval_or_nbformat():
    """gpu_check.sh runs ``pytest tests -k cuda`` on a machine without the notebook packages: pytest.ini's
    plugin loads the nbval settings only where nbval imports, and the notebook tests skip, not error."""
    result = subprocess.run([sys.executable, "-c", WITHOUT_NOTEBOOK_PACKAGES, "--collect-only", "-q", "-rs",
                             "-p", "no:cacheprovider", "tests"], cwd=ROOT, capture_output=True, text=True,
                            timeout=600)
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-3000:]
    collected = [line for line in result.stdout.splitlines() if "::" in line]
    cuda = [line for line in collected if "cuda" in line.lower()]
    assert "tests/test_precision.py::test_compiled_model_trains_on_cuda" in cuda
    assert "tests/test_gpu_path.py::test_deterministic_resume_on_cuda_repeats_the_straight_run_bit_for_bit" in cuda
    assert len(cuda) >= 8 and len(collected) > 300
    assert "could not import 'nbformat'" in output and not any("test_notebooks.py::" in line for line in collected)


# What a passing GPU run's gpu_check.json holds, as far as the verdict reads it.
GOOD_RUN = {
    "dry_run": False, "seconds": 330,
    "cuda_tests": {"exit_code": 0, "passed": 17, "failed": 0, "errors": 0, "skipped": 0, "skip_reasons": {}},
    "throughput": {"default_precision": "bf16", "rows": [
        {"path": "(a) plain fp32, NCHW, Albumentations", "with_data_img_s": 21000.0, "model_step_img_s": 24000.0},
        {"path": "(b) default, Albumentations", "with_data_img_s": 30000.0, "model_step_img_s": 52000.0},
        {"path": "(c) default, batched loader", "with_data_img_s": 50000.0, "model_step_img_s": 52000.0}]},
    "s10": {"epochs": 24, "final_test_acc": 94.1},
}
NO_GPU = {"exit_code": 0, "passed": 4, "failed": 0, "errors": 0, "skipped": 13,
          "skip_reasons": {"needs a CUDA GPU": 13}}
FAILED = {"exit_code": 1, "passed": 16, "failed": 1, "errors": 0, "skipped": 0, "skip_reasons": {}}
ERRORED = {"exit_code": 1, "passed": 16, "failed": 0, "errors": 1, "skipped": 0, "skip_reasons": {}}  # in a fixture
SLOWER = {"default_precision": "bf16", "rows": [  # the automatic precision's model step behind fp32's
    {"path": "(a) plain fp32, NCHW, Albumentations", "with_data_img_s": 21000.0, "model_step_img_s": 25000.0},
    {"path": "(b) default, Albumentations", "with_data_img_s": 20000.0, "model_step_img_s": 24000.0}]}


def judged(tmp_path, capsys, summary, *options):
    """Exit status and printed lines of gpu_check_verdict.py on ``summary`` written as gpu_check.json."""
    path = tmp_path / "gpu_check.json"
    path.write_text(json.dumps(summary))
    status = gpu_check_verdict.main([str(path), *options])
    return status, capsys.readouterr().out.strip().splitlines()


def test_the_verdict_passes_a_good_run(tmp_path, capsys):
    status, lines = judged(tmp_path, capsys, GOOD_RUN)
    assert status == 0 and [line.split()[0] for line in lines[:-1]] == ["PASS"] * 4
    assert lines[-1] == "gpu_check: PASS (4 checks)"


@pytest.mark.parametrize("change, failed, said", [
    ({"cuda_tests": NO_GPU}, "cuda tests", "no CUDA test ran"),
    ({"cuda_tests": FAILED}, "cuda tests", "1 failed"),
    ({"cuda_tests": ERRORED}, "cuda tests", "1 errors"),
    ({"throughput": SLOWER}, "throughput", "0.96x fp32's (24,000 vs 25,000 img/s), not faster"),
    ({"throughput": {"rows": []}}, "throughput", "lacks row (a)"),
    ({"s10": {"epochs": 24, "final_test_acc": 93.49}}, "s10 accuracy",
     "93.49% after 24 epochs, below the 93.50% floor"),
    ({"s10": {"epochs": 11, "final_test_acc": 94.0}}, "s10 accuracy", "11 epochs trained where 24 were asked for"),
    ({"seconds": 451}, "time budget", "451 s of the 450 s budget"),
], ids=["none-ran", "one-failed", "one-errored", "auto-slower", "no-rows", "below-floor", "short-run", "over-budget"])
def test_the_verdict_fails_a_run_that_breaks_a_floor_and_names_it(tmp_path, capsys, change, failed, said):
    """Each result a GPU run must not pass with: one FAIL line saying why, the closing line naming it."""
    status, lines = judged(tmp_path, capsys, {**GOOD_RUN, **change})
    failures = [line for line in lines[:-1] if line.startswith("FAIL")]
    assert status == 1 and len(failures) == 1 and said in failures[0], lines
    assert lines[-1] == f"gpu_check: FAIL: {failed}"


def test_the_dry_run_verdict_lets_the_gpu_figures_be_absent_but_not_a_failed_test(tmp_path, capsys):
    dry = {**GOOD_RUN, "cuda_tests": NO_GPU, "throughput": SLOWER, "s10": {"epochs": 2, "final_test_acc": 10.0}}
    assert judged(tmp_path, capsys, dry, "--dry-run", "--epochs", "2")[0] == 0
    for tests in (FAILED, {**NO_GPU, "passed": 0, "skipped": 0, "skip_reasons": {}}):  # a failure; none collected
        status, lines = judged(tmp_path, capsys, {**dry, "cuda_tests": tests}, "--dry-run", "--epochs", "2")
        assert status == 1 and lines[-1] == "gpu_check: FAIL: cuda tests"


def test_the_verdict_reads_pytest_junit_reports(tmp_path):
    report = tmp_path / "report.xml"
    report.write_text("""<testsuites><testsuite name="pytest">
      <testcase name="a"/><testcase name="b"><failure message="assert 0"/></testcase>
      <testcase name="c"><error message="fixture"/></testcase>
      <testcase name="d"><skipped message="needs a CUDA GPU"/></testcase>
      <testcase name="e"><skipped message="needs a CUDA GPU"/></testcase></testsuite></testsuites>""")
    counts = gpu_check_verdict.cuda_test_counts(report, 1)
    assert counts == {"exit_code": 1, "passed": 1, "failed": 1, "errors": 1, "skipped": 2,
                      "skip_reasons": {"needs a CUDA GPU": 2}}
    missing = gpu_check_verdict.cuda_test_counts(tmp_path / "absent.xml", 4)
    assert missing["errors"] == 1 and "absent.xml" in missing["report_error"]
