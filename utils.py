"""Helpers around training: data statistics, misclassified samples, device choice, seeding, summaries."""
import os
import random

import numpy as np
import torch
from torchsummary import summary

from dataset import channel_stats


def get_cifar_statistics(data, data_set_type="Train"):
    """Print count, shape, min, max and per-channel mean, std and var (scaled to [0, 1]) of a CIFAR-style
    data set, as the reference notebook did. ``data`` is ``(images uint8 N x H x W x 3, labels)`` or an
    object with ``.data``/``.images``. Returns ``(mean, std)``."""
    images = data[0] if isinstance(data, tuple) else getattr(data, "data", getattr(data, "images", data))
    images = np.asarray(images)
    mean, std = channel_stats(images)
    scaled_min, scaled_max = float(images.min()) / 255, float(images.max()) / 255
    print(f"[{data_set_type}]")
    print(f" - Total {data_set_type} Images: {len(images)}")
    print(f" - Tensor Shape: {tuple(images.shape[1:])}")
    channels = images.shape[-1]
    print(f" - min: {_fmt([scaled_min] * channels)}")
    print(f" - max: {_fmt([scaled_max] * channels)}")
    print(f" - mean: {_fmt(mean)}")
    print(f" - std: {_fmt(std)}")
    print(f" - var: {_fmt([s * s for s in std])}")
    return mean, std


def _fmt(values):
    return "(" + ", ".join(f"{v:.4f}" for v in values) + ")"


@torch.inference_mode()
def get_misclassified_data(model, device, loader, max_items=None):
    """Run the model over ``loader``; returns a list of ``(image, true_label, predicted_label)`` for the
    wrong predictions (images as CPU float tensors, still normalised)."""
    model.eval()
    misclassified = []
    for x, y in loader:
        x, y = x.to(device), y.to(device)
        predicted = model(x.float()).argmax(1)
        for index in torch.nonzero(predicted != y).flatten().tolist():
            misclassified.append((x[index].float().cpu(), int(y[index]), int(predicted[index])))
            if max_items is not None and len(misclassified) >= max_items:
                return misclassified
    return misclassified


@torch.inference_mode()
def get_predictions(model, device, loader):
    """All ``(true_labels, predicted_labels)`` over ``loader`` as numpy arrays (for a confusion matrix)."""
    model.eval()
    truth, predicted = [], []
    for x, y in loader:
        predicted.append(model(x.to(device).float()).argmax(1).cpu())
        truth.append(y.cpu())
    return torch.cat(truth).numpy(), torch.cat(predicted).numpy()


def get_device(prefer_cuda=True):
    """``cuda`` when available (and wanted), else ``cpu``."""
    return torch.device("cuda" if prefer_cuda and torch.cuda.is_available() else "cpu")


def seed_everything(seed=1):
    """Seed Python, NumPy and torch (CPU and CUDA)."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    os.environ["PYTHONHASHSEED"] = str(seed)


def model_summary(model, input_size=(3, 32, 32), device=None):
    """torchsummary's layer table for ``model`` on CPU or CUDA (the model is moved to ``device``)."""
    device = torch.device(device or next(model.parameters()).device)
    model = model.to(device)
    summary(model, input_size=input_size, device=device.type)


def count_parameters(model):
    """Number of trainable parameters."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)
