"""Every figure of the course. Each function returns a matplotlib ``Figure`` (shown when it is the last
expression of a notebook cell) and, with ``save_path`` (e.g. ``"Data/samples.png"``), also writes a PNG.

Figures are built as ``NotebookFigure`` (a ``matplotlib.figure.Figure``) rather than with pyplot, so none
is shown twice or kept alive by pyplot's figure manager.
"""
import io
from pathlib import Path

import numpy as np
import seaborn as sns
import torch
from matplotlib.figure import Figure

from specification import display_cifar_data_samples  # noqa: F401 (the specification's name)


class NotebookFigure(Figure):
    """A matplotlib ``Figure`` that Jupyter shows as a PNG when a cell returns it, with or without
    ``%matplotlib inline`` (the inline backend, which also draws returned figures, loads only once pyplot
    draws something, so in a fresh notebook a plain ``Figure`` shows as ``<Figure size ...>`` text)."""

    def _repr_png_(self):
        buffer = io.BytesIO()
        self.savefig(buffer, format="png", bbox_inches="tight")
        return buffer.getvalue()


def _finish(figure, save_path):
    figure.tight_layout()
    if save_path is not None:
        Path(save_path).parent.mkdir(parents=True, exist_ok=True)
        figure.savefig(save_path, dpi=100, bbox_inches="tight")
    return figure


