"""Helpers around a run, for the lessons: data statistics, predictions and misclassified samples,
describing the machine and the model (summaries, parameter counts).

The device and precision are ``precision.py``'s, the seeds ``seeding.py``'s, the figures ``visualize.py``'s.
The S10 reference notebook imported three figures from here; those names, shims in ``specification.py``,
are the only names this module takes from elsewhere."""
import contextlib
import copy
import os
import platform

import numpy as np
import torch
from torchsummary import summary

from dataset import channel_stats
from precision import Precision
from specification import (display_cifar_misclassified_data, display_loss_and_accuracies,  # noqa: F401
                           visualize_cifar_augmentation)  # (the specification's names)


def get_cifar_statistics(data, data_set_type="Train"):
    """Print count, shape, min, max and per-channel mean, std and var (scaled to [0, 1]) of a CIFAR-style
    data set, as the reference notebook did. ``data`` is ``(images uint8 N x H x W x 3, labels)`` or an
    object with ``.data``/``.images``. Returns ``(mean, std)``."""
    images = data[0] if isinstance(data, tuple) else getattr(data, "data", getattr(data, "images", data))
    images = np.asarray(images)
    mean, std = channel_stats(images)
    channels = range(images.shape[-1])
    print(f"[{data_set_type}]")
    print(f" - Total {data_set_type} Images: {len(images)}")
    print(f" - Tensor Shape: {tuple(images.shape[1:])}")
    print(f" - min: {_fmt([images[..., c].min() / 255 for c in channels])}")
    print(f" - max: {_fmt([images[..., c].max() / 255 for c in channels])}")
    print(f" - mean: {_fmt(mean)}")
    print(f" - std: {_fmt(std)}")
    print(f" - var: {_fmt([s * s for s in std])}")
    return mean, std


def _fmt(values):
    return "(" + ", ".join(f"{v:.4f}" for v in values) + ")"


@torch.inference_mode()
def get_predictions(model, device, loader, precision="auto"):
    """One pass over ``loader``: ``(true_labels, predicted_labels)`` as numpy arrays, in loader order.
    Feeds both the confusion matrix and ``misclassified`` (for an unshuffled loader); ties between classes
    are broken as ``training_utils.test`` breaks them, so the accuracies agree to the image."""

    precision = Precision.resolve(device, precision)
    with evaluating(model):
        truth, predicted = [], []
        for batch in loader:
            x, y = precision.batch(*batch)
            with precision.autocast():
                # topk, as training_utils.test counts: argmax may break a tie (common in bf16) the other way
                predicted.append(model(x).topk(1, dim=1).indices[:, 0].cpu())
            truth.append(y.cpu())
        return torch.cat(truth).numpy(), torch.cat(predicted).numpy()


def misclassified(truth, predicted, max_items=None):
    """Indices of the wrong predictions (the first ``max_items``), e.g. to index the test images."""
    wrong = np.flatnonzero(np.asarray(truth) != np.asarray(predicted))
    return wrong if max_items is None else wrong[:max_items]


@torch.inference_mode()
def get_misclassified_data(model, device, loader, max_items=None, precision="auto"):
    """The wrong predictions over ``loader`` as a list of ``(image, true_label, predicted_label)`` (images as
    CPU float tensors, still normalised), as the S10 reference notebook used them; one pass. The lesson
    itself uses ``get_predictions`` + ``misclassified``, which also feed the confusion matrix."""

    precision = Precision.resolve(device, precision)
    with evaluating(model):
        found = []
        for batch in loader:
            x, y = precision.batch(*batch)
            with precision.autocast():
                predicted = model(x).argmax(1)
            for index in torch.nonzero(predicted != y).flatten().tolist():
                found.append((x[index].float().cpu(), int(y[index]), int(predicted[index])))
                if max_items is not None and len(found) >= max_items:
                    return found
        return found


