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
    the history, the accuracy panel shows it too."""
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


SUGGESTION_MARKERS = {"steepest": ("o", "tab:red"), "valley": ("s", "tab:green"), "min_loss": ("^", "tab:purple"),
                      "minimum": ("v", "tab:brown")}


def plot_lr_finder(result, chosen_lr=None, save_path=None):
    """The range test's loss against the LR (log scale): the raw loss faintly, the smoothed curve, each
    suggestion marked and, when given, the LR chosen for training. The y-axis is clipped to the curve
    up to its minimum, so a blow-up at the end does not flatten the part where the suggestions are."""
    figure = NotebookFigure(figsize=(8, 5))
    ax = figure.add_subplot()
    skip = result.settings.get("skip_start", 0)
    raw = raw_losses(result.all_losses, result.settings.get("smooth_f", 0))[skip:skip + len(result.lrs)]
    if len(raw) == len(result.lrs):
        ax.plot(result.lrs, raw, color="tab:blue", alpha=0.25, linewidth=1, label="loss (raw)")
    ax.plot(result.lrs, result.losses, color="tab:blue", label="loss (smoothed)")
    for name, lr in result.suggestions.items():
        marker, colour = SUGGESTION_MARKERS[name]
        index = int(np.argmin(np.abs(np.asarray(result.lrs) - lr)))
        ax.scatter(lr, result.losses[index], s=80, marker=marker, color=colour, zorder=3, label=f"{name}: {lr:.2e}")
    if chosen_lr is not None:
        ax.axvline(chosen_lr, color="black", linestyle="--", label=f"chosen max LR: {chosen_lr:.3g}")
    finite = np.asarray([v for v in result.losses if np.isfinite(v)])
    if len(finite):
        lowest = int(np.argmin(finite))
        top, bottom = float(finite[:lowest + 1].max()), float(finite.min())
        margin = 0.15 * max(top - bottom, 1e-3)
        ax.set_ylim(bottom - margin, top + margin)
    ax.set_title(f"LR range test: no suggestion: {result.reason}" if not result.suggestions
                 else "LR range test", fontsize=10)
    ax.set_xscale("log")
    ax.set_xlabel("learning rate")
    ax.set_ylabel("loss")
    ax.grid(alpha=0.3, which="both")
    ax.legend()
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


plot_training_history = plot_history  # the specification's name for ``plot_history``


# ------------------------------------------------------------------ the S10 reference notebook's names
def display_cifar_data_samples(data_set, number_of_samples, classes, save_path=None):
    """The reference notebook's call: ``plot_samples`` of the first ``number_of_samples`` items of any
    (image, label) data set (a torchvision CIFAR10, ``dataset.TransformedDataset``, ...)."""
    items = [data_set[index] for index in range(number_of_samples)]
    return plot_samples([image for image, _ in items], [label for _, label in items], classes,
                        count=number_of_samples, save_path=save_path)


def visualize_cifar_augmentation(data_set, transforms, count=5, save_path=None):
    """The reference notebook's call: ``plot_augmentations`` of each transform in ``transforms`` (a dict
    name -> Albumentations transform) on the first ``count`` raw images of ``data_set`` (one with
    ``.data``, e.g. ``dataset.TransformedDataset`` or torchvision's CIFAR10)."""
    return plot_augmentations([np.asarray(image) for image in data_set.data[:count]], transforms, save_path)


def display_loss_and_accuracies(train_losses, train_acc, test_losses, test_acc, save_path=None):
    """The reference notebook's call: ``plot_history`` of four per-epoch lists."""
    return plot_history({"train_loss": train_losses, "train_acc": train_acc, "test_loss": test_losses,
                         "test_acc": test_acc}, save_path)


def display_cifar_misclassified_data(misclassified_data, classes, inv_normalize, number_of_samples=10, save_path=None):
    """The reference notebook's call: ``plot_misclassified`` of ``utils.get_misclassified_data``'s
    ``(image, true, predicted)`` list, the images de-normalised by ``inv_normalize`` (a torchvision
    ``Normalize`` that undoes the training normalisation)."""
    items = misclassified_data[:number_of_samples]
    images = [displayable(inv_normalize(image).clamp(0, 1)) for image, _, _ in items]
    return plot_misclassified(images, [t for _, t, _ in items], [p for _, _, p in items], classes,
                              count=number_of_samples, save_path=save_path)
