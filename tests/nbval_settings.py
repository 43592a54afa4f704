"""nbval settings, loaded as a pytest plugin from pytest.ini.

* stderr (tqdm bars, library warnings) differs from run to run and between SMOKE and real runs, so it is
  left out of the comparison of checked cells; stdout and text/plain stay compared.
* Times, dates, machine names and temporary folder names are sanitised (``SANITIZE``, and the name of
  this machine's CPU) before outputs are compared; every other character of a checked output counts.
* The SMOKE references: ``tests/smoke_notebooks/<name>.ipynb`` is ``<name>.ipynb`` executed with
  ``SMOKE=1`` by ``tools/smoke_references.py``, its code cells identical to the committed notebook's
  (``tests/test_notebooks.py`` checks that). The committed notebooks hold a real run's outputs, which a
  SMOKE run cannot repeat; the references hold a SMOKE run's, and carry the ``nbval-check-output`` tag on
  every cell whose SMOKE output is deterministic, the range test's suggestions and the per-epoch lines
  among them. ``make test`` runs them under ``nbval --nbval-lax``, in the repository root as the
  committed notebooks run. Their numbers depend on the library versions and on whether the CPU has bf16
  units (SMOKE runs autocast where it does); on a machine that differs from the one that made them
  (``fingerprint``), the lesson-logic cells (tag ``smoke-logic``) still run but are not compared, and a
  warning says how to make references for this machine.
"""
import re
import warnings
from pathlib import Path

import pytest
from nbval import plugin as nbval_plugin
from nbval.plugin import IPyNbCell, IPyNbFile

