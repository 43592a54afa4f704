"""Copy the lesson builders' code cells into the executed notebooks, keeping every cell's outputs: the
committed lessons (``S10.ipynb``, ``CIFAR10_Speedrun.ipynb``, ``ImageNet_LR_Finder.ipynb``) and their
SMOKE references (``tests/smoke_notebooks/``). It refuses when the cells' number or order (code and
markdown) differs from the builder's: then the notebook must be executed again.

It is for a change to the code cells that changes none of their outputs, such as a helper moved to
another module and imported from there; ``tools/golden_record.py check`` shows that such a change leaves
every number as it was. Any other change to a code cell means executing the notebook again (``make
run``) and making its SMOKE reference again (``tools/smoke_references.py``). Markdown is
``tools/sync_markdown.py``'s.

    python tools/sync_code_cells.py                    # all three lessons
    python tools/sync_code_cells.py S10.ipynb          # one
"""
import runpy
import sys
from pathlib import Path
from unittest import mock

import nbformat

ROOT = Path(__file__).resolve().parent.parent
REFERENCES = ROOT / "tests" / "smoke_notebooks"
LESSONS = {"S10.ipynb": "build_s10.py", "ImageNet_LR_Finder.ipynb": "build_imagenet.py",
           "CIFAR10_Speedrun.ipynb": "build_speedrun.py"}


def built(builder):
    """The notebook ``tools/<builder>`` writes (nothing is written)."""
    written = {}
    sys.path.insert(0, str(ROOT / "tools"))
    try:
        with mock.patch.object(nbformat, "write", lambda notebook, path, *a, **k: written.update(notebook=notebook)):
            runpy.run_path(str(ROOT / "tools" / builder), run_name="__main__")
    finally:
        sys.path.remove(str(ROOT / "tools"))
    return written["notebook"]


def updated(fresh, path, code_only=False):
    """The notebook at ``path`` with the code-cell sources of ``fresh``, its outputs, metadata and execution
    counts kept, and how many cells changed; ``code_only``: compare the code cells alone (a SMOKE reference's
    markdown may lag). Exits when the layouts differ."""
    executed = nbformat.read(path, as_version=4)
    theirs = [cell for cell in executed.cells if not code_only or cell.cell_type == "code"]
    ours = [cell for cell in fresh.cells if not code_only or cell.cell_type == "code"]
    if [cell.cell_type for cell in theirs] != [cell.cell_type for cell in ours]:
        sys.exit(f"{path.relative_to(ROOT)}: its cells differ in number or order from the builder's "
                 f"({len(theirs)} against {len(ours)}): execute the notebook again; nothing was written")
    changed = 0
    for old, new in zip(theirs, ours):
        if old.cell_type == "code" and old.source != new.source:
            old.source = new.source
            changed += 1
    return executed, changed


def main(names):
    """Check every notebook first, then write the ones that change: a refusal writes nothing."""
    plans = []
    for name in names or LESSONS:
        fresh = built(LESSONS[name])
        plans += [(path, *updated(fresh, path, code_only)) for path, code_only in
                  ((ROOT / name, False), (REFERENCES / name, True))]
    for path, notebook, changed in plans:
        if changed:
            nbformat.write(notebook, path)
        print(f"{path.relative_to(ROOT)}: {changed} code cell(s) updated")


if __name__ == "__main__":
    main(sys.argv[1:])
