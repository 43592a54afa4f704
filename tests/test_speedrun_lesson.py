"""The third lesson run end to end in SMOKE mode: every cell runs, the pieces show what the lesson says they
do, and each kind of run goes through experiments.py's store.

The lesson's SMOKE run is the one nbval makes of ``tests/smoke_notebooks/CIFAR10_Speedrun.ipynb`` in the
same session (``make test``; its code cells are the committed notebook's, tests/test_notebooks.py checks
that): nbval compares its outputs with the reference's, this test checks what the lesson says in them. Run
alone, the test executes that notebook itself."""
import os
from pathlib import Path

import pytest

import experiments

nbformat = pytest.importorskip("nbformat")  # absent where only the unit tests run (gpu_check.sh's machine)

ROOT = Path(__file__).resolve().parents[1]
REFERENCE = ROOT / "tests" / "smoke_notebooks" / "CIFAR10_Speedrun.ipynb"


def executed_here(folder):
    """The outputs of each cell of the lesson's SMOKE reference, executed in a new kernel whose temporary
    root (where the SMOKE run keeps its store) is ``folder``."""
    from nbclient import NotebookClient

    notebook = nbformat.read(REFERENCE, as_version=4)
    env = {"SMOKE": "1", "PLAIN_PROGRESS": "1", "TMPDIR": str(folder)}
    saved = {name: os.environ.get(name) for name in env}
    os.environ.update(env)
    try:
        NotebookClient(notebook, timeout=900, kernel_name="python3",
                       resources={"metadata": {"path": str(ROOT)}}).execute()
    finally:
        for name, value in saved.items():
            os.environ.pop(name) if value is None else os.environ.__setitem__(name, value)
    return [cell.get("outputs", []) for cell in notebook.cells if cell.cell_type == "code"]


@pytest.fixture(scope="module")
def smoke_run(tmp_path_factory):
    """``(outputs of each code cell, the temporary root the kernel ran in)``: nbval's run of this session,
    or one made here."""
    from tests.nbval_settings import executed_outputs

    outputs = executed_outputs(REFERENCE.name)
    if outputs is not None:
        return outputs, Path(os.environ["TMPDIR"])  # nbval's kernels inherit it (tests/conftest.py)
    folder = tmp_path_factory.mktemp("kernel_tmp")
    return executed_here(folder), folder


def test_the_speedrun_lesson_runs_in_smoke_mode_and_shows_each_piece(smoke_run):
    cells, kernel_tmp = smoke_run
    outputs = [output for cell in cells for output in cell]
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
    stores = [store for store in kernel_tmp.glob("*/runs.json")
              if any(key.startswith("speedrun ") for key in experiments.load_store(store))]
    assert len(stores) == 1, stores  # the SMOKE run's own store, a new file in a temporary folder
    trained = {record["spec"]["scheduler"] for record in experiments.load_store(stores[0]).values()}
    assert {"onecycle", "warmup_cosine", "step", "constant"} <= trained  # each schedule's runs went through the store
    images = [output for output in outputs if "image/png" in output.get("data", {})]
    assert len(images) >= 4  # flips, range test, curves, schedules
    assert not list((ROOT / "runs" / "experiments").glob("*epochs-2*"))  # the SMOKE runs stay out of the repository
