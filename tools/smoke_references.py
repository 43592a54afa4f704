"""Writes the SMOKE references that ``make test`` runs under nbval: ``tests/smoke_notebooks/<name>.ipynb``
for each committed notebook (or those named), as described in ``tests/nbval_settings.py``.

Each notebook is executed twice with ``SMOKE=1`` in the repository root. The reference keeps the committed
notebook's cells (sources and metadata) with the first run's outputs, sanitised as nbval compares them,
images left out (nbval does not compare them). Every code cell that prints or returns text (not only a
figure) and whose text output is the same in both runs gets the ``nbval-check-output`` and
``smoke-logic`` tags, unless the committed notebook already checks it; its outputs are kept. The other
cells are stored unrun. A cell whose output differs between the two runs is named at the end: a SMOKE
output that carries the lesson's logic must not vary, so that is a bug to fix, not a cell to leave out.

Run it after changing a notebook's code cells (``tests/test_notebooks.py`` says when) or on purpose
after a change that moves the SMOKE numbers; ``git diff tests/smoke_notebooks`` then shows what moved.

    python tools/smoke_references.py                 # every notebook at the top level
    python tools/smoke_references.py S10.ipynb       # one
"""
import argparse
import copy
import os
import sys
from pathlib import Path

import nbformat
from nbclient import NotebookClient
from nbval.plugin import coalesce_streams

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from tests.nbval_settings import (CHECK_TAG, LOGIC_TAG, REFERENCES, checks_output, compared_text,  # noqa: E402
                                  fingerprint, sanitize)


class NbvalLikeClient(NotebookClient):
    """nbclient, executing each cell as nbval does: ``store_history=False``, under which IPython shows a
    result even after a final ``;``. The reference then holds what nbval will see."""

    async def async_execute_cell(self, cell, cell_index, execution_count=None, store_history=True):
        return await super().async_execute_cell(cell, cell_index, execution_count, store_history=False)


def execute(notebook):
    """A copy of ``notebook`` executed with ``SMOKE=1`` and ``PLAIN_PROGRESS=1`` in the repository root."""
    executed = copy.deepcopy(notebook)
    os.environ["SMOKE"] = "1"
    os.environ["PLAIN_PROGRESS"] = "1"  # the executed notebook keeps no live bars (progress.py)
    NbvalLikeClient(executed, timeout=1200, kernel_name="python3",
                    resources={"metadata": {"path": str(ROOT)}}).execute()
    return executed


def shows_text(outputs):
    """Whether a cell prints something or returns a result other than a figure or an image (a figure-only
    cell's text is matplotlib's repr, which says nothing of the lesson and changes with matplotlib)."""
    return any((output.output_type == "stream" and output.name == "stdout")
               or (output.output_type in ("execute_result", "display_data") and "text/plain" in output.data
                   and not any(key.startswith("image/") for key in output.data))
               for output in outputs)


def stored(outputs):
    """Outputs as the reference stores them: streams merged, stderr and images left out, text sanitised."""
    kept = []
    for output in coalesce_streams(copy.deepcopy(outputs)):
        if output.output_type == "stream" and output.name == "stdout":
            output.text = sanitize(output.text)
        elif output.output_type in ("execute_result", "display_data"):
            output.data = {key: sanitize(value) for key, value in output.data.items() if key.startswith("text/")}
            output.metadata = {}
        else:
            continue
        kept.append(output)
    return kept


def make_reference(name):
    """Execute ``name`` twice in SMOKE mode and write its reference; returns the cells whose output varied."""
    committed = nbformat.read(ROOT / name, as_version=4)
    first, second = execute(committed), execute(committed)
    reference, varying = copy.deepcopy(committed), []
    for index, (cell, a, b) in enumerate(zip(reference.cells, first.cells, second.cells)):
        if cell.cell_type != "code":
            continue
        texts = compared_text(a.outputs)
        if texts != compared_text(b.outputs):
            varying.append(f"cell {index}: {cell.source.splitlines()[0][:80]}")
        tags = [tag for tag in cell.metadata.get("tags", []) if tag != LOGIC_TAG]
        if shows_text(a.outputs) and texts == compared_text(b.outputs) and not checks_output(cell):
            tags += [CHECK_TAG, LOGIC_TAG]
        if tags:
            cell.metadata["tags"] = tags
        else:
            cell.metadata.pop("tags", None)
        checked = CHECK_TAG in tags or checks_output(cell)
        cell.outputs = stored(a.outputs) if checked else []
        cell.execution_count = index if checked else None  # nbval compares only cells with a count
    reference.metadata["smoke_reference"] = {
        "notebook": name, "made_with": fingerprint(),
        "how": "SMOKE=1, executed by python tools/smoke_references.py; nbval compares the tagged cells"}
    REFERENCES.mkdir(exist_ok=True)
    nbformat.write(reference, REFERENCES / name)
    return varying


def main(argv=None):
    """Write the references of the notebooks named (default: every ``*.ipynb`` at the top level)."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("notebooks", nargs="*", help="notebook file names in the repository root")
    names = parser.parse_args(argv).notebooks or sorted(path.name for path in ROOT.glob("*.ipynb"))
    problems = []
    for name in names:
        varying = make_reference(name)
        print(f"wrote {REFERENCES.relative_to(ROOT) / name}")
        problems += [f"{name} {cell}" for cell in varying]
    if problems:
        sys.exit("SMOKE outputs that differ between two runs (not compared; make them deterministic):\n  "
                 + "\n  ".join(problems))


if __name__ == "__main__":
    main()
