"""What every committed lesson must be: the notebook its builder writes (tools/build_*.py), executed in
full, top to bottom, with plain-text outputs GitHub and nbval can show: no error cell, no progress-bar
widget or carriage-return redraws, no path of the machine it ran on, under 8 MB."""
import re
import sys
from pathlib import Path

import pytest

nbformat = pytest.importorskip("nbformat")  # absent where only the unit tests run (gpu_check.sh's machine)
ROOT = Path(__file__).resolve().parents[1]
LESSONS = {"S10.ipynb": "build_s10.py", "ImageNet_LR_Finder.ipynb": "build_imagenet.py",
           "CIFAR10_Speedrun.ipynb": "build_speedrun.py"}
sys.path.insert(0, str(ROOT / "tools"))
from sync_code_cells import built  # noqa: E402 (the notebook a builder writes)

MACHINE_PATH = re.compile(r"(/work/|/home/|/root/|/tmp/|/private/var/|[A-Z]:\\\\Users)")




def committed(name):
    return nbformat.read(ROOT / name, as_version=4)


def output_texts(notebook):
    """(cell index, text) for every text output of ``notebook``'s code cells."""
    for index, cell in enumerate(notebook.cells):
        for output in cell.get("outputs", []):
            if output.output_type == "stream":
                yield index, output.text
            elif output.output_type in ("execute_result", "display_data"):
                yield index, output.get("data", {}).get("text/plain", "")


@pytest.mark.parametrize("name", LESSONS)
def test_the_committed_lesson_is_the_builders(name):
    assert [(cell.cell_type, cell.source) for cell in committed(name).cells] == \
        [(cell.cell_type, cell.source) for cell in built(LESSONS[name]).cells], \
        f"{name} differs from tools/{LESSONS[name]}: rebuild it and re-execute it"


@pytest.mark.parametrize("name", LESSONS)
def test_the_committed_lesson_ran_in_full_without_errors(name):
    cells = [cell for cell in committed(name).cells if cell.cell_type == "code"]
    assert [cell.execution_count for cell in cells] == list(range(1, len(cells) + 1)), "not run top to bottom in one kernel"
    errors = [index for index, cell in enumerate(cells) for output in cell.outputs if output.output_type == "error"]
    assert not errors, f"{name}: error outputs in code cells {errors}"


@pytest.mark.parametrize("name", LESSONS)
def test_the_committed_lesson_shows_plain_lines_and_no_machine_paths(name):
    notebook = committed(name)
    widgets = [index for index, cell in enumerate(notebook.cells) for output in cell.get("outputs", [])
               if any("widget" in kind for kind in output.get("data", {}))]
    assert not widgets, f"{name}: progress-bar widgets in cells {widgets} (execute with PLAIN_PROGRESS=1)"
    redraws = [index for index, text in output_texts(notebook) if "\r" in text]
    assert not redraws, f"{name}: carriage-return redraws in cells {redraws}"
    paths = [(index, MACHINE_PATH.search(text).group()) for index, text in output_texts(notebook)
             if MACHINE_PATH.search(text)]
    assert not paths, f"{name}: machine paths in outputs {paths}"
    assert (ROOT / name).stat().st_size < 8_000_000


def test_the_path_check_finds_a_machine_path():
    assert MACHINE_PATH.search("wrote /work/main/checkpoints/last.pt") and not MACHINE_PATH.search("wrote Data/curves.png")


def test_every_notebook_at_the_top_level_is_a_lesson_with_a_builder():
    assert sorted(path.name for path in ROOT.glob("*.ipynb")) == sorted(LESSONS), \
        "a notebook at the top level is a lesson: add it and its builder (tools/build_*.py) to LESSONS"


@pytest.mark.parametrize("name", LESSONS)
def test_a_learners_run_writes_its_figures_outside_the_committed_ones(name, monkeypatch):
    """Run all without SMOKE writes every figure under ``FIGURES``, which is not ``Data/`` unless asked for
    (``FIGURES=Data``, as ``make run`` does for the committed run)."""
    sources = [cell.source for cell in built(LESSONS[name]).cells if cell.cell_type == "code"]
    written = re.findall(r"(?:save_path|plot_file)=([^,)\n]+)", "\n".join(sources))
    assert written and all(target.startswith('f"{FIGURES}/') for target in written), written
    line = next(line for source in sources for line in source.splitlines() if line.startswith("FIGURES = "))
    monkeypatch.delenv("FIGURES", raising=False)
    settings = {"os": __import__("os"), "tempfile": __import__("tempfile"), "SMOKE": False}
    exec(line, settings)
    assert Path(settings["FIGURES"]).parts[0] != "Data"
    monkeypatch.setenv("FIGURES", "Data")
    exec(line, settings)
    assert settings["FIGURES"] == "Data"
