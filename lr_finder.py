"""The learning-rate range test (Leslie Smith): torch-lr-finder's ``LRFinder`` for the specification's
calls, ``find_lr`` for the lessons, the suggestions read off a curve, and the report files.

``LRFinder`` is torch-lr-finder's class as a drop-in, with the specification's ``range_test`` and
``plot`` returns. ``find_lr`` runs the range test with the course's settings (precision, memory format,
each param group's LR scale, the course's progress bar) on any loader of ``(inputs, labels, ...)``
batches (or a ``TrainDataLoaderIter`` subclass for other batches, as with the library), restores model
and optimizer afterwards, and returns the curve with four suggestions:

* ``steepest``: the LR where the (smoothed) loss falls fastest before its minimum, torch-lr-finder's
  ``plot()`` rule; early noise can fool it;
* ``valley``: fastai's rule: the middle of the longest stretch over which the loss keeps falling;
  the more robust one;
* ``min_loss``: the LR at the lowest smoothed loss: the course's rule for the one-cycle max LR (Smith's
  upper bound: the largest LR at which the loss still falls);
* ``minimum``: fastai's ``minimum``, the ``min_loss`` LR divided by 10.

``write_report`` writes what an ImageNet user expects beside a run: the plot, a detailed log and
``suggested_lr.json``.

Why ``find_lr`` runs its own loop instead of torch-lr-finder's ``range_test``: the course needs what the
library's public interface (its constructor, ``range_test``, ``history``, ``reset``, and the
``TrainDataLoaderIter`` / ``ValDataLoaderIter`` subclasses its documentation invites) cannot give.

* Its ``range_test`` gives every param group the same LR (a list of start LRs still ramps each group to
  the same ``end_lr``), while the speedrun trains its batch-norm biases at 64x the LR: the range test
  must keep that ratio, as the training after it does.
* It draws its own tqdm bar and prints its own lines; the course's bar follows ``progress.progress_bar``
  (a live bar for a person watching, plain lines in logs and CI).
* It hands each batch to the model from a private method; the course puts images in channels_last after
  the copy to the device (so a pinned batch keeps its asynchronous copy).

Getting these through the library meant replacing its internals (its module's ``tqdm``, its schedulers'
``get_lr``) for the length of a call, for everything else in the process too. So ``find_lr`` owns a short
loop that repeats the library's step for step, float for float: the exponential or linear LR ramp of its
``ExponentialLR`` and ``LinearLR``; one batch (or ``accumulation_steps`` batches) per step, under autocast,
through a GradScaler; its validation pass; its exponential smoothing of the loss and its stop once that
passes ``diverge_th`` times its lowest value; its restore of the model's and optimizer's states. Each
param group trains at its ``lr_scale`` times the ramp's LR. It reads batches through the library's
``TrainDataLoaderIter`` and ``ValDataLoaderIter`` (so it takes the loaders and batches the library takes)
and leaves the library as it is. The specification's ``LRFinder`` stays the library's class, with the
library's ``range_test``.
"""
import copy
import inspect
import json
import math
import numbers
import os
import random
import textwrap
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

with warnings.catch_warnings():  # the library imports tqdm.autonotebook, which warns in notebooks
    warnings.simplefilter("ignore")
    from torch_lr_finder import LRFinder as PackageLRFinder
    from torch_lr_finder import TrainDataLoaderIter, ValDataLoaderIter

from batched_data import BatchedCifarLoader
from progress import postfix_due, progress_bar
from precision import Precision
from recipes import DIVERGE_TH, END_LR, NUM_ITER, SMOOTH_F, START_LR, STEP_MODE  # noqa: F401 (defaults)
from specification import find_lr_advanced, plot_training_history, train_with_one_cycle  # noqa: F401 (the specification's names)
from visualize import finite_stretch, plot_lr_finder

# The range test's defaults (START_LR ... DIVERGE_TH) live in recipes.py, which main.py's options read without
# loading torch: START_LR is the specification's (``LRFinder.range_test``, ``--lr_start``), the others
# torch-lr-finder's, which the specification repeats.
SKIP_START, SKIP_END = 10, 5  # points of the curve left out at its start and its end (torch-lr-finder's plot)
DIVERGED = 2.0  # the analysis: past the first point where the loss exceeds this many times its lowest, it diverged


