import os
import pickle

import pytest
import torch
from torch import nn

import training_utils
from tests.helpers import sgd, synthetic_loaders, tiny_cnn
from training_utils import (CheckpointError, NonFiniteLossError, fit, get_lr, load_checkpoint, save_checkpoint,
                            train)
from training_utils import test as evaluate


def test_train_lowers_the_loss_and_learns_synthetic_images():
    torch.manual_seed(0)
    train_loader, test_loader = synthetic_loaders()
    model = tiny_cnn()
    criterion = nn.CrossEntropyLoss()
    before = evaluate(model, "cpu", test_loader, criterion)
    first = train(model, "cpu", train_loader, sgd(model), criterion)
    second = train(model, "cpu", train_loader, sgd(model), criterion)
    after = evaluate(model, "cpu", test_loader, criterion, topk=5)
    assert second.loss < first.loss
    assert after.loss < before.loss - 0.5
    assert after.acc > 50  # chance is 10%
    assert after.top5 >= after.acc


def test_one_cycle_schedule_matches_the_formula_at_first_peak_and_last_step():
    torch.manual_seed(0)
    train_loader, test_loader = synthetic_loaders(n_train=512, batch_size=32)  # 16 steps: 5/24 of 48 is 10
    model = tiny_cnn()
    optimizer = sgd(model)
    epochs, steps, max_lr, pct, div, final_div = 3, len(train_loader), 0.4, 5 / 24, 100, 100
    scheduler = torch.optim.lr_scheduler.OneCycleLR(
        optimizer, max_lr=max_lr, epochs=epochs, steps_per_epoch=steps, pct_start=pct, div_factor=div,
        final_div_factor=final_div, three_phase=False, anneal_strategy="linear", cycle_momentum=False)
    history = fit(model, "cpu", train_loader, test_loader, optimizer, nn.CrossEntropyLoss(), epochs, scheduler,
                  log=lambda _: None)
    lrs, total = history["lr"], epochs * steps
    assert len(lrs) == total
    peak = round(pct * total) - 1  # OneCycleLR: end of phase one
    assert lrs[0] == pytest.approx(max_lr / div)
    assert lrs[peak] == pytest.approx(max_lr) and max(lrs) == pytest.approx(max_lr)
    assert lrs[-1] == pytest.approx(max_lr / div / final_div)
    middle = peak // 2
    assert lrs[middle] == pytest.approx(max_lr / div + (max_lr - max_lr / div) * middle / peak)
    assert len(history["test_acc"]) == epochs and len(history["epoch_time"]) == epochs


def test_get_lr_reads_the_first_group():
    optimizer = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=0.123)
    assert get_lr(optimizer) == 0.123


class Exploding(nn.Module):
    """A model whose output becomes NaN at the third call."""

    def __init__(self):
        super().__init__()
        self.linear, self.calls = nn.Linear(3, 10), 0

    def forward(self, x):
        self.calls += 1
        out = self.linear(x.mean((2, 3)))
        return out * float("nan") if self.calls >= 3 else out


def test_a_nan_loss_stops_training_naming_epoch_and_step(tmp_path):
    train_loader, test_loader = synthetic_loaders(n_train=256, batch_size=32)
    model = Exploding()
    with pytest.raises(NonFiniteLossError, match="epoch 1, step 2"):
        fit(model, "cpu", train_loader, test_loader, sgd(model), nn.CrossEntropyLoss(), 2,
            checkpoint_dir=tmp_path, log=lambda _: None)
    assert not (tmp_path / "last.pt").exists()


def test_checkpoints_are_written_each_epoch_with_best_and_every_n(tmp_path):
    train_loader, test_loader = synthetic_loaders(n_train=256, batch_size=64)
    model = tiny_cnn()
    fit(model, "cpu", train_loader, test_loader, sgd(model), nn.CrossEntropyLoss(), 2, checkpoint_dir=tmp_path,
        save_every=2, log=lambda _: None)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["best.pt", "epoch_2.pt", "last.pt"]
    state = load_checkpoint(tmp_path / "last.pt")
    assert state["epoch"] == 2 and len(state["history"]["test_acc"]) == 2


def test_a_failed_save_leaves_the_previous_checkpoint_intact(tmp_path, monkeypatch):
    path = tmp_path / "last.pt"
    save_checkpoint({"model": {"w": torch.ones(3)}, "epoch": 1}, path)

    def crash_part_way(obj, file):
        file.write(b"partial bytes")
        raise OSError("disk full")

    monkeypatch.setattr(training_utils.torch, "save", crash_part_way)
    with pytest.raises(OSError, match="disk full"):
        save_checkpoint({"model": {"w": torch.zeros(3)}, "epoch": 2}, path)
    monkeypatch.undo()
    state = load_checkpoint(path)
    assert state["epoch"] == 1 and torch.equal(state["model"]["w"], torch.ones(3))
    assert [p.name for p in tmp_path.iterdir()] == ["last.pt"]  # no temp file left behind


class Payload:
    def __reduce__(self):
        return (os.system, ("touch pwned",))


def test_a_crafted_pickle_is_refused_without_running_code(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    path = tmp_path / "evil.pt"
    torch.save({"model": {}, "epoch": 1, "extra": Payload()}, path)
    with pytest.raises(CheckpointError, match="could run code"):
        load_checkpoint(path)
    assert not (tmp_path / "pwned").exists()


def test_truncated_and_foreign_checkpoints_give_clear_errors(tmp_path):
    good = tmp_path / "good.pt"
    save_checkpoint({"model": {"w": torch.ones(1000)}, "epoch": 1}, good)
    truncated = tmp_path / "truncated.pt"
    truncated.write_bytes(good.read_bytes()[:500])
    with pytest.raises(CheckpointError, match="truncated"):
        load_checkpoint(truncated)
    with open(tmp_path / "list.pt", "wb") as file:
        pickle.dump([1, 2, 3], file)
    with pytest.raises(CheckpointError):
        load_checkpoint(tmp_path / "list.pt")


def test_resume_refuses_another_model_or_run_length(tmp_path):
    train_loader, test_loader = synthetic_loaders(n_train=256, batch_size=64)
    model = tiny_cnn()
    fit(model, "cpu", train_loader, test_loader, sgd(model), nn.CrossEntropyLoss(), 1, checkpoint_dir=tmp_path,
        log=lambda _: None)
    other = tiny_cnn(num_classes=5)
    with pytest.raises(CheckpointError, match="another model or class count: '13.weight' differs \\(checkpoint \\(10, 64\\), model \\(5, 64\\)\\)"):
        fit(other, "cpu", train_loader, test_loader, sgd(other), nn.CrossEntropyLoss(), 1,
            resume=tmp_path / "last.pt", log=lambda _: None)
    model = tiny_cnn()
    with pytest.raises(CheckpointError, match="run of 1 epochs"):
        fit(model, "cpu", train_loader, test_loader, sgd(model), nn.CrossEntropyLoss(), 3,
            resume=tmp_path / "last.pt", log=lambda _: None)
