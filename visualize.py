"""Every figure of the course. Each function returns a matplotlib ``Figure`` (shown when it is the last
expression of a notebook cell) and, with ``save_path`` (e.g. ``"Data/samples.png"``), also writes a PNG.

Figures are built with ``matplotlib.figure.Figure`` rather than pyplot, so none is shown twice or kept
alive by pyplot's figure manager.
"""
from pathlib import Path

import numpy as np
import seaborn as sns
import torch
from matplotlib.figure import Figure


def _finish(figure, save_path):
    figure.tight_layout()
    if save_path is not None:
        Path(save_path).parent.mkdir(parents=True, exist_ok=True)
        figure.savefig(save_path, dpi=100, bbox_inches="tight")
    return figure


def _grid(count, columns):
    rows = -(-count // columns)
    figure = Figure(figsize=(columns * 1.6, rows * 1.8))
    return figure, [figure.add_subplot(rows, columns, i + 1) for i in range(count)]


def denormalize(image, mean, std):
    """A normalised CHW tensor back to an HWC float array in [0, 1] for display."""
    image = image.detach().float().cpu() * torch.tensor(std)[:, None, None] + torch.tensor(mean)[:, None, None]
    return image.clamp(0, 1).permute(1, 2, 0).numpy()


def plot_samples(images, labels, class_names, count=20, columns=10, save_path=None):
    """A grid of uint8 HWC images with their class names."""
    count = min(count, len(images))
    figure, axes = _grid(count, columns)
    for ax, image, label in zip(axes, images[:count], labels[:count]):
        ax.imshow(image)
        ax.set_title(class_names[int(label)], fontsize=8)
        ax.axis("off")
    return _finish(figure, save_path)


def plot_augmentations(images, augmentations, save_path=None, seed=0):
    """Each augmentation applied alone to the same images: one row per augmentation (the first row shows
    the originals). ``augmentations`` maps a name to a callable ``f(image=...) -> {"image": ...}``
    (an Albumentations transform or Compose) returning uint8 HWC images."""
    import random

    names = ["original"] + list(augmentations)
    figure = Figure(figsize=(len(images) * 1.5, len(names) * 1.6))
    axes = figure.subplots(len(names), len(images), squeeze=False)
    random.seed(seed)
    np.random.seed(seed)
    for row, name in enumerate(names):
        for column, image in enumerate(images):
            shown = image if name == "original" else augmentations[name](image=image)["image"]
            ax = axes[row][column]
            ax.imshow(shown)
            ax.set_xticks([])
            ax.set_yticks([])
            if column == 0:
                ax.set_ylabel(name, fontsize=9)
    return _finish(figure, save_path)


def plot_history(history, save_path=None):
    """Loss and accuracy per epoch, train and test."""
    figure = Figure(figsize=(12, 4))
    loss_ax, acc_ax = figure.subplots(1, 2)
    epochs = range(1, len(history["train_loss"]) + 1)
    for ax, key, label in ((loss_ax, "loss", "loss"), (acc_ax, "acc", "accuracy (%)")):
        ax.plot(epochs, history[f"train_{key}"], "o-", label="train")
        ax.plot(epochs, history[f"test_{key}"], "o-", label="test")
        ax.set_xlabel("epoch")
        ax.set_ylabel(label)
        ax.grid(alpha=0.3)
        ax.legend()
    acc_ax.set_title(f"final test accuracy {history['test_acc'][-1]:.2f}%")
    return _finish(figure, save_path)


def plot_lr_finder(result, chosen_lr=None, save_path=None):
    """The range test's smoothed loss against the LR (log scale) with each suggestion marked and, when
    given, the LR chosen for training."""
    figure = Figure(figsize=(8, 5))
    ax = figure.add_subplot()
    ax.plot(result.lrs, result.losses, color="tab:blue", label="smoothed loss")
    markers = {"steepest": ("o", "tab:red"), "valley": ("s", "tab:green"), "min_loss": ("^", "tab:purple")}
    for name, lr in result.suggestions.items():
        marker, colour = markers[name]
        index = int(np.argmin(np.abs(np.asarray(result.lrs) - lr)))
        ax.scatter(lr, result.losses[index], s=80, marker=marker, color=colour, zorder=3,
                   label=f"{name}: {lr:.2e}")
    if chosen_lr is not None:
        ax.axvline(chosen_lr, color="black", linestyle="--", label=f"chosen max LR: {chosen_lr:.3g}")
    if not result.suggestions:
        ax.set_title(f"no suggestion: {result.reason}", fontsize=9)
    ax.set_xscale("log")
    ax.set_xlabel("learning rate")
    ax.set_ylabel("loss")
    ax.grid(alpha=0.3, which="both")
    ax.legend()
    return _finish(figure, save_path)


def plot_lr_schedule(lrs, momentums=None, steps_per_epoch=None, save_path=None):
    """The learning rate (and momentum, when given) at every training step."""
    figure = Figure(figsize=(10, 4))
    ax = figure.add_subplot()
    x = np.arange(len(lrs)) / steps_per_epoch if steps_per_epoch else np.arange(len(lrs))
    ax.plot(x, lrs, color="tab:blue")
    ax.set_xlabel("epoch" if steps_per_epoch else "step")
    ax.set_ylabel("learning rate", color="tab:blue")
    ax.grid(alpha=0.3)
    if momentums is not None and any(m is not None for m in momentums):
        twin = ax.twinx()
        twin.plot(x, momentums, color="tab:orange")
        twin.set_ylabel("momentum", color="tab:orange")
    ax.set_title(f"one-cycle schedule: peak {max(lrs):.4g}, final {lrs[-1]:.3g}")
    return _finish(figure, save_path)


def plot_misclassified(misclassified, class_names, mean, std, count=20, columns=10, save_path=None):
    """Wrongly predicted images (de-normalised) titled true -> predicted."""
    count = min(count, len(misclassified))
    figure, axes = _grid(max(count, 1), columns)
    for ax, (image, truth, predicted) in zip(axes, misclassified[:count]):
        ax.imshow(denormalize(image, mean, std))
        ax.set_title(f"{class_names[truth]}\n-> {class_names[predicted]}", fontsize=7)
        ax.axis("off")
    return _finish(figure, save_path)


def plot_confusion_matrix(truth, predicted, class_names, save_path=None):
    """Counts of true (rows) against predicted (columns) classes, as a seaborn heat map."""
    k = len(class_names)
    matrix = np.bincount(np.asarray(truth) * k + np.asarray(predicted), minlength=k * k).reshape(k, k)
    figure = Figure(figsize=(8, 7))
    ax = figure.add_subplot()
    sns.heatmap(matrix, annot=True, fmt="d", cmap="Blues", xticklabels=class_names, yticklabels=class_names,
                ax=ax, cbar=False)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    accuracy = 100 * np.trace(matrix) / max(matrix.sum(), 1)
    ax.set_title(f"confusion matrix (accuracy {accuracy:.2f}%)")
    return _finish(figure, save_path)
