"""Execute a notebook's Colab setup cell (outside Colab: it only says so) in a Jupyter kernel and keep
its real output, without re-running the rest of the notebook.

    python tools/run_setup_cell.py S10.ipynb
"""
import sys
from pathlib import Path

import nbformat
from nbclient import NotebookClient

sys.path.insert(0, str(Path(__file__).resolve().parent))
from notebook_common import is_setup_cell  # noqa: E402


def main(path):
    notebook = nbformat.read(path, as_version=4)
    index = next(i for i, cell in enumerate(notebook.cells) if cell.cell_type == "code" and is_setup_cell(cell.source))
    single = nbformat.v4.new_notebook(cells=[notebook.cells[index]], metadata=notebook.metadata)
    NotebookClient(single, timeout=120, resources={"metadata": {"path": str(Path(path).resolve().parent)}}).execute()
    notebook.cells[index] = single.cells[0]
    nbformat.write(notebook, path)


if __name__ == "__main__":
    main(sys.argv[1])