ROOT = Path(__file__).resolve().parents[1]
REFERENCES = Path(__file__).resolve().parent / "smoke_notebooks"
CHECK_TAG = "nbval-check-output"  # nbval compares the outputs of cells with this tag (or the comment marker)
LOGIC_TAG = "smoke-logic"         # added by tools/smoke_references.py to the cells it checks
SANITIZE = [  # (regex, replacement): what may differ between two runs of the same code on the same data
    (r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d", "<timestamp>"),
    (r"\d{4}-\d\d-\d\d \d\d:\d\d UTC", "<date>"),  # when experiments.py stored a run
    (r"\b\d+(?:\.\d+)? ?(?:s|min)\b", "<time>"),
    # a tempfile.mkdtemp() folder with the path above it, wherever the temporary root is (/tmp, macOS's
    # /var/folders/..., the test session's own, see tests/conftest.py); references store "<tmpdir>"
    (r"(?:/[\w.-]+)*/(?:tmp[a-z0-9_]{8}\b|<tmpdir>)", "<tmpdir>"),
    (r"\btmp[a-z0-9_]{8}\b", "<tmpdir>"),             # a tempfile.mkdtemp() name on its own
    (r"\b\d+ cores\b", "<n> cores"),
    (r"bf16 units: [a-z0-9_, ]+?(?=, torch)", "bf16 units: <units>"),  # utils.describe_machine's names
    (r"\btorch \d+\.\d+\.\d+\S*", "torch <version>"),
]


def cpu_model():
    """The CPU's model name as ``utils.describe_machine`` prints it (None where /proc/cpuinfo is absent)."""
    try:
        with open("/proc/cpuinfo") as file:
            return next(line.split(":", 1)[1].strip() for line in file if line.startswith("model name"))
    except (OSError, StopIteration):
        return None


def sanitize_patterns():
    """``SANITIZE`` plus this machine's CPU model name, as nbval's ``(regex, replacement)`` pairs."""
    model = cpu_model()
    return SANITIZE + ([(re.escape(model), "<cpu>")] if model else [])


def sanitize(text):
    """``text`` with every pattern of ``sanitize_patterns`` replaced, as nbval compares it."""
    for regex, replacement in sanitize_patterns():
        text = re.sub(regex, replacement, text)
    return text


def compared_text(outputs):
    """What nbval compares of a cell's outputs, sanitised: stdout (its pieces joined) and the text/plain of
    results and displays, in order; stderr and images are not compared."""
    texts, stdout = [], None
    for output in outputs:
        if output.get("output_type") == "stream" and output.get("name") == "stdout":
            if stdout is None:
                stdout = len(texts)
                texts.append("")
            texts[stdout] += output["text"]
        elif output.get("output_type") in ("execute_result", "display_data") and "text/plain" in output["data"]:
            texts.append(output["data"]["text/plain"])
        elif output.get("output_type") == "error":
            texts.append(f"{output['ename']}: {output['evalue']}")
    return [sanitize(text) for text in texts]


def checks_output(cell):
    """Whether nbval (in --nbval-lax mode) compares this cell's outputs: its tag or its comment marker."""
    return CHECK_TAG in cell.metadata.get("tags", []) or any(
        line.strip().lstrip("#").strip() == "NBVAL_CHECK_OUTPUT" for line in cell.source.splitlines())


def fingerprint():
    """What SMOKE outputs depend on besides the code: the versions of the libraries that compute them and
    whether the CPU has bf16 units (SMOKE runs use bf16 autocast there, fp32 elsewhere)."""
    import albumentations
    import numpy
    import torch

    from precision import cpu_has_bf16

    return {"torch": torch.__version__, "numpy": numpy.__version__, "albumentations": albumentations.__version__,
            "cpu_bf16_units": cpu_has_bf16()}


_original_init = IPyNbFile.__init__
_original_sanitize_files = IPyNbFile.setup_sanitize_files


def _init_without_stderr(self, *args, **kwargs):
    _original_init(self, *args, **kwargs)
    self.skip_compare = self.skip_compare + ("stderr",)


def _setup_sanitize_files(self):
    self.sanitize_patterns.update(sanitize_patterns())
    _original_sanitize_files(self)  # a --nbval-sanitize-with file adds its own


class _Kernel(nbval_plugin.RunningKernel):
    """nbval's kernel, started in the repository root for the SMOKE references (nbval starts each kernel
    in its notebook's folder), so they import the modules and read ``Data/`` as the committed notebooks do."""

    def __init__(self, kernel_name, cwd=None, *args, **kwargs):
        if cwd is not None and Path(cwd).resolve() == REFERENCES:
            cwd = str(ROOT)
        super().__init__(kernel_name, cwd, *args, **kwargs)


_original_runtest = IPyNbCell.runtest
EXECUTED = {}  # a SMOKE reference's name -> the outputs of each of its cells that nbval ran, in order


def _runtest_recorded(self):
    """nbval's run of one cell, its outputs kept in ``EXECUTED`` (also when they differ from the reference),
    so that a test can check that one SMOKE execution further (``executed_outputs``) instead of running the
    notebook again."""
    try:
        _original_runtest(self)
    finally:
        if Path(str(self.fspath)).resolve().parent == REFERENCES and self.test_outputs is not None:
            EXECUTED.setdefault(Path(str(self.fspath)).name, []).append(list(self.test_outputs))


def executed_outputs(name):
    """The outputs of every cell of ``tests/smoke_notebooks/<name>``, as this session's nbval run made them,
    or None where nbval did not run all of its code cells in SMOKE mode (the test was run alone, without
    ``SMOKE=1``, or a cell was skipped)."""
    import os

    import nbformat

    cells = nbformat.read(REFERENCES / name, as_version=4).cells
    ran = EXECUTED.get(name, [])
    complete = len(ran) == sum(cell.cell_type == "code" for cell in cells)
    return ran if complete and os.environ.get("SMOKE") == "1" else None


IPyNbFile.__init__ = _init_without_stderr
IPyNbFile.setup_sanitize_files = _setup_sanitize_files
IPyNbCell.runtest = _runtest_recorded
nbval_plugin.RunningKernel = _Kernel


def pytest_collection_modifyitems(items):
    """Where this machine differs from the one that made a SMOKE reference, run its cells but compare only
    those that the committed notebook checks too (mode-independent outputs), and say so once."""
    current, warned = None, set()
    for item in items:
        if not isinstance(item, IPyNbCell) or Path(str(item.fspath)).resolve().parent != REFERENCES:
            continue
        made_with = item.parent.nb.metadata.get("smoke_reference", {}).get("made_with")
        current = current or fingerprint()
        if made_with == current or LOGIC_TAG not in item.cell.metadata.get("tags", []):
            continue
        item.options["check"] = False
        if item.parent not in warned:
            warned.add(item.parent)
            differences = ", ".join(f"{key} {made_with.get(key) if made_with else None} there, {value} here"
                                    for key, value in current.items() if not made_with or made_with.get(key) != value)
            warnings.warn(pytest.PytestWarning(
                f"{item.parent.name} was made on another machine ({differences}): its lesson-logic cells run "
                "but are not compared; to compare them here, make references from a clean checkout with "
                "python tools/smoke_references.py before changing the code"))