def _bind(order, args, kwargs):
    """Bind a method call by Python's own rules: ``order`` is a function whose parameters are the method's
    in one order (its ``__qualname__`` the method's, so a call that does not fit raises Python's
    ``TypeError`` with the method's name). Returns the names the call gave and every argument but
    ``self``, defaults filled in."""
    arguments = order(*args, **kwargs)
    given = set(list(inspect.signature(order).parameters)[:len(args)]) | set(kwargs)
    del arguments["self"]
    return given, arguments


def _named(qualname):
    """Decorator: give the function ``qualname`` as its ``__qualname__``, the name Python's argument errors use."""
    def rename(function):
        function.__qualname__ = qualname
        return function
    return rename


@_named("LRFinder.range_test")
def _range_test_in_specification_order(self, train_loader, start_lr=START_LR, end_lr=END_LR, num_iter=NUM_ITER,
                                       step_mode=STEP_MODE, smooth_f=SMOOTH_F, diverge_th=DIVERGE_TH,
                                       accumulation_steps=1, non_blocking_transfer=True, val_loader=None):
    """``LRFinder.range_test``'s arguments in the specification's order (``_bind`` uses it)."""
    return locals()


@_named("LRFinder.range_test")
def _range_test_in_package_order(self, train_loader, val_loader=None, start_lr=START_LR, end_lr=END_LR,
                                 num_iter=NUM_ITER, step_mode=STEP_MODE, smooth_f=SMOOTH_F, diverge_th=DIVERGE_TH,
                                 accumulation_steps=1, non_blocking_transfer=True):
    """``LRFinder.range_test``'s arguments in torch-lr-finder's order (``_bind`` uses it). ``start_lr`` is the
    specification's default even here (the class docstring says why); the package's ``None`` stays available."""
    return locals()


@_named("LRFinder.plot")
def _plot_in_specification_order(self, skip_start=SKIP_START, skip_end=SKIP_END, log_lr=True, title=None,
                                 save_path=None, show_lr=None, ax=None, suggest_lr=True):
    """``LRFinder.plot``'s arguments in the specification's order (``_bind`` uses it)."""
    return locals()


@_named("LRFinder.plot")
def _plot_in_package_order(self, skip_start=SKIP_START, skip_end=SKIP_END, log_lr=True, show_lr=None, ax=None,
                           suggest_lr=True, title=None, save_path=None):
    """``LRFinder.plot``'s arguments in torch-lr-finder's order (``_bind`` uses it)."""
    return locals()


_RANGE_TEST_PACKAGE_ONLY = {"val_loader", "accumulation_steps", "non_blocking_transfer"}
_PLOT_PACKAGE_ONLY = {"show_lr", "ax", "suggest_lr"}


def _is_start_lr(value):
    """Whether ``value`` is a start LR as torch-lr-finder takes one: a number, or a list of one per group."""
    if isinstance(value, list):
        return len(value) > 0 and all(isinstance(item, numbers.Real) for item in value)
    return isinstance(value, numbers.Real)


