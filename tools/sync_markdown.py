"""Copy a notebook builder's markdown cells into the executed notebook, keeping its code cells and
outputs; refuses when a code cell differs (then the notebook must be executed again).

The one code cell it may add is the Colab setup cell (``tools/notebook_common.py``): outside Colab it
only says so; run `tools/run_setup_cell.py` on the notebook afterwards to record that output.

    python tools/sync_markdown.py tools/build_s10.py S10.ipynb
"""
import runpy
import sys
from pathlib import Path
from unittest import mock

import nbformat

sys.path.insert(0, str(Path(__file__).resolve().parent))
from notebook_common import is_setup_cell  # noqa: E402


def main(builder, notebook_path):
    written = {}
    with mock.patch.object(nbformat, "write", lambda notebook, path: written.update(notebook=notebook)):
        runpy.run_path(builder)
    fresh, executed = written["notebook"], nbformat.read(notebook_path, as_version=4)
    old_cells, cells = list(executed.cells), []
    for new in fresh.cells:
        if new.cell_type == "code" and is_setup_cell(new.source) and not (old_cells and is_setup_cell(old_cells[0].source)):
            cells.append(new)  # then tools/run_setup_cell.py records its output
            continue
        if not old_cells or old_cells[0].cell_type != new.cell_type:
            sys.exit("the cell layout differs: execute the notebook again")
        old = old_cells.pop(0)
        if new.cell_type == "code" and new.source != old.source and not is_setup_cell(new.source):
            sys.exit(f"a code cell differs, execute the notebook again:\n{new.source[:200]}")
        if new.cell_type == "markdown" or is_setup_cell(new.source):
            old.source = new.source
        cells.append(old)
    if old_cells:
        sys.exit("the executed notebook has more cells than the builder writes: execute the notebook again")
    executed.cells = cells
    nbformat.write(executed, notebook_path)


if __name__ == "__main__":
    main(*sys.argv[1:])
