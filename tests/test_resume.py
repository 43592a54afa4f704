"""Exact resume by construction: each epoch's randomness comes from (seed, epoch, rank), so 3 epochs in
one go and 1 epoch + resume give bit-identical weights, on every data path (Albumentations with 0 and 2
DataLoader workers, the device-resident batched loader), with momentum cycling on; through fit and
through main.py."""
import numpy as np
import pytest
import torch

import dataset
from tests.helpers import MEAN, STD, tiny_cnn
from tests.test_main import run_main, tiny_cifar  # noqa: F401  (fixture)
from training_utils import fit, load_checkpoint, prepare_model
from utils import seed_everything

QUIET = {"log": lambda *_: None}


def make_loaders(path, workers):
    data = dataset.SyntheticImages(96, seed=0)
    test_data = dataset.SyntheticImages(32, seed=1)
    if path == "batched":
        return (dataset.BatchedCifarLoader(data.images, data.labels, 32, MEAN, STD, train=True, cutout_size=8, seed=5),
                dataset.BatchedCifarLoader(test_data.images, test_data.labels, 32, MEAN, STD, train=False))
    train_set = dataset.AlbumentationsDataset(dataset.ImageArrays(data.images, data.labels),
                                              dataset.cifar_train_transforms(MEAN, STD, cutout_size=8), seed=5)
    test_set = dataset.AlbumentationsDataset(test_data, dataset.cifar_test_transforms(MEAN, STD))
    return (dataset.make_loader(train_set, 32, True, workers=workers, seed=5, persistent=False),
            dataset.make_loader(test_set, 32, False, workers=0))


def one_run(path, workers, init_seed, checkpoint_dir, resume=None):
    seed_everything(init_seed)
    train_loader, test_loader = make_loaders(path, workers)
    model = prepare_model(tiny_cnn(), "cpu")
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9, nesterov=True, weight_decay=5e-4)
    scheduler = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=0.05, epochs=3, steps_per_epoch=len(train_loader),
                                                    pct_start=0.4, cycle_momentum=True)
    history = fit(model, "cpu", train_loader, test_loader, optimizer, torch.nn.CrossEntropyLoss(), 3, scheduler,
                  precision="fp32", checkpoint_dir=checkpoint_dir, save_every=1, resume=resume, seed=7, **QUIET)
    return model, history


@pytest.mark.parametrize("path, workers", [("albumentations", 0), ("albumentations", 2), ("batched", 0)])
def test_fit_resumed_after_one_epoch_equals_the_straight_run(tmp_path, path, workers):
    straight, straight_history = one_run(path, workers, 0, tmp_path / "straight")
    resumed, resumed_history = one_run(path, workers, 123, tmp_path / "resumed",  # other init: all from the checkpoint
                                       resume=tmp_path / "straight" / "epoch_1.pt")
    assert resumed_history["momentum"] == straight_history["momentum"] and len(set(straight_history["momentum"])) > 2
    assert resumed_history["train_loss"] == straight_history["train_loss"]
    for name, tensor in straight.state_dict().items():
        assert torch.equal(tensor, resumed.state_dict()[name]), name


def test_each_epoch_augments_and_shuffles_differently_but_reproducibly():
    data = dataset.SyntheticImages(16, seed=0)
    train_set = dataset.AlbumentationsDataset(dataset.ImageArrays(data.images, data.labels),
                                              dataset.cifar_train_transforms(MEAN, STD, cutout_size=8), seed=5)
    loader = dataset.make_loader(train_set, 16, True, workers=0, seed=5)

    def epoch_batch(epoch):
        loader.sampler.set_epoch(epoch)
        return next(iter(loader))

    first, again, second = epoch_batch(1), epoch_batch(1), epoch_batch(2)
    assert torch.equal(first[0], again[0]) and torch.equal(first[1], again[1])
    assert not torch.equal(first[1], second[1])  # another order
    assert sorted(first[1].tolist()) == sorted(second[1].tolist()) == sorted(data.labels.tolist())


@pytest.mark.parametrize("loader", [["--workers", 0], ["--workers", 2], ["--loader", "batched"]])
def test_main_resumed_from_epoch_1_equals_the_straight_run(tiny_cifar, tmp_path, loader):  # noqa: F811
    common = ["--dataset", "cifar10", "--data_dir", tiny_cifar, "--epochs", 3, "--batch_size", 32, *loader,
              "--cycle_momentum", "--save_every", 1, "--no_plots"]
    straight = run_main(*common, "--output_dir", tmp_path / "straight", timeout=300)
    assert straight.returncode == 0, straight.stderr[-2000:]
    resumed = run_main(*common, "--output_dir", tmp_path / "resumed", "--seed", 1,
                       "--resume", tmp_path / "straight" / "epoch_1.pt", timeout=300)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert "continuing at epoch 2" in resumed.stdout
    assert ("batched loader" in resumed.stdout) == ("batched" in loader)
    a, b = (load_checkpoint(tmp_path / run / "last.pt") for run in ("straight", "resumed"))
    assert sum(t.is_floating_point() for t in a["model"].values()) == 42  # weights, biases, BN statistics
    for name, tensor in a["model"].items():
        assert torch.equal(tensor, b["model"][name]), name
    assert a["history"]["momentum"] == b["history"]["momentum"] and np.ptp(a["history"]["momentum"]) > 0


def compiled_run(checkpoint_dir, init_seed, resume=None, compiled=True):
    """The batched-loader run of ``one_run``, on a torch.compile'd model (the "eager" backend: the compile
    wrapper without code generation, so no C++ compiler is needed)."""
    seed_everything(init_seed)
    train_loader, test_loader = make_loaders("batched", 0)
    plain = prepare_model(tiny_cnn(), "cpu")
    model = torch.compile(plain, backend="eager") if compiled else plain
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9, nesterov=True, weight_decay=5e-4)
    scheduler = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=0.05, epochs=3, steps_per_epoch=len(train_loader))
    fit(model, "cpu", train_loader, test_loader, optimizer, torch.nn.CrossEntropyLoss(), 3, scheduler,
        precision="fp32", checkpoint_dir=checkpoint_dir, save_every=1, resume=resume, seed=7, **QUIET)
    return plain


def test_compiled_model_checkpoints_plain_weights_and_resumes_exactly(tmp_path):
    straight = compiled_run(tmp_path / "compiled", 0)
    state = load_checkpoint(tmp_path / "compiled" / "epoch_1.pt")["model"]
    assert not any(key.startswith("_orig_mod.") for key in state), "checkpoints hold the plain module's keys"
    plain = prepare_model(tiny_cnn(), "cpu")
    plain.load_state_dict(state)  # a compiled run's checkpoint loads into a plain model
    # resume the compiled run into a plain model, and a plain run's checkpoint into a compiled model
    resumed_plain = compiled_run(tmp_path / "plain", 123, resume=tmp_path / "compiled" / "epoch_1.pt", compiled=False)
    plain_straight = compiled_run(tmp_path / "plain_straight", 0, compiled=False)
    resumed_compiled = compiled_run(tmp_path / "again", 123, resume=tmp_path / "plain_straight" / "epoch_1.pt")
    for name, tensor in straight.state_dict().items():
        assert torch.equal(tensor, resumed_plain.state_dict()[name]), name
        assert torch.equal(tensor, plain_straight.state_dict()[name]), name
        assert torch.equal(tensor, resumed_compiled.state_dict()[name]), name
