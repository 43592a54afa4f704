"""Copy a notebook builder's markdown cells into the executed notebook, keeping its code cells and
outputs; refuses when a code cell differs (then the notebook must be executed again).

    python tools/sync_markdown.py tools/build_s10.py S10.ipynb
"""
import runpy
import sys
from unittest import mock

import nbformat


def main(builder, notebook_path):
    written = {}
    with mock.patch.object(nbformat, "write", lambda notebook, path: written.update(notebook=notebook)):
        runpy.run_path(builder)
    fresh, executed = written["notebook"], nbformat.read(notebook_path, as_version=4)
    if [c.cell_type for c in fresh.cells] != [c.cell_type for c in executed.cells]:
        sys.exit("the cell layout differs: execute the notebook again")
    for new, old in zip(fresh.cells, executed.cells):
        if new.cell_type == "code" and new.source != old.source:
            sys.exit(f"a code cell differs, execute the notebook again:\n{new.source[:200]}")
        if new.cell_type == "markdown":
            old.source = new.source
    nbformat.write(executed, notebook_path)


if __name__ == "__main__":
    main(*sys.argv[1:])
