"""Live progress for long work (the range test, training, evaluation), and the one rule that decides it.

A person watching gets a live tqdm bar with the rate, the time left, the loss and the LR; everything
else gets plain output: no bar, no carriage returns, no widgets (the per-epoch line of ``fit`` is printed
either way). ``progress=None``, the default of ``fit``, ``train``, ``test`` and ``find_lr``, asks
``show_bar``; ``progress=True`` or ``False`` forces a bar or none. The rule, first match wins:

1. ``progress=True`` / ``False`` given: that.
2. A process of a distributed run other than rank 0: plain (one bar per run, not one per process).
3. The environment variable ``PLAIN_PROGRESS``: ``1`` plain, ``0`` a bar even in a file or under CI.
   Whatever executes the notebooks for committing sets ``PLAIN_PROGRESS=1`` (``make run``,
   ``tools/smoke_references.py``); so should any other executor (``jupyter nbconvert --execute``, papermill).
4. CI (the ``CI`` variable that CI services set), pytest and nbval (``PYTEST_CURRENT_TEST``), or ``SMOKE=1``: plain.
5. A live Jupyter or Colab kernel: a bar, tqdm's notebook widget (the text bar where ipywidgets is missing).
6. The stream the bar would be written to (stderr) is an interactive terminal: a bar.
7. Anything else (a log file, a pipe, ``nohup``): plain.

A bar appears as soon as the work starts (0 of N, before the first step) and redraws after every step
that takes longer than tqdm's ``mininterval`` (0.1 s), so a slow CPU shows each step.
"""
import os
import sys
import time

from tqdm.std import tqdm as text_bar

VARIABLE = "PLAIN_PROGRESS"
POSTFIX_SECONDS = 0.5  # how often loss and LR are read back for the bar (a device sync on CUDA)
_YES, _NO = ("1", "true", "yes", "on"), ("0", "false", "no", "off")


def in_live_kernel():
    """True inside a Jupyter or Colab kernel (an IPython shell with a kernel; not terminal IPython)."""
    ipython = sys.modules.get("IPython")
    shell = ipython.get_ipython() if ipython is not None and hasattr(ipython, "get_ipython") else None
    return getattr(shell, "kernel", None) is not None


def _other_rank():
    distributed = sys.modules.get("torch.distributed")
    return bool(distributed and distributed.is_available() and distributed.is_initialized()
                and distributed.get_rank() != 0)


def _isatty(stream):
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):  # no isatty, or a closed file
        return False


def decide(progress=None, stream=None, environ=None, kernel=None):
    """``(bar, reason)``: whether long work shows a live bar, and why, by the rule in the module docstring.
    ``stream`` is where the bar would go (``sys.stderr`` when None), ``environ`` the environment
    (``os.environ``), ``kernel`` whether this is a live Jupyter kernel (``in_live_kernel()`` when None)."""
    if progress is not None:
        return bool(progress), f"progress={bool(progress)} given"
    if _other_rank():
        return False, "a distributed process other than rank 0"
    environ = os.environ if environ is None else environ
    forced = environ.get(VARIABLE, "").strip().lower()
    if forced in _YES:
        return False, f"{VARIABLE}={forced}"
    if forced in _NO:
        return True, f"{VARIABLE}={forced}"
    if environ.get("CI", "").strip().lower() not in ("", *_NO):
        return False, "under CI"
    if environ.get("PYTEST_CURRENT_TEST"):
        return False, "under pytest"
    if environ.get("SMOKE") == "1":
        return False, "SMOKE=1"
    if in_live_kernel() if kernel is None else kernel:
        return True, "a live Jupyter kernel"
    if _isatty(sys.stderr if stream is None else stream):
        return True, "an interactive terminal"
    return False, "output goes to a file or a pipe"


def show_bar(progress=None, stream=None, environ=None, kernel=None):
    """Whether long work shows a live bar (``decide``'s first half)."""
    return decide(progress, stream, environ, kernel)[0]


def bar_class(kernel=None):
    """tqdm's notebook widget in a live kernel where ipywidgets is installed; the text bar elsewhere."""
    if in_live_kernel() if kernel is None else kernel:
        try:
            from tqdm import notebook
        except ImportError:
            return text_bar
        if getattr(notebook, "IProgress", None) is not None:  # None when ipywidgets is missing
            return notebook.tqdm
    return text_bar


def progress_bar(iterable=None, progress=None, file=None, **options):
    """A tqdm bar over ``iterable`` when ``show_bar(progress, file)``, else a disabled one (the same
    methods, drawing nothing). ``options`` go to tqdm (``desc``, ``total``, ``leave``, ``unit``, ...)."""
    stream = sys.stderr if file is None else file
    kernel = in_live_kernel()
    if not show_bar(progress, stream, kernel=kernel):
        return text_bar(iterable, file=stream, disable=True, **options)
    options.setdefault("dynamic_ncols", True)
    return bar_class(kernel)(iterable, file=stream, mininterval=0.1, **options)


def postfix_due(bar, last=False):
    """Whether to read the loss and LR back for a live ``bar`` now: on its first step, its last
    (``last=True``), and then at most every ``POSTFIX_SECONDS``; never for a disabled bar."""
    if bar.disable:
        return False
    now = time.monotonic()
    previous = getattr(bar, "_postfix_time", None)
    if previous is None or last or now - previous >= POSTFIX_SECONDS:
        bar._postfix_time = now
        return True
    return False