class LRFinder(PackageLRFinder):
    """torch-lr-finder's ``LRFinder`` (0.2.2) as a drop-in, with the specification's calls and returns::

        lr_finder = LRFinder(model, optimizer, criterion, device)
        lrs, losses = lr_finder.range_test(train_loader, start_lr=1e-7, end_lr=10, num_iter=100)
        index = lr_finder.plot(skip_start=10, skip_end=5, log_lr=True, title="Learning Rate Finder")
        lr_finder.reset()  # the model and optimizer as they were before the test

    The constructor, ``reset()`` and every argument of ``range_test(train_loader, val_loader=None,
    start_lr, end_lr=10, num_iter=100, step_mode="exp", smooth_f=0.05, diverge_th=5,
    accumulation_steps=1, non_blocking_transfer=True)`` and ``plot(skip_start=10, skip_end=5,
    log_lr=True, show_lr=None, ax=None, suggest_lr=True)`` are the package's, positional or keyword,
    with its behaviour, its exceptions and their messages. Where the specification differs, it wins:

    * ``start_lr`` defaults to 1e-7; pass ``start_lr=None`` for the package's default (the optimizer's LR);
    * ``range_test`` returns ``(lrs, losses)`` (``history["lr"]``, ``history["loss"]``) and ``plot``
      returns the index in ``history["lr"]`` of the suggested LR (the steepest fall), unless the call
      uses an argument only the package has: ``val_loader``, ``accumulation_steps`` or
      ``non_blocking_transfer`` in ``range_test`` (then it returns the package's None); ``show_lr``,
      ``ax`` or ``suggest_lr`` in ``plot`` (then ``(ax, suggested_lr)``, or ``ax`` with ``suggest_lr=False``).

    Positional arguments, where the two signatures disagree: ``range_test``'s second place is the
    specification's ``start_lr`` when it holds a number (or a list of one LR per parameter group),
    followed by ``end_lr``, ``num_iter``, ``step_mode``, ``smooth_f``, ``diverge_th`` in the
    specification's order; anything else there (a loader, or None) is the package's ``val_loader``,
    followed by ``start_lr``, ``end_lr``, ... in the package's order. ``plot``'s fourth place is the
    specification's ``title`` (then ``save_path``) when it holds a string, else the package's
    ``show_lr`` (then ``ax``, ``suggest_lr``). ``title`` and ``save_path`` also work as keywords with
    the package's arguments.

    Loaders are the package's: a DataLoader of ``(inputs, labels, ...)`` batches, or a subclass of
    ``TrainDataLoaderIter`` / ``ValDataLoaderIter`` that turns other batches (dicts, ...) into
    ``(inputs, labels)``; this repository's ``batched_data.BatchedCifarLoader`` is taken as a DataLoader. Other
    types get the package's ``ValueError``. (``find_lr`` takes any iterable of batches.)

    ``plot`` draws with pyplot and, unless given ``ax``, shows the figure (in a notebook the graph
    appears under the cell); with suggestions on, it prints the package's two lines, once::

        LR suggestion: steepest gradient
        Suggested LR: 4.41E-02

    ``title`` titles the axes ("Learning Rate Finder" in the specification's form, none in the
    package's unless given), ``save_path`` also writes the figure to that file, and ``self.figure``
    holds the figure afterwards.
    """

    def range_test(self, *args, **kwargs):
        """Run the package's range test. Arguments, positional order and returns: see the class docstring."""
        in_package_order = len(args) > 1 and not _is_start_lr(args[1])
        order = _range_test_in_package_order if in_package_order else _range_test_in_specification_order
        given, arguments = _bind(order, (self, *args), kwargs)
        for name, iterator in (("train_loader", TrainDataLoaderIter), ("val_loader", ValDataLoaderIter)):
            if isinstance(arguments[name], BatchedCifarLoader):
                arguments[name] = iterator(arguments[name])
        super().range_test(**arguments)
        if given & _RANGE_TEST_PACKAGE_ONLY:
            return None
        return self.history["lr"], self.history["loss"]

    def plot(self, *args, **kwargs):
        """Draw the loss against the LR with the package's ``plot``, title it, save it to ``save_path`` and
        show it (unless drawn into ``ax``). Arguments, positional order and returns: see the class docstring."""
        import matplotlib.pyplot as plt

        in_specification_order = len(args) > 3 and isinstance(args[3], str)
        order = _plot_in_specification_order if in_specification_order else _plot_in_package_order
        given, arguments = _bind(order, (self, *args), kwargs)
        package_form = bool(given & _PLOT_PACKAGE_ONLY)
        skip_start, skip_end, ax, figure = arguments["skip_start"], arguments["skip_end"], arguments["ax"], None
        if ax is None:
            figure, ax = plt.subplots()
        try:
            drawn = super().plot(skip_start, skip_end, arguments["log_lr"], arguments["show_lr"], ax,
                                 arguments["suggest_lr"])
        except Exception:
            if figure is not None:  # the package raises before it draws: leave no empty figure behind
                plt.close(figure)
            raise
        title = arguments["title"]
        if title is None and not package_form:
            title = "Learning Rate Finder"
        if title is not None:
            ax.set_title(title)
        if arguments["save_path"] is not None:
            ax.figure.savefig(arguments["save_path"], dpi=100, bbox_inches="tight")
        self.figure = ax.figure
        if figure is not None:
            plt.show()
        if package_form:
            return drawn
        losses = self.history["loss"][skip_start:len(self.history["loss"]) - skip_end]
        return skip_start + int(np.gradient(np.asarray(losses)).argmin())