def describe_machine(device):
    """One line naming the hardware a run used: the GPU, or the CPU model, its cores and bf16 units."""
    device = torch.device(device)
    if device.type == "cuda":
        major, minor = torch.cuda.get_device_capability(device)
        return f"{torch.cuda.get_device_name(device)} (compute capability {major}.{minor}), torch {torch.__version__}"
    model = platform.processor() or "CPU"
    try:
        with open("/proc/cpuinfo") as file:
            info = file.read()
        model = next(line.split(":", 1)[1].strip() for line in info.splitlines() if line.startswith("model name"))
        units = [flag for flag in ("amx_bf16", "avx512_bf16") if flag in info]
    except (OSError, StopIteration):
        units = []
    return (f"{model}, {os.cpu_count()} cores, bf16 units: {', '.join(units) or 'none'}, torch {torch.__version__}")


@contextlib.contextmanager
def evaluating(model):
    """Inside the block, ``model`` is in eval mode and autograd is off, so a forward pass changes no running
    statistics (nor BN's ``num_batches_tracked``), parameter or gradient; afterwards every submodule is
    back in the mode it was in (a model in training mode with a frozen, eval-mode layer stays so).
    The helpers that run a model only to describe it or read its predictions use it."""
    modes = [(module, module.training) for module in model.modules()]
    try:
        model.eval()
        with torch.no_grad():
            yield model
    finally:
        for module, training in modes:
            module.training = training


def _where_to_describe(model, device):
    """``(model, device)`` for a describing forward pass: the model itself where its parameters are, or,
    when ``device`` names another device, a copy there, so the model is never moved."""
    here = next(model.parameters()).device
    device = torch.device(device) if device is not None else here
    if device.type == here.type and device.index in (None, here.index):
        return model, here
    return copy.deepcopy(model).to(device), device


def model_summary(model, input_size=(3, 32, 32), device=None):
    """Print torchsummary's layer table for ``model`` (CPU or CUDA).

    The model is left exactly as it was: torchsummary's random batch goes through it in eval mode without
    autograd (``evaluating``), so its mode, running statistics, gradients, ``requires_grad``, device and
    memory format are unchanged. ``device`` defaults to where the model is; another device summarises a
    copy there."""
    model, device = _where_to_describe(model, device)
    with evaluating(model):
        summary(model, input_size=input_size, device=device.type)


def block_summary(model, input_size=(3, 224, 224), device=None):
    """The model at block level, as a printable table: one row per top-level child of ``model`` (for
    ResNet-50: the stem layers, ``layer1``..``layer4`` with their bottleneck counts, the pooling and the
    head) with its output shape for one input of ``input_size`` and its parameter count.
    ``model_summary`` gives torchsummary's full per-layer table. Like it, this leaves the model exactly as
    it was (``evaluating``); ``device`` defaults to where the model is, another device describes a copy."""
    model, device = _where_to_describe(model, device)
    shapes = {}
    hooks = [child.register_forward_hook(lambda module, inputs, output, name=name: shapes.__setitem__(name, output.shape))
             for name, child in model.named_children()]
    try:
        with evaluating(model):
            model(torch.zeros(1, *input_size, device=device))
    finally:
        for hook in hooks:
            hook.remove()

    def holds(child):
        if not isinstance(child, torch.nn.Sequential) or not len(child):
            return type(child).__name__
        kinds = list(dict.fromkeys(type(part).__name__ for part in child))
        return f"{len(child)} x {kinds[0]}" if len(kinds) == 1 else ", ".join(kinds)

    rows = [("block", "holds", "output shape", "parameters")]
    for name, child in model.named_children():
        shape = "x".join(str(size) for size in shapes[name][1:]) if name in shapes else "-"
        rows.append((name, holds(child), shape, f"{sum(p.numel() for p in child.parameters()):,}"))
    rows.append(("total", "", "", f"{sum(p.numel() for p in model.parameters()):,}"))
    widths = [max(len(row[i]) for row in rows) for i in range(4)]
    return "\n".join(f"{a:<{widths[0]}}  {b:<{widths[1]}}  {c:<{widths[2]}}  {d:>{widths[3]}}" for a, b, c, d in rows)


def count_parameters(model):
    """Number of trainable parameters."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)
