"""The range test: ``find_lr`` and its suggestions, the report, and ``lr_finder.LRFinder`` as a drop-in for
torch-lr-finder 0.2.2 (compared with the package's own class on the same calls) with the specification's
returns, also in a notebook."""
import re

import matplotlib
import matplotlib.pyplot as plt
import numpy as np
import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset
from torch_lr_finder import LRFinder as PackageLRFinder
from torch_lr_finder import TrainDataLoaderIter, ValDataLoaderIter

import lr_finder
from lr_finder import LRFinder, channels_last_images, find_lr, steepest_suggestion, suggest, valley_suggestion
from tests.helpers import sgd, synthetic_loaders, tiny_cnn

matplotlib.use("Agg")


def test_range_test_suggests_finite_lrs_in_range_and_restores_the_model():
    torch.manual_seed(0)
    train_loader, _ = synthetic_loaders(n_train=512, batch_size=32)
    model = tiny_cnn()
    optimizer = sgd(model, lr=1e-4)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    result = find_lr(model, optimizer, nn.CrossEntropyLoss(), train_loader, start_lr=1e-4, end_lr=10,
                     num_iter=40, progress=False)  # 40 > 16 batches: the loader is cycled
    assert set(result.suggestions) == {"steepest", "valley", "min_loss", "minimum"}
    for lr in result.suggestions.values():
        assert np.isfinite(lr) and 1e-4 <= lr <= 10
    assert len(result.all_lrs) <= 40 and min(result.losses) < result.losses[0]
    for key, value in model.state_dict().items():
        assert torch.equal(value, before[key]), key
    assert optimizer.param_groups[0]["lr"] == 1e-4 and not optimizer.state


def test_steepest_matches_torch_lr_finders_plot():
    model = tiny_cnn()
    finder = PackageLRFinder(model, sgd(model, lr=1e-4), nn.CrossEntropyLoss())
    finder.history = {"lr": list(np.geomspace(1e-4, 10, 60)),
                      "loss": list(2.3 - np.sin(np.linspace(0, 3, 60)) + np.random.default_rng(0).normal(0, .02, 60))}
    fig, ax = plt.subplots()
    _, library = finder.plot(skip_start=10, skip_end=5, ax=ax)
    plt.close(fig)
    ours = steepest_suggestion(finder.history["lr"][10:-5], finder.history["loss"][10:-5])
    assert ours == library


def test_valley_picks_inside_the_longest_descent():
    lrs = list(np.geomspace(1e-4, 10, 100))
    losses = list(np.r_[np.full(30, 2.3), np.linspace(2.3, 0.5, 50), np.linspace(0.5, 5, 20)])
    valley = valley_suggestion(lrs, losses)
    assert lrs[30] < valley < lrs[80]
    assert suggest(lrs, losses)[0]["min_loss"] == lrs[79]


def test_nan_losses_give_no_suggestion_and_a_reason():
    lrs = list(np.geomspace(1e-4, 1, 20))
    suggestions, reason = suggest(lrs, [float("nan")] * 20)
    assert suggestions == {} and "NaN" in reason
    suggestions, reason = suggest(lrs, list(np.linspace(1, 3, 20)))
    assert suggestions == {} and "never fell" in reason


class AlwaysNaN(nn.Module):
    def __init__(self):
        super().__init__()
        self.linear = nn.Linear(3, 10)

    def forward(self, x):
        return self.linear(x.mean((2, 3))) * float("nan")


def test_a_diverging_model_does_not_crash_the_range_test():
    train_loader, _ = synthetic_loaders(n_train=128, batch_size=32)
    model = AlwaysNaN()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    result = find_lr(model, sgd(model), nn.CrossEntropyLoss(), train_loader, num_iter=12, progress=False)
    assert result.suggestions == {} and "NaN" in result.reason
    assert any("no suggestion" in w for w in result.warnings)
    for key, value in model.state_dict().items():
        assert torch.equal(value, before[key])


def test_bad_ranges_are_refused():
    model = tiny_cnn()
    train_loader, _ = synthetic_loaders(n_train=64)
    with pytest.raises(ValueError, match="start_lr < end_lr"):
        find_lr(model, sgd(model), nn.CrossEntropyLoss(), train_loader, start_lr=1.0, end_lr=0.1)
    with pytest.raises(ValueError, match="num_iter"):
        find_lr(model, sgd(model), nn.CrossEntropyLoss(), train_loader, num_iter=1)


def test_report_does_not_call_a_valley_above_the_minimum_cautious(tmp_path):
    """A sharp early dip, then a long slow fall that stays above it: the valley lies above min_loss, so the
    report must not recommend it as the cautious choice (it did, for ResNet-50's first range tests)."""
    from lr_finder import LRFinderResult, suggest, write_report
    lrs = list(np.logspace(-4, 0, 20))
    losses = [3.0, 1.6] + list(np.linspace(2.9, 2.0, 18))
    suggestions, reason = suggest(lrs, losses)
    assert suggestions["valley"] > suggestions["min_loss"] == lrs[1] and not reason
    settings = {"start_lr": 1e-4, "end_lr": 1.0, "num_iter": 20, "step_mode": "exp", "smooth_f": 0.0}
    result = LRFinderResult(lrs, losses, suggestions, settings, lrs, losses)
    log = write_report(result, tmp_path, "curve", 32, "test")["log"].read_text()
    steps = " ".join(log.split("Next steps")[1].split("Curve")[0].split())
    assert "is the cautious choice" not in steps and "no cautious choice" in steps
    assert f"start an order of magnitude below it, {lrs[1] / 10:.3g}" in steps
    calm = LRFinderResult(lrs, sorted(losses, reverse=True), *suggest(lrs, sorted(losses, reverse=True))[:1],
                          settings, lrs, sorted(losses, reverse=True))
    steps = " ".join(write_report(calm, tmp_path, "curve", 32, "test")["log"].read_text().split())
    assert "is the cautious choice" in steps