def channels_last_images(inputs):
    """``inputs`` with each 4-D tensor in it (an image batch, N x C x H x W, alone or inside a tuple, list
    or dict) in channels_last memory format; every other tensor and value is left as it is."""
    if isinstance(inputs, torch.Tensor):
        return inputs.contiguous(memory_format=torch.channels_last) if inputs.dim() == 4 else inputs
    if isinstance(inputs, tuple):  # as the move to the device returns them
        return tuple(channels_last_images(item) for item in inputs)
    if isinstance(inputs, list):
        return [channels_last_images(item) for item in inputs]
    if isinstance(inputs, dict):
        return {key: channels_last_images(value) for key, value in inputs.items()}
    return inputs


@dataclass
class LRFinderResult:
    """The range test's curve (LR and smoothed loss per iteration, after the skips) and suggestions.

    ``suggestions`` maps ``steepest``, ``valley``, ``min_loss`` and ``minimum`` to an LR, or is empty with ``reason``
    saying why no suggestion could be made (NaN losses, a curve that never fell, too few points)."""
    lrs: list
    losses: list
    suggestions: dict
    settings: dict
    all_lrs: list = field(default_factory=list)
    all_losses: list = field(default_factory=list)
    reason: str = ""
    stopped_early: bool = False
    seconds: float = 0.0
    warnings: list = field(default_factory=list)

    @property
    def lowest(self):
        """The index in ``losses`` of the lowest loss before the curve diverged (``lowest_before_divergence``),
        the bottom of the fall the range-test plot frames."""
        return lowest_before_divergence(self.losses)


def steepest_suggestion(lrs, losses):
    """torch-lr-finder's rule: the LR at the most negative gradient of the loss curve."""
    return lrs[int(np.gradient(np.asarray(losses)).argmin())]


def valley_suggestion(lrs, losses):
    """fastai's "valley" rule: find the longest run of ever-lower losses (longest decreasing
    subsequence) and return the LR about halfway along it (index start + third + third / 2)."""
    n = len(losses)
    run_length = [1] * n
    start, end = 0, 0
    for i in range(1, n):
        for j in range(i):
            if losses[i] < losses[j] and run_length[i] < run_length[j] + 1:
                run_length[i] = run_length[j] + 1
        if run_length[end] < run_length[i]:
            end = i
            start = end - run_length[end]
    third = (end - start) / 3
    return lrs[max(0, start + int(third) + int(third / 2))]  # a run from index 0 gives start = -1


def divergence_index(losses, factor=DIVERGED):
    """Index of the first point where the (positive) loss exceeds ``factor`` times its lowest value so
    far, where training has diverged; ``len(losses)`` when it never does."""
    losses = np.asarray(losses, dtype=float)
    if len(losses) == 0 or losses.min() <= 0:  # a zero or negative loss (a custom criterion): no ratio test
        return len(losses)
    above = np.flatnonzero(losses > factor * np.minimum.accumulate(losses))
    return int(above[0]) if len(above) else len(losses)


def lowest_before_divergence(losses):
    """The index of the lowest loss before the curve diverged (``divergence_index``) in its first stretch
    of finite losses (from the first finite loss up to the next NaN or infinite one), as ``suggest`` finds
    its ``min_loss``; None for a curve without a finite loss."""
    first, values = finite_stretch(losses)
    if values is None:
        return None
    return first + int(np.argmin(values[:max(divergence_index(values), 1)]))


def suggest(lrs, losses):
    """All four suggestions for a curve, or ``({}, reason)`` when the curve cannot support one.

    ``steepest`` looks only at the curve up to its minimum (a fall after the minimum is noise of a
    net that is already being wrecked); ``minimum`` is fastai's rule, the LR of the lowest loss / 10.

    Only the curve before ``divergence_index`` counts: after a blow-up the loss of the wrecked net can
    drift down again (when the test's ``diverge_th`` is never reached), and that fall must not attract
    a suggestion."""
    if len(losses) < 5:
        return {}, f"only {len(losses)} point(s) on the curve (after the skips): raise num_iter"
    finite = np.isfinite(losses)
    if finite.sum() < 5:
        return {}, f"only {int(finite.sum())} finite loss value(s) in {len(losses)} iterations (NaN or " \
                   "infinite loss): lower end_lr/start_lr, check the data and the model"
    last_finite = int(np.flatnonzero(finite)[-1]) + 1
    lrs, losses = list(lrs[:last_finite]), [float(v) for v in losses[:last_finite]]
    if not np.all(np.isfinite(losses)):
        return {}, "the loss was NaN or infinite inside the curve; lower start_lr or check the data"
    end = divergence_index(losses)
    if end < 5:
        return {}, f"the loss diverged after {end} point(s) of the curve, at {lrs[end]:.2e}: lower start_lr"
    lrs, losses = lrs[:end], losses[:end]
    if min(losses) >= losses[0]:
        return {}, "the loss never fell below its first value: raise end_lr or num_iter, or check the data"
    lowest = int(np.argmin(losses))
    return {"steepest": steepest_suggestion(lrs[:lowest + 1], losses[:lowest + 1]),
            "valley": valley_suggestion(lrs, losses), "min_loss": lrs[lowest], "minimum": lrs[lowest] / 10}, ""


