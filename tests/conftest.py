"""Disk use of a test session.

``make test`` writes gigabytes: ResNet-50 checkpoints are 100-200 MB each and many tests save several,
and the SMOKE notebooks keep their checkpoints and figures in ``tempfile.mkdtemp()`` folders that nothing
removes. On a small disk that ends in "No space left on device" halfway through. So:

* pytest.ini keeps a test's ``tmp_path`` only when the test fails (``tmp_path_retention_policy``);
* the processes the tests start (notebook kernels, ``main.py``, ``experiments.py``) get a temporary
  root of their own (``TMPDIR``), removed when the session ends; so do main.py's decoded image folders
  (``IMAGE_CACHE_DIR``), which would otherwise land in ``./data/image_cache``.

It also gives the ``main_here`` fixture: main.py's command line run in the test's process
(``tests.helpers.run_main_here``), for the tests that check a run's outputs rather than the process.
"""
import functools
import os
import shutil
import tempfile

import pytest

_children_tmp = None


def pytest_configure(config):
    global _children_tmp
    tempfile.gettempdir()  # pin this process's own root first: pytest's tmp_path folders stay where they were
    _children_tmp = tempfile.mkdtemp(prefix="pytest-children-")
    os.environ["TMPDIR"] = _children_tmp
    os.environ["IMAGE_CACHE_DIR"] = os.path.join(_children_tmp, "image_cache")  # main.py's decoded image folders


def pytest_unconfigure(config):
    if _children_tmp:
        shutil.rmtree(_children_tmp, ignore_errors=True)


@pytest.fixture
def main_here(capfd):
    """``main_here(*args)``: ``python main.py *args`` run in this process; returns ``returncode``, ``stdout``
    and ``stderr`` as ``subprocess.run`` would (``tests.helpers.run_main_here``)."""
    from tests.helpers import run_main_here

    return functools.partial(run_main_here, capfd)