def _grid(count, columns):
    rows = -(-count // columns)
    figure = NotebookFigure(figsize=(columns * 1.6, rows * 1.8))
    return figure, [figure.add_subplot(rows, columns, i + 1) for i in range(count)]


def plot_samples(images, labels, class_names, count=20, columns=10, save_path=None):
    """A grid of uint8 HWC images with their class names."""
    count = min(count, len(images))
    figure, axes = _grid(count, columns)
    for ax, image, label in zip(axes, images[:count], labels[:count]):
        ax.imshow(displayable(image))
        ax.set_title(class_names[int(label)], fontsize=8)
        ax.axis("off")
    return _finish(figure, save_path)


def displayable(image):
    """Any image a transform returns (uint8 or float HWC array, CHW tensor, normalised or not) as an HWC
    array matplotlib shows: floats outside [0, 1] are rescaled to it."""
    if isinstance(image, torch.Tensor):
        image = image.detach().cpu()
        image = image.permute(1, 2, 0) if image.dim() == 3 and image.shape[0] in (1, 3) else image
        image = image.numpy()
    image = np.asarray(image)
    if image.dtype != np.uint8 and (image.min() < 0 or image.max() > 1):
        image = (image - image.min()) / max(float(image.max() - image.min()), 1e-8)
    return image


def plot_augmentations(images, augmentations, save_path=None, seed=0):
    """Each augmentation applied alone to the same images: one row per augmentation (the first row shows
    the originals). ``augmentations`` maps a name to a callable ``f(image=...) -> {"image": ...}``
    (an Albumentations transform or Compose) returning uint8 HWC images; each is seeded with ``seed``
    (its own random state; the global seeds are left alone) so the figure is reproducible."""
    names = ["original"] + list(augmentations)
    figure = NotebookFigure(figsize=(len(images) * 1.5, len(names) * 1.6))
    axes = figure.subplots(len(names), len(images), squeeze=False)
    for transform in augmentations.values():
        if hasattr(transform, "set_random_seed"):
            transform.set_random_seed(seed)
    for row, name in enumerate(names):
        for column, image in enumerate(images):
            shown = image if name == "original" else augmentations[name](image=image)["image"]
            ax = axes[row][column]
            ax.imshow(displayable(shown))
            ax.set_xticks([])
            ax.set_yticks([])
            if column == 0:
                ax.set_ylabel(name, fontsize=10)
    return _finish(figure, save_path)


def plot_history(history, save_path=None, split="test"):
    """Loss and accuracy per epoch, train and ``split`` (the evaluation split's name: "test" for CIFAR,
    "validation" for an ImageNet val folder), one titled panel each, integer epoch ticks; with top-5 in
    the history, the accuracy panel shows it too. The accuracy axis spans at least ``ACCURACY_MIN_SPAN``
    points (``accuracy_limits``)."""
    from matplotlib.ticker import MaxNLocator

    figure = NotebookFigure(figsize=(12, 4))
    loss_ax, acc_ax = figure.subplots(1, 2)
    epochs = range(1, len(history["train_loss"]) + 1)
    for ax, key, label in ((loss_ax, "loss", "loss"), (acc_ax, "acc", "accuracy (%)")):
        ax.plot(epochs, history[f"train_{key}"], "o-", label="train")
        ax.plot(epochs, history[f"test_{key}"], "o-", label=split)
        if key == "acc" and any(value is not None for value in history.get("test_top5", [])):
            ax.plot(epochs, history["test_top5"], "o--", label=f"{split} top-5")
        ax.set_xlabel("epoch")
        ax.set_ylabel(label)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.grid(alpha=0.3)
        ax.legend()
    acc_ax.set_ylim(*accuracy_limits([v for line in acc_ax.get_lines() for v in line.get_ydata()]))
    loss_ax.set_title("loss per epoch (train: mean over the epoch)")
    acc_ax.set_title(f"accuracy per epoch (final {split} accuracy {history['test_acc'][-1]:.2f}%)")
    return _finish(figure, save_path)


def raw_losses(smoothed, smooth_f):
    """Undo torch-lr-finder's exponential smoothing (``s_i = f * raw_i + (1 - f) * s_{i-1}``, ``s_0 =
    raw_0``): the raw loss of every iteration."""
    smoothed = np.asarray(smoothed, dtype=float)
    if not smooth_f or len(smoothed) < 2:
        return smoothed
    raw = smoothed.copy()
    raw[1:] = (smoothed[1:] - (1 - smooth_f) * smoothed[:-1]) / smooth_f
    return raw


# Colour-blind-safe colours (Okabe and Ito's palette, and black), each suggestion with its own marker
# shape too, so no two are told apart by colour alone.
SUGGESTION_MARKERS = {"steepest": ("o", "#D55E00"),   # vermillion
                      "valley": ("s", "#009E73"),     # bluish green
                      "min_loss": ("^", "black"),     # the rule the lessons train with
                      "minimum": ("v", "tab:cyan")}
CURVE_COLOURS = ("#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9")  # Okabe-Ito, for several curves
DIVERGING_MARKER = "X"
ACCURACY_MIN_SPAN = 10.0  # percentage points: the least height of an accuracy axis


def finite_stretch(losses):
    """``(first, values)``: a curve's first stretch of finite values, from its first finite value up to the
    next NaN or infinite one, and where it starts; ``(None, None)`` for a curve without a finite value."""
    losses = np.asarray(losses, dtype=float)
    finite = np.flatnonzero(np.isfinite(losses))
    if not len(finite):
        return None, None
    first = int(finite[0])
    values = losses[first:]
    if not np.isfinite(values).all():
        values = values[:int(np.argmin(np.isfinite(values)))]
    return first, values


def range_test_view(losses, lowest=None):
    """What a range-test plot shows of one smoothed loss curve: ``(bottom, top, diverging)``.

    ``lowest`` is the index in ``losses`` of the lowest loss that counts, as the range test's analysis
    finds it (``lr_finder.lowest_before_divergence``: the lowest before the loss doubles, as
    ``lr_finder.suggest`` finds its ``min_loss``); by default the lowest finite loss of the curve.
    ``diverging`` is the index of the first point past it where the loss has climbed back half of its
    fall (half-way from its lowest value to its first value): from there on the LR undoes what the net
    learned. ``None`` when the curve never climbs that far (or never fell).

    The y-range holds the whole fall and that climb: from a little below the lowest loss to a quarter of
    the fall above the starting loss (or the curve's highest point up to ``diverging``, when higher), so
    the rise after the minimum is drawn leaving the frame upwards. Nothing above one full fall over the
    starting loss stretches the axis, so a blow-up to many times the loss does not flatten the curve.
    ``None`` for a curve without a finite value."""
    first, values = finite_stretch(losses)
    if values is None:
        return None
    start, lowest_index = values[0], int(np.argmin(values)) if lowest is None else lowest - first
    fall = start - values[lowest_index]
    if fall <= 0:  # the curve never fell: show all of it
        low, high = float(values.min()), float(values.max())
        margin = 0.1 * max(high - low, 1e-3)
        return low - margin, high + margin, None
    halfway = np.flatnonzero(values[lowest_index:] > start - fall / 2)
    diverging = lowest_index + int(halfway[0]) if len(halfway) else None
    shown = values[:None if diverging is None else diverging + 1]
    top = max(min(float(shown.max()), start + fall), start + 0.25 * fall)
    return start - 1.15 * fall, top + 0.05 * fall, None if diverging is None else first + diverging


def legend_outside(ax, handles=None, labels=None, below=False, **options):
    """The axes' legend outside the axes (right of them, or ``below`` them), never over the data."""
    if handles is None:
        handles, labels = ax.get_legend_handles_labels()
    if below:
        options = {"loc": "upper center", "bbox_to_anchor": (0.5, -0.13), "ncol": 2, **options}
    else:
        options = {"loc": "upper left", "bbox_to_anchor": (1.02, 1.0), **options}
    return ax.legend(handles, labels, borderaxespad=0, **options)


def plot_lr_finder(result, chosen_lr=None, save_path=None):
    """The range test's loss against the LR (log scale): the raw loss faintly, the smoothed curve, each
    suggestion marked, the point where the loss starts to diverge (an X) and, when given, the LR chosen
    for training. The y-range is ``range_test_view``'s: the whole fall and the climb after the minimum,
    without letting a blow-up flatten the curve. The legend stands beside the axes; a suggestion that
    is the chosen LR shares one entry with it."""
    from matplotlib.legend_handler import HandlerTuple

    figure = NotebookFigure(figsize=(10, 5))
    ax = figure.add_subplot()
    skip = result.settings.get("skip_start", 0)
    raw = raw_losses(result.all_losses, result.settings.get("smooth_f", 0))[skip:skip + len(result.lrs)]
    if len(raw) == len(result.lrs):
        ax.plot(result.lrs, raw, color="tab:blue", alpha=0.25, linewidth=1, label="loss (raw)")
    ax.plot(result.lrs, result.losses, color="tab:blue", label="loss (smoothed)")
    chosen = None
    if chosen_lr is not None:
        chosen = ax.axvline(chosen_lr, color="black", linestyle="--", label=f"chosen max LR: {chosen_lr:.3g}")
    merged = None  # the suggestion that is the chosen LR (min_loss before the others) shares its legend entry
    if chosen is not None:
        same = [name for name, lr in result.suggestions.items() if np.isclose(lr, chosen_lr, rtol=1e-6)]
        merged = "min_loss" if "min_loss" in same else next(iter(same), None)
    handles, labels = [], []
    for name, lr in result.suggestions.items():
        marker, colour = SUGGESTION_MARKERS[name]
        index = int(np.argmin(np.abs(np.asarray(result.lrs) - lr)))
        point = ax.scatter(lr, result.losses[index], s=80, marker=marker, color=colour, zorder=3,
                           label=f"{name}: {lr:.2e}")
        handles.append((chosen, point) if name == merged else point)
        labels.append(f"{name}: {lr:.2e}" + (" = chosen max LR" if name == merged else ""))
    if chosen is not None and merged is None:
        handles.append(chosen)
        labels.append(chosen.get_label())
    view = range_test_view(result.losses, result.lowest)
    if view:
        bottom, top, diverging = view
        ax.set_ylim(bottom, top)
        if diverging is not None:
            lr = result.lrs[diverging]
            handles += ax.plot(lr, min(result.losses[diverging], top), linestyle="none", marker=DIVERGING_MARKER,
                               markersize=10, color="tab:blue", markeredgecolor="white", zorder=4, clip_on=False,
                               label=f"diverging from {lr:.2e}\n(loss half-way back up)")
            labels.append(handles[-1].get_label())
    ax.set_title(f"LR range test: no suggestion: {result.reason}" if not result.suggestions
                 else "LR range test", fontsize=10)
    ax.set_xscale("log")
    ax.set_xlabel("learning rate")
    ax.set_ylabel("loss (smoothed; raw faint)")
    ax.grid(alpha=0.3, which="both")
    if handles:
        legend_outside(ax, handles, labels, handler_map={tuple: HandlerTuple(ndivide=1)}, fontsize=9)
    return _finish(figure, save_path)


def plot_range_tests(curves, save_path=None, title="", chance=None):
    """Range tests' smoothed loss against the LR (log scale), one curve each (dicts with ``label``,
    ``lrs``, ``losses``, ``smooth_f``, ``min_loss`` and, when known, ``lowest``: the index that
    ``range_test_view`` takes), the raw loss faintly, each min_loss marked by a dotted line in the curve's
    colour, each curve's divergence by an X, and ``chance`` (the loss of a uniform guess, ln of the class
    count) as a dashed line. The y-range holds every curve's ``range_test_view``; the legend, one entry per
    curve, stands below the axes."""
    figure = NotebookFigure(figsize=(9, 7))
    ax = figure.add_subplot()
    bottoms, tops, diverged = [], [], False
    for curve, colour in zip(curves, CURVE_COLOURS):
        lrs, losses = np.asarray(curve["lrs"]), np.asarray(curve["losses"])
        ax.plot(lrs, raw_losses(losses, curve["smooth_f"]), color=colour, alpha=0.15, linewidth=0.8)
        min_loss = curve.get("min_loss")
        ax.plot(lrs, losses, color=colour, label=curve["label"] + (f": min_loss {min_loss:.3g}" if min_loss else ""))
        if min_loss:
            ax.axvline(min_loss, color=colour, linestyle=":")
        view = range_test_view(losses, curve.get("lowest"))
        if view:
            bottoms.append(view[0])
            tops.append(view[1])
            if view[2] is not None:
                diverged = True
                ax.plot(lrs[view[2]], min(losses[view[2]], view[1]), linestyle="none", marker=DIVERGING_MARKER,
                        markersize=9, color=colour, markeredgecolor="white", zorder=4, clip_on=False)
    if chance:
        ax.axhline(chance, color="black", linestyle="--", linewidth=1, label=f"chance (ln {round(np.exp(chance))})")
        bottoms.append(chance)
        tops.append(chance)
    if tops:
        bottom, top = min(bottoms), max(tops)
        margin = 0.03 * (top - bottom)
        ax.set_ylim(bottom - margin, top + margin)
    ax.set_xscale("log")
    ax.set_xlabel("learning rate")
    ax.set_ylabel("training loss (smoothed; raw faint)")
    ax.set_title(title, fontsize=10)
    ax.grid(alpha=0.3, which="both")
    handles, labels = ax.get_legend_handles_labels()
    if diverged:  # one entry for every curve's X
        from matplotlib.lines import Line2D

        handles.append(Line2D([], [], linestyle="none", marker=DIVERGING_MARKER, markersize=9, color="dimgray"))
        labels.append("diverging (loss half-way back up)")
    legend_outside(ax, handles, labels, below=True, fontsize=8)
    return _finish(figure, save_path)


def accuracy_limits(values, min_span=ACCURACY_MIN_SPAN, pad=0.12):
    """y-limits for accuracies in percent: the values with ``pad`` of their range on each side, widened
    about their middle to at least ``min_span`` percentage points and kept within 0..100, so that gaps of
    a point or less (one seed's noise in these runs) look as small as they are."""
    values = np.asarray([v for v in values if v is not None and np.isfinite(v)], dtype=float)
    low, high = float(values.min()), float(values.max())
    low, high = low - pad * (high - low), high + pad * (high - low)
    if high - low < min_span:
        middle = (low + high) / 2
        low, high = middle - min_span / 2, middle + min_span / 2
    shift = max(0.0, -low) - max(0.0, high - 100)  # move the window back inside 0..100
    return max(low + shift, 0.0), min(high + shift, 100.0)


def plot_sweep(results, suggestions, chosen, save_path=None, title="", split="test", label=None, others=()):
    """Final top-1 accuracy on ``split`` against max LR (log scale) with the range test's suggestions
    marked (a dotted line each, its marker at the top); ``others``: further ``(label, results)`` series
    (e.g. another initialisation) drawn beside. The accuracy axis spans at least ``ACCURACY_MIN_SPAN``
    points (``accuracy_limits``); the legend stands beside the axes."""
    figure = NotebookFigure(figsize=(10, 5))
    ax = figure.add_subplot()
    lrs = [r["max_lr"] for r in results]
    accs = [r["test_acc"] for r in results]
    ax.plot(lrs, accs, "o-", color="tab:blue", label=label or f"final {split} accuracy")
    for lr, acc in zip(lrs, accs):
        ax.annotate(f"{acc:.1f}", (lr, acc), textcoords="offset points", xytext=(0, 7), ha="center", fontsize=9)
    shown = list(accs)
    for (other_label, other), colour in zip(others, ("#882255", "tab:olive", "tab:gray")):
        other = sorted(other, key=lambda r: r["max_lr"])
        ax.plot([r["max_lr"] for r in other], [r["test_acc"] for r in other], "D--", color=colour, label=other_label)
        for r in other:
            ax.annotate(f"{r['test_acc']:.1f}", (r["max_lr"], r["test_acc"]), textcoords="offset points",
                        xytext=(0, -14), ha="center", fontsize=9, color=colour)
        shown += [r["test_acc"] for r in other]
    for name, lr in suggestions.items():
        marker, colour = SUGGESTION_MARKERS[name]
        ax.plot([lr, lr], [0, 1], transform=ax.get_xaxis_transform(), color=colour, linestyle=":", marker=marker,
                markevery=[1], markersize=8, clip_on=False,
                label=f"{name}: {lr:.3g}" + (" (the rule)" if name == chosen else ""))
    ax.set_ylim(*accuracy_limits(shown))
    ax.set_xscale("log")
    ax.set_xlabel("one-cycle max LR")
    ax.set_ylabel(f"final {split} accuracy (%)")
    ax.set_title(title, fontsize=10)
    ax.grid(alpha=0.3, which="both")
    legend_outside(ax, fontsize=9)
    return _finish(figure, save_path)


def plot_lr_schedule(lrs, momentums=None, steps_per_epoch=None, save_path=None):
    """The learning rate (and momentum, when it changes) at every training step."""
    figure = NotebookFigure(figsize=(10, 4))
    ax = figure.add_subplot()
    x = np.arange(len(lrs)) / steps_per_epoch if steps_per_epoch else np.arange(len(lrs))
    ax.plot(x, lrs, color="tab:blue")
    ax.set_xlabel("epoch" if steps_per_epoch else "step")
    ax.set_ylabel("learning rate", color="tab:blue")
    ax.grid(alpha=0.3)
    momentums = [m for m in (momentums or []) if m is not None]
    if len(set(momentums)) > 1:
        twin = ax.twinx()
        twin.plot(x, momentums, color="tab:orange")
        twin.set_ylabel("momentum", color="tab:orange")
    peak = int(np.argmax(lrs))
    ax.set_title(f"one-cycle schedule: first {lrs[0]:.3g}, peak {lrs[peak]:.4g} at step {peak}, last {lrs[-1]:.3g}"
                 + (f" (momentum {momentums[0]:g})" if len(set(momentums)) == 1 else ""))
    return _finish(figure, save_path)


def plot_schedule_comparison(schedules, accuracies, save_path=None, split="test"):
    """Two panels for an experiment on LR schedules: each schedule's LR per step (``schedules``: name ->
    list of LRs) and its test accuracy per epoch (``accuracies``: name -> one list per run, e.g. per seed),
    the mean as a line and every run as faint dots, in the same colour for the same name. The accuracy axis
    shows the last epochs' range (``accuracy_limits``) so the ends can be compared, and the legend sits
    below the panels."""
    from matplotlib.ticker import MaxNLocator

    figure = NotebookFigure(figsize=(12, 4.2))
    lr_ax, acc_ax = figure.subplots(1, 2)
    colours = dict(zip(list(schedules) + [name for name in accuracies if name not in schedules], CURVE_COLOURS * 4))
    for name, lrs in schedules.items():
        lr_ax.plot(range(1, len(lrs) + 1), lrs, color=colours[name], label=name)
    ends = []
    for name, runs in accuracies.items():
        runs = [run for run in runs if run]
        if not runs:
            continue
        length = min(len(run) for run in runs)
        epochs = np.arange(1, length + 1)
        mean = np.mean([run[:length] for run in runs], axis=0)
        acc_ax.plot(epochs, mean, "o-", color=colours[name], label=f"{name} ({len(runs)} run{'s' * (len(runs) > 1)})")
        for run in runs:
            acc_ax.plot(epochs, run[:length], ".", color=colours[name], alpha=0.35)
        ends += [run[length - 1] for run in runs] + [run[length // 2] for run in runs]
    lr_ax.set_xlabel("step")
    lr_ax.set_ylabel("learning rate")
    lr_ax.set_title("the LR schedules")
    lr_ax.grid(alpha=0.3)
    acc_ax.set_xlabel("epoch")
    acc_ax.set_ylabel(f"{split} accuracy (%)")
    acc_ax.set_title(f"{split} accuracy per epoch (line: mean of the runs)")
    acc_ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    acc_ax.grid(alpha=0.3)
    if ends:
        acc_ax.set_ylim(*accuracy_limits(ends))
    legend_outside(lr_ax, below=True)
    legend_outside(acc_ax, below=True)
    return _finish(figure, save_path)


def plot_misclassified(images, truth, predicted, class_names, count=20, columns=5, save_path=None):
    """Wrongly predicted images titled "true: cat / predicted: dog". ``images`` are uint8 HWC arrays."""
    count = min(count, len(images))
    rows = -(-max(count, 1) // columns)
    figure = NotebookFigure(figsize=(columns * 2.4, rows * 2.7))
    axes = figure.subplots(rows, columns, squeeze=False).flatten()
    for ax in axes:
        ax.axis("off")
    for ax, image, true_label, predicted_label in zip(axes, images[:count], truth[:count], predicted[:count]):
        ax.imshow(image)
        ax.set_title(f"true: {class_names[int(true_label)]}\npredicted: {class_names[int(predicted_label)]}",
                     fontsize=11)
    return _finish(figure, save_path)


def plot_confusion_matrix(truth, predicted, class_names, save_path=None):
    """Counts of true (rows) against predicted (columns) classes, as a seaborn heat map."""
    k = len(class_names)
    matrix = np.bincount(np.asarray(truth) * k + np.asarray(predicted), minlength=k * k).reshape(k, k)
    figure = NotebookFigure(figsize=(8, 7))
    ax = figure.add_subplot()
    sns.heatmap(matrix, annot=True, fmt="d", cmap="Blues", xticklabels=class_names, yticklabels=class_names,
                ax=ax, cbar=False)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    accuracy = 100 * np.trace(matrix) / max(matrix.sum(), 1)
    ax.set_title(f"confusion matrix (accuracy {accuracy:.2f}%)")
    return _finish(figure, save_path)