def find_lr(model, optimizer, criterion, train_loader, device=None, start_lr=START_LR, end_lr=END_LR,
            num_iter=NUM_ITER, step_mode=STEP_MODE, smooth_f=SMOOTH_F, diverge_th=DIVERGE_TH, skip_start=SKIP_START,
            skip_end=SKIP_END, precision="auto", channels_last=True, progress=None, accumulation_steps=1,
            val_loader=None):
    """Run the LR range test and return an ``LRFinderResult``; model and optimizer are restored after.

    The LR grows from ``start_lr`` to ``end_lr`` over ``num_iter`` batches (``step_mode`` "exp" or
    "linear"), the loss is smoothed with ``smooth_f`` and the test stops once it exceeds ``diverge_th``
    times the best. Each param group trains at its ``lr_scale`` (``recipes.parameter_groups``) times the
    ramp's LR, and the curve records the first group's. The loader is restarted if it has fewer than
    ``num_iter`` batches. ``skip_start`` and ``skip_end`` points are left out of the curve (shrunk when the
    test ran too few iterations). ``accumulation_steps`` accumulates gradients over that many batches per
    step (the effective batch, which the LR depends on, is ``accumulation_steps`` times the loader's);
    ``val_loader``, when given, makes each point the loss on that loader instead of the training batch
    (slower, smoother). ``train_loader`` is any iterable of ``(inputs, labels, ...)`` batches (a
    DataLoader, the batched loader) or, for other batches (dicts, ...), a subclass of torch-lr-finder's
    ``TrainDataLoaderIter`` whose ``inputs_labels_from_batch`` returns ``(inputs, labels)``; ``val_loader``
    likewise, or a ``ValDataLoaderIter`` subclass. With ``channels_last`` the model and every 4-D input
    tensor are put in channels_last memory format, the inputs on the device after the (non-blocking) copy.
    ``progress``: a live bar with the LR and smoothed loss of each step (True), none (False), or as
    ``progress.show_bar`` decides (None: for a person watching, not in logs or CI). Every RNG
    (torch, CUDA, NumPy, Python) is left as it was found, so the training that follows is the same with
    or without the test; the one exception: a DataLoader without a ``generator`` of its own draws its
    base seed from torch's when the test starts it (as it did under torch-lr-finder's ``range_test``).
    """
    _check_range_test(optimizer, start_lr, end_lr, num_iter, step_mode, smooth_f, diverge_th, accumulation_steps)
    device = torch.device(device or next(model.parameters()).device)
    precision = Precision.resolve(device, precision, channels_last)
    settings = {"start_lr": start_lr, "end_lr": end_lr, "num_iter": num_iter, "step_mode": step_mode,
                "smooth_f": smooth_f, "diverge_th": diverge_th, "precision": precision.name, "device": str(device),
                "accumulation_steps": accumulation_steps, "val_loader": val_loader is not None}
    if precision.channels_last:
        model.to(memory_format=torch.channels_last)
    home, model_state, optimizer_state = next(model.parameters()).device, copy.deepcopy(model.state_dict()), \
        copy.deepcopy(optimizer.state_dict())  # what torch-lr-finder's LRFinder keeps, and its reset() restores
    # started before the RNGs are forked, as torch-lr-finder's range_test started them: a DataLoader without a
    # generator of its own draws its base seed from torch's here, and the runs that follow depend on that draw
    train_batches = train_loader if isinstance(train_loader, TrainDataLoaderIter) else TrainDataLoaderIter(train_loader)
    if val_loader is not None and not isinstance(val_loader, ValDataLoaderIter):
        val_loader = ValDataLoaderIter(val_loader)
    start = time.perf_counter()
    python_state, numpy_state = random.getstate(), np.random.get_state()
    try:
        with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
            all_lrs, all_losses = _ramp(model, optimizer, criterion, train_batches, val_loader, precision, settings,
                                        progress)
    finally:
        model.load_state_dict(model_state)
        optimizer.load_state_dict(optimizer_state)  # its param groups too: each one's LR
        model.to(home)
        random.setstate(python_state)
        np.random.set_state(numpy_state)
    return _result(all_lrs, all_losses, settings, skip_start, skip_end, time.perf_counter() - start)


