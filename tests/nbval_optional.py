"""Loads ``tests/nbval_settings.py`` as a pytest plugin (pytest.ini's ``-p``) only where nbval is installed.

The settings patch nbval's classes when imported, so they cannot load without it; a machine that runs only
the unit tests (the GPU machine of ``benchmarks/gpu_check.sh`` has pytest but neither nbval nor nbformat)
then collects and runs them, and the notebook tests skip (``pytest.importorskip``)."""
try:
    import nbval  # noqa: F401
except ImportError:  # ModuleNotFoundError, or an nbval that cannot import: no notebook checks here
    nbval = None

if nbval is not None:
    from tests.nbval_settings import pytest_collection_modifyitems  # noqa: F401 (the hook this plugin adds)
