"""The precision rule, decided by compute capability on CUDA (simulated here; no GPU needed), and the
CUDA path itself where a GPU is present."""
import pytest
import torch
from torch import nn

import precision as precision_module
import training_utils
from precision import Precision
from tests.helpers import needs_cuda, sgd, synthetic_loaders, tiny_cnn
from training_utils import train


@pytest.mark.parametrize("capability, expected", [((7, 0), "fp16"), ((7, 5), "fp16"), ((8, 0), "bf16"),
                                                  ((9, 0), "bf16")])
def test_cuda_precision_follows_compute_capability(monkeypatch, capability, expected):
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda device=None: capability)
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: True)  # counts emulation: ignored
    precision = Precision.resolve("cuda", "auto")
    assert precision.name == expected and precision.scales_gradients == (expected == "fp16")
    assert str(precision) == f"{precision}" == expected  # what the lessons print


def test_cpu_precision_follows_bf16_units(monkeypatch):
    monkeypatch.setattr(precision_module, "cpu_has_bf16", lambda: False)
    assert Precision.resolve("cpu").name == "fp32"
    monkeypatch.setattr(precision_module, "cpu_has_bf16", lambda: True)
    bf16 = Precision.resolve("cpu")
    assert bf16.name == "bf16" and Precision.resolve("cpu", bf16) is bf16  # resolved once, then passed on
    with pytest.raises(ValueError, match="fp16 autocast needs CUDA"):
        Precision.resolve("cpu", "fp16")
    with pytest.raises(ValueError, match="precision must be one of"):
        Precision.resolve("cpu", "fp8")
    fp32 = Precision.resolve("cpu", "fp32", channels_last=False)
    assert fp32.dtype is None and not fp32.grad_scaler().is_enabled() and not fp32.channels_last


def cuda_loader():
    return synthetic_loaders(n_train=1024, batch_size=64, device="cuda")[0]


@needs_cuda
@pytest.mark.parametrize("name", ["auto", "fp16", "fp32"])
def test_training_on_cuda(name):
    """Each precision trains on the GPU: "auto" (bf16 from compute capability 8.0, fp16 below), fp16 with
    its GradScaler (what a T4 runs) on any GPU, and fp32."""
    torch.manual_seed(0)
    precision = Precision.resolve("cuda", name)
    model = precision.prepare(tiny_cnn())
    optimizer, scaler = sgd(model), precision.grad_scaler()
    first = train(model, "cuda", cuda_loader(), optimizer, nn.CrossEntropyLoss(), precision=precision, scaler=scaler)
    second = train(model, "cuda", cuda_loader(), optimizer, nn.CrossEntropyLoss(), precision=precision, scaler=scaler)
    assert second.loss < first.loss and second.acc > 30
    assert scaler.is_enabled() == (precision.name == "fp16")
    if scaler.is_enabled():
        assert 0 < scaler.get_scale() < float("inf")


@needs_cuda
def test_compiled_model_trains_on_cuda():
    """torch.compile with its default backend (inductor, generating GPU kernels) trains like the plain model."""
    torch.manual_seed(0)
    precision = Precision.resolve("cuda")
    plain = precision.prepare(tiny_cnn())
    model = torch.compile(plain)
    optimizer = sgd(plain)
    first = train(model, "cuda", cuda_loader(), optimizer, nn.CrossEntropyLoss(), precision=precision)
    second = train(model, "cuda", cuda_loader(), optimizer, nn.CrossEntropyLoss(), precision=precision)
    assert second.loss < first.loss and second.acc > 30
    assert training_utils.unwrap(model) is plain