def _check_range_test(optimizer, start_lr, end_lr, num_iter, step_mode, smooth_f, diverge_th, accumulation_steps):
    """Raise ``ValueError`` with what to change when ``find_lr``'s arguments cannot make a range test."""
    if not 0 < start_lr < end_lr:
        raise ValueError(f"need 0 < start_lr < end_lr; got start_lr={start_lr}, end_lr={end_lr}")
    if num_iter < 2:
        raise ValueError(f"num_iter must be at least 2, got {num_iter}")
    if step_mode not in ("exp", "linear"):
        raise ValueError(f"step_mode must be 'exp' or 'linear', got {step_mode!r}")
    if not 0 <= smooth_f < 1:
        raise ValueError(f"smooth_f must be in [0, 1), got {smooth_f}")
    if diverge_th <= 1:
        raise ValueError(f"diverge_th must be > 1, got {diverge_th}")
    if accumulation_steps < 1:
        raise ValueError(f"accumulation_steps must be at least 1, got {accumulation_steps}")
    if any("initial_lr" in group for group in optimizer.param_groups):
        raise ValueError("this optimizer already has a learning-rate scheduler attached (its param groups hold "
                         "'initial_lr'); the range test sets the LR itself. Run find_lr on a fresh optimizer, then "
                         "build the scheduler (e.g. OneCycleLR) after it.")


def ramp_lr(start_lr, end_lr, num_iter, step_mode, iteration):
    """The range test's LR at ``iteration`` (0 to ``num_iter - 1``): ``start_lr`` times
    ``(end_lr / start_lr) ** (iteration / (num_iter - 1))`` (``"exp"``) or a straight line from ``start_lr``
    to ``end_lr`` (``"linear"``); torch-lr-finder's ``ExponentialLR`` and ``LinearLR``, float for float."""
    r = iteration / (num_iter - 1)
    if step_mode == "exp":
        return start_lr * (end_lr / start_lr) ** r
    return start_lr + r * (end_lr - start_lr)


def _ramp(model, optimizer, criterion, train_batches, val_batches, precision, settings, progress):
    """The range test's loop, torch-lr-finder's ``range_test`` step for step: train on a batch at the ramp's
    LR (each param group at its ``lr_scale`` times it), take the loss (or the validation loss), smooth it,
    stop once it passes ``diverge_th`` times the lowest. Returns the LRs (the first group's) and the
    smoothed losses."""
    num_iter, smooth_f, diverge_th = settings["num_iter"], settings["smooth_f"], settings["diverge_th"]
    scales = [group.get("lr_scale", 1.0) for group in optimizer.param_groups]
    scaler = precision.grad_scaler()
    model.to(precision.device)
    lrs, losses, best = [], [], None
    bar = progress_bar(range(num_iter), progress, desc="range test", leave=False, unit="step")
    try:
        for iteration in bar:
            lr = ramp_lr(settings["start_lr"], settings["end_lr"], num_iter, settings["step_mode"], iteration)
            for group, scale in zip(optimizer.param_groups, scales):
                group["lr"] = lr * scale
            loss = _train_step(model, optimizer, criterion, train_batches, precision, scaler,
                               settings["accumulation_steps"])
            if val_batches is not None:
                loss = _validation_loss(model, criterion, val_batches, precision)
            lrs.append(lr * scales[0])
            if iteration == 0:
                best = loss
            else:
                if smooth_f > 0:
                    loss = smooth_f * loss + (1 - smooth_f) * losses[-1]
                if loss < best:
                    best = loss
            losses.append(loss)
            if postfix_due(bar, last=iteration + 1 == num_iter):
                bar.set_postfix(lr=f"{lrs[-1]:.2e}", loss=f"{loss:.3f}")
            if loss > diverge_th * best:
                break
    finally:
        bar.close()
    return lrs, losses


