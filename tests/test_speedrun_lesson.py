"""The third lesson run end to end in SMOKE mode: every cell runs, the pieces show what the lesson says they
do, and every stored run is read from the SMOKE reference store (tests/smoke_notebooks/speedrun_runs.json).

The lesson's SMOKE run is the one nbval makes of ``tests/smoke_notebooks/CIFAR10_Speedrun.ipynb`` in the
same session (``make test``; its code cells are the committed notebook's, tests/test_notebooks.py checks
that): nbval compares its outputs with the reference's, this test checks what the lesson says in them. Run
alone, the test executes that notebook itself."""
import os
import re
from pathlib import Path

import pytest

import experiments
import schedule_experiment

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
    assert "min_loss" in text and "(airbench94's" in text and "best: MAX_LR" in text  # the held-out sweep's table
    assert re.search(r"MAX_LR = [\d.]+, inside the peaks tried", text)
    # the run by hand is seed 0 of the store: on the machine kind that stored it, the same to the digit
    by_hand, stored = re.search(r"the run by hand: ([\d.]+)%; the store's seed 0: ([\d.]+)%", text).groups()
    if ", 0 read from another machine's runs" in text:
        assert by_hand == stored
    assert "with 6-view test-time augmentation" in text and ", 2 seeds: 0: " in text
    for row in ("lookahead weight averaging", "alternating flip (random flips instead)", "label smoothing 0.2",
                "test-time augmentation"):
        assert f"\n{row} " in text, row
    assert "-0.00" not in text  # a difference that rounds to nothing prints as +0.00
    for arm in schedule_experiment.ARMS:  # every arm's sweep and pick, read from the SMOKE reference store
        assert re.search(rf"\n{re.escape(arm)} +0.375: [\d.]+%, 0.75: .* -> [\d.]+; [\d.]+% mean of 2 of 2 seeds", text), arm
    assert "4 comparisons with one cycle, linear anneal" in text
    assert re.search(r"\* constant minus one cycle: [+-][\d.]+ points, 95% interval \[", text)
    assert "0 to train" in text  # every run read from the stores: the SMOKE run trains the range test and one run
    written = [store for store in kernel_tmp.glob("*/runs.json")
               if any(key.startswith("speedrun ") for key in experiments.load_store(store))]
    assert not written  # nothing trained, so its own store stays unwritten; the reference is only read
    images = [output for output in outputs if "image/png" in output.get("data", {})]
    assert len(images) >= 5  # flips, range test, held-out sweep, curves, schedules
    assert not list((ROOT / "runs" / "experiments").glob("*epochs-2*"))  # the SMOKE runs stay out of the repository
