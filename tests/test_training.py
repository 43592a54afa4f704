import os
import pickle

import pytest
import torch
from torch import nn

import checkpoints
import training_utils
from checkpoints import CheckpointError, load_checkpoint, save_checkpoint
from tests.helpers import sgd, synthetic_loaders, tiny_cnn
from training_utils import NonFiniteLossError, fit, get_lr, train
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


def scripted_accuracies(monkeypatch, accuracies):
    """Make fit's evaluations report the test accuracies ``accuracies`` (%, one per evaluation, of the 256
    test images of ``synthetic_loaders``); None stands for Ctrl-C during that evaluation."""
    real_test, script = evaluate, iter(accuracies)

    def scripted(*args, **kwargs):
        result = real_test(*args, **kwargs)
        accuracy = next(script)
        if accuracy is None:
            raise KeyboardInterrupt
        changed = result._replace(correct=round(accuracy * result.processed / 100))
        changed.__dict__.update(result.__dict__)  # processed, skipped, correct5
        return changed

    monkeypatch.setattr(training_utils, "test", scripted)


def test_checkpoints_are_written_each_epoch_with_best_and_every_n(tmp_path, monkeypatch):
    scripted_accuracies(monkeypatch, [50.0, 75.0, 62.5])
    train_loader, test_loader = synthetic_loaders(n_train=256, batch_size=64)
    model = tiny_cnn()
    fit(model, "cpu", train_loader, test_loader, sgd(model), nn.CrossEntropyLoss(), 3, checkpoint_dir=tmp_path,
        save_every=2, log=lambda _: None)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["best.pt", "epoch_2.pt", "last.pt"]
    last, best = load_checkpoint(tmp_path / "last.pt"), load_checkpoint(tmp_path / "best.pt")
    assert last["epoch"] == 3 and last["history"]["test_acc"] == [50.0, 75.0, 62.5]
    assert best["epoch"] == 2 and best["history"]["test_acc"] == [50.0, 75.0]  # the best epoch, not the last
    assert load_checkpoint(tmp_path / "epoch_2.pt")["epoch"] == 2


def test_a_resumed_run_keeps_best_pt_when_its_epochs_are_worse(tmp_path, monkeypatch):
    """Stopped in epoch 3 after a best epoch 2 (75%), resumed: epoch 3 reaches 62.5%, so best.pt keeps epoch 2."""
    train_loader, test_loader = synthetic_loaders(n_train=256, batch_size=64)
    scripted_accuracies(monkeypatch, [50.0, 75.0, None])
    model = tiny_cnn()
    with pytest.raises(KeyboardInterrupt):
        fit(model, "cpu", train_loader, test_loader, sgd(model), nn.CrossEntropyLoss(), 3, checkpoint_dir=tmp_path,
            log=lambda _: None)
    best_weights = load_checkpoint(tmp_path / "best.pt")["model"]
    scripted_accuracies(monkeypatch, [62.5])
    model = tiny_cnn()
    fit(model, "cpu", train_loader, test_loader, sgd(model), nn.CrossEntropyLoss(), 3, checkpoint_dir=tmp_path,
        resume=tmp_path / "last.pt", log=lambda _: None)
    assert load_checkpoint(tmp_path / "last.pt")["epoch"] == 3
    best = load_checkpoint(tmp_path / "best.pt")
    assert best["epoch"] == 2 and best["history"]["test_acc"] == [50.0, 75.0]
    assert all(torch.equal(tensor, best["model"][name]) for name, tensor in best_weights.items())


def test_the_grad_scaler_state_is_saved_and_restored(tmp_path, monkeypatch):
    """fp16's GradScaler (here enabled on the CPU, where fit otherwise makes a disabled one) doubles its
    scale after every step (growth_interval=1): a run resumed after epoch 1 must continue from the saved
    scale and end where the straight run ends."""
    from precision import Precision

    scalers = []

    def enabled_scaler(self):
        scalers.append(torch.amp.GradScaler("cpu", init_scale=2.0 ** 4, growth_interval=1))
        return scalers[-1]

    monkeypatch.setattr(Precision, "grad_scaler", enabled_scaler)
    train_loader, test_loader = synthetic_loaders(n_train=128, batch_size=32)
    steps = len(train_loader)

    def run(folder, resume=None):
        torch.manual_seed(0)
        model = tiny_cnn()
        fit(model, "cpu", train_loader, test_loader, sgd(model), nn.CrossEntropyLoss(), 3, precision="fp32",
            checkpoint_dir=tmp_path / folder, save_every=1, resume=resume, log=lambda _: None)
        return scalers[-1]

    straight = run("straight")
    assert load_checkpoint(tmp_path / "straight" / "epoch_1.pt")["scaler"]["scale"] == 2.0 ** (4 + steps)
    resumed = run("resumed", resume=tmp_path / "straight" / "epoch_1.pt")
    assert straight.get_scale() == resumed.get_scale() == 2.0 ** (4 + 3 * steps)
    assert load_checkpoint(tmp_path / "resumed" / "last.pt")["scaler"] == straight.state_dict()


def test_test_counts_top1_top5_and_the_mean_loss_of_the_readable_images_exactly():
    """Logits given as inputs (the model returns them as they are), two batches, two unreadable images
    (SKIPPED_LABEL): the counts and the mean cross-entropy over the four readable images, by hand."""
    import math

    from dataset import SKIPPED_LABEL

    first = torch.tensor([[3.0, 1, 0, 0, 0, 0],      # label 0: top-1 and top-5
                          [3.0, 1, 0, 0, 0, 0],      # label 1: second, top-5 only
                          [0.0, 0, 0, 0, 0, -5],     # label 5: last of six, neither
                          [9.0, 0, 0, 0, 0, 0]])     # unreadable
    second = torch.tensor([[0.0, 2, 0, 0, 0, 0],     # label 1: top-1 and top-5
                           [0.0, 0, 0, 0, 0, 9]])    # unreadable
    loader = [(first, torch.tensor([0, 1, 5, SKIPPED_LABEL])), (second, torch.tensor([1, SKIPPED_LABEL]))]
    result = evaluate(nn.Identity(), "cpu", loader, nn.CrossEntropyLoss(), precision="fp32", topk=5)
    e = math.e
    losses = [math.log(e ** 3 + e + 4) - 3, math.log(e ** 3 + e + 4) - 1, math.log(5 + e ** -5) + 5,
              math.log(e ** 2 + 5) - 2]  # -log softmax of the label
    assert (result.correct, result.correct5, result.processed, result.skipped) == (2, 3, 4, 2)
    assert (result.acc, result.top5) == (50.0, 75.0)
    assert result.loss == pytest.approx(sum(losses) / 4, rel=1e-6)


def test_a_failed_save_leaves_the_previous_checkpoint_intact(tmp_path, monkeypatch):
    path = tmp_path / "last.pt"
    save_checkpoint({"model": {"w": torch.ones(3)}, "epoch": 1}, path)

    def crash_part_way(obj, file):
        file.write(b"partial bytes")
        raise OSError("disk full")

    monkeypatch.setattr(checkpoints.torch, "save", crash_part_way)
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
        pickle.dump([1, 2, 3], file, protocol=2)  # a plain pickle, not a checkpoint (2: torch.load's own protocol)
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