def _on_device(inputs, labels, precision):
    """A batch moved to the device as torch-lr-finder moves one (``.to(device, non_blocking=True)`` on
    everything that has it, inside tuples, lists and dicts too), its images then in channels_last when asked."""
    def move(value):
        if hasattr(value, "to"):
            return value.to(precision.device, non_blocking=True)
        if isinstance(value, tuple):
            return tuple(move(item) for item in value)
        if isinstance(value, list):
            return [move(item) for item in value]
        if isinstance(value, dict):
            return {key: move(item) for key, item in value.items()}
        return value

    inputs, labels = move(inputs), move(labels)
    return (channels_last_images(inputs) if precision.channels_last else inputs), labels


def _train_step(model, optimizer, criterion, train_batches, precision, scaler, accumulation_steps):
    """One step of the range test over ``accumulation_steps`` batches, each loss divided by their number;
    returns the step's loss. Under autocast in the chosen precision, through the GradScaler (a
    pass-through but for fp16)."""
    model.train()
    optimizer.zero_grad()
    total = None
    for _ in range(accumulation_steps):
        inputs, labels = _on_device(*next(train_batches), precision)
        with precision.autocast():
            loss = criterion(model(inputs), labels)
        loss = loss / accumulation_steps
        scaler.scale(loss).backward()
        total = loss if total is None else total + loss
    scaler.step(optimizer)
    scaler.update()
    return total.item()


def _validation_loss(model, criterion, val_batches, precision):
    """The mean loss over the validation loader, as torch-lr-finder's range test computes it: in eval mode,
    without autocast, each batch's loss weighted by its size, divided by the data set's size."""
    running_loss = 0
    model.eval()
    with torch.no_grad():
        for inputs, labels in val_batches:
            inputs, labels = _on_device(inputs, labels, precision)
            running_loss += criterion(model(inputs), labels).item() * len(labels)
    return running_loss / len(val_batches.dataset)


def _result(all_lrs, all_losses, settings, skip_start, skip_end, seconds):
    """The ``LRFinderResult`` of a curve: the skips (shrunk for a short test), the suggestions and the warnings."""
    cautions = []
    if len(all_lrs) < skip_start + skip_end + 5:
        skip_start, skip_end = len(all_lrs) // 10, 0
        cautions.append(f"only {len(all_lrs)} iterations: skips reduced to skip_start={skip_start}, skip_end=0")
    end = len(all_lrs) - skip_end
    lrs, losses = all_lrs[skip_start:end], all_losses[skip_start:end]
    suggestions, reason = suggest(lrs, losses)
    settings.update(skip_start=skip_start, skip_end=skip_end)
    stopped_early = len(all_lrs) < settings["num_iter"]
    result = LRFinderResult(lrs, losses, suggestions, settings, all_lrs, all_losses, reason, stopped_early,
                            seconds, cautions)
    result.warnings += analyse(result)
    return result


def analyse(result):
    """Warnings a user should read before trusting a suggestion."""
    notes = []
    if not result.suggestions:
        return [f"no suggestion: {result.reason}"]
    low, high = result.settings["start_lr"], result.settings["end_lr"]
    span = math.log(high / low)
    for name, lr in result.suggestions.items():
        position = math.log(lr / low) / span
        if position < 0.1 or position > 0.9:
            notes.append(f"the {name} suggestion {lr:.2e} lies at the {'low' if position < 0.5 else 'high'} edge "
                         f"of the range [{low:g}, {high:g}]: widen the range and run again")
    end = divergence_index(result.losses)
    if end < len(result.losses) and not result.stopped_early:
        notes.append(f"the loss passed {DIVERGED:g}x its lowest value at {result.lrs[end]:.2e} but the test ran on "
                     f"(diverge_th={result.settings.get('diverge_th')} never reached): the suggestions ignore the "
                     "curve beyond that LR")
    if not result.stopped_early and result.losses[-1] <= min(result.losses) * 1.05:
        notes.append("the loss was still falling at end_lr: the curve has no minimum yet; raise end_lr")
    if result.suggestions["steepest"] < result.suggestions["valley"] / 10:
        notes.append("the steepest-slope suggestion is far below the valley one: early noise probably "
                     "fooled it; prefer the valley")
    return notes


