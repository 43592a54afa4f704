"""Run torch-lr-finder's own test suite against this repository's ``lr_finder.LRFinder``.

    python tools/run_torch_lr_finder_tests.py PATH/TO/pytorch-lr-finder/tests [pytest options]

Get the suite at the tag of the installed version (``pip show torch-lr-finder``: 0.2.2), e.g.

    git clone https://github.com/davidtvs/pytorch-lr-finder /tmp/pytorch-lr-finder
    git -C /tmp/pytorch-lr-finder archive v0.2.2 tests | tar -x -C /tmp/tlrf

The package's tests import ``from torch_lr_finder import LRFinder``; this script puts
``lr_finder.LRFinder`` in that place (and in ``torch_lr_finder.lr_finder``) before pytest collects
them, so every test exercises this repository's class. ``--package`` runs them against the
package's own class instead, for comparison. Some tests use pytest-mock's ``mocker`` fixture
(``pip install pytest-mock``). Pass ``--cpu_only`` (the suite's own option) to keep them on the CPU.
Exits with pytest's status.
"""
import importlib.util
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


class SubstituteLRFinder:
    """A pytest plugin that replaces torch-lr-finder's ``LRFinder`` before the tests are collected."""

    def __init__(self, cls):
        self.cls = cls

    def pytest_configure(self, config):
        import torch_lr_finder
        import torch_lr_finder.lr_finder

        torch_lr_finder.LRFinder = torch_lr_finder.lr_finder.LRFinder = self.cls

    def pytest_report_header(self, config):
        return f"LRFinder under test: {self.cls.__module__}.{self.cls.__qualname__}"


def main(argv):
    """Run pytest on the suite in ``argv[0]`` with the remaining arguments; returns pytest's exit code."""
    if not argv or argv[0].startswith("-"):
        sys.exit(__doc__)
    suite, options = Path(argv[0]).resolve(), argv[1:]
    if not (suite / "test_lr_finder.py").is_file():
        sys.exit(f"{suite} holds no test_lr_finder.py: pass the 'tests' folder of pytorch-lr-finder")
    if importlib.util.find_spec("pytest_mock") is None:  # the suite's `mocker` fixture
        sys.exit("the suite needs pytest-mock: pip install pytest-mock")
    import pytest

    sys.path.insert(0, str(ROOT))
    if "--package" in options:
        options.remove("--package")
        import torch_lr_finder

        cls = torch_lr_finder.LRFinder
    else:
        import lr_finder

        cls = lr_finder.LRFinder
    # the suite imports its own `dataset`, `model` and `task` modules by these bare names; importing
    # lr_finder loaded this repository's `dataset`, which must not stand in for the suite's
    for name in [path.stem for path in suite.glob("*.py")]:
        sys.modules.pop(name, None)
    return pytest.main([str(suite), "--rootdir", str(suite), "-p", "no:cacheprovider", *options],
                       plugins=[SubstituteLRFinder(cls)])


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
