"""The helpers that run a model only to describe it (or read its predictions) leave it exactly as they found it."""
import contextlib
import io

import pytest
import torch
from torch import nn

from tests.helpers import DEVICES, tiny_cnn
from utils import block_summary, get_misclassified_data, get_predictions, model_summary


def model_mid_training(device):
    """tiny_cnn in training mode, channels_last, after one backward pass, with its first batch-norm layer
    frozen (eval mode, no gradients), one gradient cleared to None and one bias not trainable."""
    torch.manual_seed(0)
    model = tiny_cnn().to(device, memory_format=torch.channels_last).train()
    model[1].eval().requires_grad_(False)
    model[-1].bias.requires_grad_(False)
    nn.functional.cross_entropy(model(torch.randn(4, 3, 32, 32, device=device)), torch.arange(4, device=device)).backward()
    model[4].weight.grad = None
    return model


def snapshot(model):
    """Everything a describing helper must leave alone, as plain values and clones."""
    return {
        "state": {name: tensor.clone() for name, tensor in model.state_dict().items()},
        "modes": [module.training for module in model.modules()],
        "grads": [None if p.grad is None else p.grad.clone() for p in model.parameters()],
        "requires_grad": [p.requires_grad for p in model.parameters()],
        "devices": [p.device for p in model.parameters()],
        "channels_last": [p.is_contiguous(memory_format=torch.channels_last) for p in model.parameters() if p.dim() == 4],
    }


def assert_unchanged(before, model):
    after = snapshot(model)
    assert after["state"].keys() == before["state"].keys()
    for name, tensor in before["state"].items():  # running stats and num_batches_tracked included
        assert torch.equal(after["state"][name], tensor), f"{name} changed"
    for key in ("modes", "requires_grad", "devices", "channels_last"):
        assert after[key] == before[key], f"{key} changed"
    assert [g is None for g in after["grads"]] == [g is None for g in before["grads"]]
    assert all(a is None or torch.equal(a, b) for a, b in zip(after["grads"], before["grads"]))


def quietly(helper):
    with contextlib.redirect_stdout(io.StringIO()):
        return helper()


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("describe", ["model_summary", "block_summary", "get_predictions", "get_misclassified_data"])
def test_describing_helpers_leave_a_training_model_as_they_found_it(describe, device):
    model = model_mid_training(device)
    assert model.training and not model[1].training and model[1].num_batches_tracked == 0
    assert model[5].num_batches_tracked == 1 and model[4].weight.grad is None and model[0].weight.grad is not None
    before = snapshot(model)
    batches = [(torch.randn(8, 3, 32, 32), torch.arange(8) % 10) for _ in range(2)]
    helpers = {
        "model_summary": lambda: model_summary(model, input_size=(3, 32, 32)),
        "block_summary": lambda: block_summary(model, input_size=(3, 32, 32)),
        "get_predictions": lambda: get_predictions(model, device, batches),
        "get_misclassified_data": lambda: get_misclassified_data(model, device, batches),
    }
    quietly(helpers[describe])
    assert_unchanged(before, model)


@pytest.mark.parametrize("device", DEVICES)
def test_summaries_on_another_device_leave_the_model_where_it_is(device):
    other = "cpu" if device == "cuda" else ("cuda" if torch.cuda.is_available() else None)
    if other is None:
        pytest.skip("needs a CUDA GPU for a second device")
    model = model_mid_training(device)
    before = snapshot(model)
    text = io.StringIO()
    with contextlib.redirect_stdout(text):
        model_summary(model, input_size=(3, 32, 32), device=other)
    assert "Total params: " in text.getvalue()
    assert "64x8x8" in block_summary(model, input_size=(3, 32, 32), device=other)
    assert_unchanged(before, model)