def write_report(result, output_dir, dataset, batch_size, command, config=None, prefix="lr_finder",
                 plot_file=None):
    """Write ``<prefix>_plot.png``, ``<prefix>_log.txt`` and ``suggested_lr.json`` into ``output_dir``;
    returns their paths. ``plot_file`` saves the plot elsewhere (the JSON names it relative to
    ``output_dir``). ``suggested_lr`` in the JSON is the course's one-cycle rule, the ``min_loss``
    suggestion (None when there is none); all three suggestions are listed beside it."""
    output_dir = Path(output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    plot_file = Path(plot_file) if plot_file else output_dir / f"{prefix}_plot.png"
    log_file, json_file = output_dir / f"{prefix}_log.txt", output_dir / "suggested_lr.json"
    suggested = result.suggestions.get("min_loss")
    plot_lr_finder(result, chosen_lr=suggested, save_path=plot_file)
    stamp = time.strftime("%Y-%m-%dT%H:%M:%S")
    summary = {"suggested_lr": suggested, "suggestion_rule": "min_loss (one-cycle max LR)",
               "suggestions": result.suggestions,
               "reason": result.reason or None, "dataset": str(dataset), "batch_size": batch_size,
               "num_iter": result.settings["num_iter"], "iterations_run": len(result.all_lrs),
               "start_lr": result.settings["start_lr"], "end_lr": result.settings["end_lr"],
               "step_mode": result.settings["step_mode"], "plot_file": os.path.relpath(plot_file, output_dir),
               "log_file": log_file.name, "timestamp": stamp}
    json_file.write_text(json.dumps(summary, indent=2) + "\n")
    lines = [f"LR range test  {stamp}", "", "Configuration"]
    lines += [f"  {key}: {value}" for key, value in {**result.settings, "dataset": dataset,
                                                      "batch_size": batch_size, **(config or {})}.items()]
    lines += ["", "Command", f"  {command}", "", "Results",
              f"  iterations run: {len(result.all_lrs)} of {result.settings['num_iter']}"
              f"{' (stopped early: the loss diverged)' if result.stopped_early else ''}",
              f"  time: {result.seconds:.1f}s"]
    if result.suggestions:
        lines += [f"  {name:9s} {lr:.3e}" for name, lr in result.suggestions.items()]
        lines += [f"  lowest smoothed loss {min(result.losses):.4f}, first {result.losses[0]:.4f}"]
    else:
        lines += [f"  no suggestion: {result.reason}"]
    def paragraph(text):  # wrapped at 100 columns between words, indented
        return textwrap.wrap(text, 100, initial_indent="  ", subsequent_indent="    ", break_long_words=False)

    lines += ["", "Analysis"]
    lines += [line for w in result.warnings for line in paragraph(f"WARNING: {w}")] or ["  the curve looks healthy"]
    lines += ["", "Next steps"]
    if suggested:
        valley = result.suggestions["valley"]
        if valley <= suggested:
            cautious = f"The valley suggestion {valley:.3g} is the cautious choice."
            constant = f"constant-LR training: start near the valley, {valley:.3g}."
        else:  # the longest fall lies beyond the lowest loss: a noisy curve, not a safer LR
            cautious = (f"The valley suggestion {valley:.3g} lies above it, so it is no cautious choice here: the "
                        "curve is noisy; more iterations (--lr_iter) give a clearer one.")
            constant = f"constant-LR training: start an order of magnitude below it, {suggested / 10:.3g}."
        lines += paragraph(f"one-cycle: --max_lr {suggested:.3g} (the LR at the lowest loss, 'suggested_lr' in the "
                           "JSON): one-cycle visits its peak only briefly, so it can use the largest LR at which "
                           f"the loss still fell. {cautious}")
        lines += paragraph(constant)
    else:
        lines += ["  fix the cause above and run the range test again before training"]
    lines += ["", "Curve (lr, smoothed loss)"] + [f"  {lr:.4e} {loss:.5f}" for lr, loss in
                                                  zip(result.all_lrs, result.all_losses)]
    log_file.write_text("\n".join(lines) + "\n")
    return {"plot": plot_file, "log": log_file, "json": json_file}
