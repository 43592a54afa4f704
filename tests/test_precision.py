"""The precision rule, decided by compute capability on CUDA (simulated here; no GPU needed), and the
CUDA path itself where a GPU is present."""
import pytest
import torch
from torch import nn

import training_utils
from tests.helpers import sgd, synthetic_loaders, tiny_cnn
from training_utils import Precision, resolve_precision, train


@pytest.mark.parametrize("capability, expected", [((7, 0), "fp16"), ((7, 5), "fp16"), ((8, 0), "bf16"),
                                                  ((9, 0), "bf16")])
def test_cuda_precision_follows_compute_capability(monkeypatch, capability, expected):
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda device=None: capability)
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: True)  # counts emulation: ignored
    assert resolve_precision("cuda", "auto") == expected
    precision = Precision.resolve("cuda", "auto")
    assert precision.name == expected and precision.scales_gradients == (expected == "fp16")


def test_cpu_precision_follows_bf16_units(monkeypatch):
    monkeypatch.setattr(training_utils, "cpu_has_bf16", lambda: False)
    assert resolve_precision("cpu") == "fp32"
    monkeypatch.setattr(training_utils, "cpu_has_bf16", lambda: True)
    assert resolve_precision("cpu") == "bf16"
    with pytest.raises(ValueError, match="fp16 autocast needs CUDA"):
        resolve_precision("cpu", "fp16")
    fp32 = Precision.resolve("cpu", "fp32", channels_last=False)
    assert fp32.dtype is None and not fp32.grad_scaler().is_enabled() and not fp32.channels_last


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_training_on_cuda_with_the_auto_precision():
    torch.manual_seed(0)
    train_loader, _ = synthetic_loaders(n_train=1024, batch_size=64)
    train_loader = type(train_loader)(train_loader.images.cpu(), train_loader.labels.cpu(), 64, (0.45,) * 3,
                                      (0.2,) * 3, device="cuda")
    model = Precision.resolve("cuda").prepare(tiny_cnn())
    first = train(model, "cuda", train_loader, sgd(model), nn.CrossEntropyLoss())
    second = train(model, "cuda", train_loader, sgd(model), nn.CrossEntropyLoss())
    assert second.loss < first.loss and second.acc > 30
