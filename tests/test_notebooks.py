"""The SMOKE references (tests/smoke_notebooks/, run by nbval in `make test`; see tests/nbval_settings.py)
stand for the committed notebooks: the same code cells, checks on the cells that carry the lesson's logic,
and the committed notebooks' own checked cells showing the outputs their SMOKE runs give."""
import os
import subprocess
import sys
import tempfile

import pytest

nbformat = pytest.importorskip("nbformat")  # absent where only the unit tests run (gpu_check.sh's machine)
pytest.importorskip("nbval")  # tests.nbval_settings patches it on import
from tests.nbval_settings import (CHECK_TAG, LOGIC_TAG, REFERENCES, ROOT, checks_output, compared_text,  # noqa: E402
                                  sanitize)

NOTEBOOKS = sorted(path.name for path in ROOT.glob("*.ipynb"))
REMAKE = "make it again with: python tools/smoke_references.py"


def code_cells(name, folder=ROOT):
    """The code cells of notebook ``name`` in ``folder``."""
    return [cell for cell in nbformat.read(folder / name, as_version=4).cells if cell.cell_type == "code"]


@pytest.mark.parametrize("name", NOTEBOOKS)
def test_each_notebook_has_a_smoke_reference_with_its_code_cells(name):
    assert (REFERENCES / name).is_file(), f"{name} has no SMOKE reference in {REFERENCES}: {REMAKE} {name}"
    committed, reference = code_cells(name), code_cells(name, REFERENCES)
    assert [cell.source for cell in reference] == [cell.source for cell in committed], \
        f"the code cells of {name} changed since its SMOKE reference was made: {REMAKE} {name}"
    for ours, theirs in zip(reference, committed):
        assert set(theirs.metadata.get("tags", [])) <= set(ours.metadata.get("tags", []))


@pytest.mark.parametrize("name, logic", [
    ("S10.ipynb", ["min_loss  ", "epoch  1/", "epoch  2/", "misclassified"]),
    ("ImageNet_LR_Finder.ipynb", ["min_loss  ", "epoch  1/", "epoch  2/", "suggested_lr", "<- MAX_LR",
                                  "the run by hand: ", "per seed: ", "to train", "progressive resizing from ",
                                  "against batch ", "runs timed whole)"]),
    ("CIFAR10_Speedrun.ipynb", ["min_loss  ", "epoch  1/", "epoch  2/", "with 6-view test-time augmentation",
                                "to train", "best: MAX_LR", "the run by hand: ", "timed whole)", "seeds' noise",
                                "minus one cycle, linear anneal: mean [95% interval]", "comparisons with one cycle"]),
])
def test_the_smoke_references_check_the_lessons_logic(name, logic):
    """The range test's suggestions and the per-epoch lines are among the outputs nbval compares; every
    stored output is checked and every checked cell has outputs to compare."""
    cells = code_cells(name, REFERENCES)
    checked = "\n".join(text for cell in cells if checks_output(cell) for text in compared_text(cell.outputs))
    assert all(fragment in checked for fragment in logic), [f for f in logic if f not in checked]
    for cell in cells:
        assert bool(cell.outputs) == checks_output(cell) == (cell.execution_count is not None), cell.source[:80]
        assert LOGIC_TAG not in cell.metadata.get("tags", []) or CHECK_TAG in cell.metadata["tags"]


@pytest.mark.parametrize("name", NOTEBOOKS)
def test_cells_a_committed_notebook_checks_show_its_smoke_output(name):
    """The committed notebooks hold a real run; the cells they check (model summaries, the schedule probe) do
    not depend on the mode, so their outputs must equal the SMOKE reference's: a helper whose change moves
    them needs the notebook run again (make run), not only the reference."""
    for committed, reference in zip(code_cells(name), code_cells(name, REFERENCES)):
        if checks_output(committed):
            assert compared_text(committed.outputs) == compared_text(reference.outputs), committed.source[:80]


def test_a_temporary_folder_compares_equal_wherever_the_temporary_root_is():
    stored = "report: /tmp/<tmpdir>/lr_finder_log.txt, /tmp/<tmpdir>/suggested_lr.json"
    for root in ("/tmp", "/var/folders/x1/T", "/tmp/pytest-children-ab_12"):
        printed = f"report: {root}/tmpa1b2_c3d/lr_finder_log.txt, {root}/tmpzz99yy88/suggested_lr.json"
        assert sanitize(printed) == sanitize(stored) == "report: <tmpdir>/lr_finder_log.txt, <tmpdir>/suggested_lr.json"
    assert sanitize("Checkpoints (10 files) in checkpoints/s10") == "Checkpoints (10 files) in checkpoints/s10"


def test_the_processes_tests_start_use_a_temporary_root_the_session_removes(tmp_path):
    child_root = subprocess.run([sys.executable, "-c", "import tempfile; print(tempfile.gettempdir())"],
                                capture_output=True, text=True, check=True).stdout.strip()
    assert os.path.basename(child_root).startswith("pytest-children-") and os.path.isdir(child_root)
    assert not str(tmp_path).startswith(child_root)  # a failed test's tmp_path outlives the session
    assert tempfile.gettempdir() != child_root


def test_when_a_run_was_stored_compares_equal():
    """experiments.ensure names the date of a stored run; a SMOKE run stores its first seed a minute or so
    before a later cell reads it back, so two runs of the same notebook differ only there."""
    line = "seed=0: 84.77% (stored: {}, 12 s on a laptop)"
    assert sanitize(line.format("2026-12-01 09:28 UTC")) == sanitize(line.format("2027-01-31 23:59 UTC"))
    assert sanitize(line.format("2026-12-01 09:28 UTC")) == "seed=0: 84.77% (stored: <date>, <time> on a laptop)"
    assert sanitize(line.replace("84.77", "84.78").format("2026-12-01 09:28 UTC")) != sanitize(line.format("2026-12-01 09:28 UTC"))


def test_the_tricks_tables_times_compare_equal_and_nothing_else_in_it_does():
    """The speedrun lesson's tricks table: a row's time differs from run to run, its accuracy, gain and counts not."""
    table = ("without                                   accuracy   adds runs  time of a run\n"
             "(nothing: the full recipe)                  58.59%           2  {} s (2 of 2 timed whole)\n"
             "lookahead weight averaging                  97.66% -39.06    1  {} s (1 of 1 timed whole)\n")
    assert sanitize(table.format(7, 18)) == sanitize(table.format(1074, 1152))
    assert sanitize(table.format(7, 18)) != sanitize(table.format(7, 18).replace("-39.06", "-39.07"))
    assert sanitize(table.format(7, 18)) != sanitize(table.format(7, 18).replace("(1 of 1", "(0 of 1"))
    schedule = "one cycle, cosine anneal    59.77%  4.97  2  +1.17 [-43.50, +45.84]  +4.69, -2.34\n"
    assert sanitize(schedule) == schedule
