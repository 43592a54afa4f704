"""The third lesson (tools/build_speedrun.py) run end to end in SMOKE mode: every cell runs, the pieces
show what the lesson says they do, and each kind of run goes through experiments.py's store.

Until the notebook is committed with the outputs of its full run, the test builds it to a temporary
file; tests/test_notebooks.py then adds its SMOKE reference to nbval like the other lessons'."""
import os
import subprocess
import sys
from pathlib import Path

import pytest

import experiments

nbformat = pytest.importorskip("nbformat")  # absent where only the unit tests run (gpu_check.sh's machine)

ROOT = Path(__file__).resolve().parents[1]


def test_the_speedrun_lesson_runs_in_smoke_mode_and_shows_each_piece(tmp_path):
    from nbclient import NotebookClient

    built = tmp_path / "CIFAR10_Speedrun.ipynb"
    subprocess.run([sys.executable, "tools/build_speedrun.py", str(built)], cwd=ROOT, check=True)
    notebook = nbformat.read(built, as_version=4)
    kernel_tmp = tmp_path / "kernel_tmp"  # the SMOKE run's store is a new file in a temporary folder: here
    kernel_tmp.mkdir()
    env = {"SMOKE": "1", "PLAIN_PROGRESS": "1", "TMPDIR": str(kernel_tmp)}
    saved = {name: os.environ.get(name) for name in env}
    os.environ.update(env)
    try:
        NotebookClient(notebook, timeout=900, kernel_name="python3",
                       resources={"metadata": {"path": str(ROOT)}}).execute()
    finally:
        for name, value in saved.items():
            os.environ.pop(name) if value is None else os.environ.__setitem__(name, value)
    outputs = [output for cell in notebook.cells for output in cell.get("outputs", [])]
    assert not [output for output in outputs if output.output_type == "error"]
    text = "".join(output.get("text", "") for output in outputs if output.get("name") == "stdout")
    assert "images seen both ways over epochs 1 and 2: 100%" in text
    assert "covariance of the whitening layer's outputs: diagonal 1.00 to 1.00, largest off-diagonal 0.00" in text
    assert "min_loss" in text and "(the recipe's" in text
    assert "with 6-view test-time augmentation" in text and "2 seeds: " in text
    for row in ("lookahead weight averaging", "alternating flip (random flips instead)", "label smoothing 0.2",
                "test-time augmentation"):
        assert f"\n{row} " in text, row
    for schedule in ("one cycle", "constant 1.5 (the peak)", "step (/10 after epochs 4, 8)", "warm-up + cosine"):
        assert f"\n{schedule} " in text, schedule
    assert "* 1. " in text and "* 5. " in text  # the ranking, computed from the runs
    assert "points against one cycle" in text and "largest fall" in text
    assert "repeat the constant-" in text  # the determinism check of step against constant
    stores = list(kernel_tmp.glob("*/runs.json"))
    assert len(stores) == 1, stores
    trained = {record["spec"]["scheduler"] for record in experiments.load_store(stores[0]).values()}
    assert {"onecycle", "warmup_cosine", "step", "constant"} <= trained  # each schedule's runs went through the store
    images = [output for output in outputs if "image/png" in output.get("data", {})]
    assert len(images) >= 4  # flips, range test, curves, schedules
    assert not list((ROOT / "runs" / "experiments").glob("*epochs-2*"))  # the SMOKE runs stay out of the repository
