"""Exact resume by construction: each epoch's randomness comes from (seed, epoch, rank), so 3 epochs in
one go and 1 epoch + resume give bit-identical weights, on every data path (Albumentations with 0 and 2
DataLoader workers, the device-resident batched loader), with momentum cycling on; through fit and
through main.py."""
import numpy as np
import pytest
import torch

import dataset
from batched_data import BatchedCifarLoader
from checkpoints import load_checkpoint
from precision import Precision
from seeding import seed_everything
from tests.helpers import MEAN, STD, sgd, synthetic_loaders, tiny_cnn
from tests.test_main import tiny_cifar  # noqa: F401  (fixture)
from training_utils import fit

QUIET = {"log": lambda *_: None}


def make_loaders(path, workers):
    data = dataset.SyntheticImages(96, seed=0)
    test_data = dataset.SyntheticImages(32, seed=1)
    if path == "batched":
        return (BatchedCifarLoader(data.images, data.labels, 32, MEAN, STD, train=True, cutout_length=8, seed=5),
                BatchedCifarLoader(test_data.images, test_data.labels, 32, MEAN, STD, train=False))
    train_set = dataset.AlbumentationsDataset(dataset.ImageArrays(data.images, data.labels),
                                              dataset.cifar_train_transforms(MEAN, STD, cutout_length=8), seed=5)
    test_set = dataset.AlbumentationsDataset(test_data, dataset.cifar_test_transforms(MEAN, STD))
    return (dataset.make_loader(train_set, 32, True, workers=workers, seed=5, persistent=False),
            dataset.make_loader(test_set, 32, False, workers=0))


def one_run(path, workers, init_seed, checkpoint_dir, resume=None):
    seed_everything(init_seed)
    train_loader, test_loader = make_loaders(path, workers)
    model = Precision.resolve("cpu").prepare(tiny_cnn())
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
    index = np.arange(16)  # as the label: a batch's labels say which image each row holds
    train_set = dataset.AlbumentationsDataset(dataset.ImageArrays(data.images, index),
                                              dataset.cifar_train_transforms(MEAN, STD, cutout_length=8), seed=5)
    loader = dataset.make_loader(train_set, 16, True, workers=0, seed=5)

    def epoch_batch(epoch):
        """The epoch's order, and its augmented images put back in index order."""
        loader.sampler.set_epoch(epoch)
        images, order = next(iter(loader))
        return order, images[order.argsort()]

    (first_order, first), (again_order, again), (second_order, second) = epoch_batch(1), epoch_batch(1), epoch_batch(2)
    assert torch.equal(first_order, again_order) and torch.equal(first, again)
    assert not torch.equal(first_order, second_order)  # another order
    assert sorted(first_order.tolist()) == sorted(second_order.tolist()) == index.tolist()
    assert all(not torch.equal(a, b) for a, b in zip(first, second))  # every image augmented anew


@pytest.mark.parametrize("loader", [["--workers", 0], ["--workers", 2], ["--loader", "batched"]])
def test_main_resumed_from_epoch_1_equals_the_straight_run(tiny_cifar, tmp_path, loader, main_here):  # noqa: F811
    common = ["--dataset", "cifar10", "--data_dir", tiny_cifar, "--epochs", 3, "--batch_size", 32, *loader,
              "--cycle_momentum", "--save_every", 1, "--no_plots"]
    straight = main_here(*common, "--output_dir", tmp_path / "straight")
    assert straight.returncode == 0, straight.stderr[-2000:]
    resumed = main_here(*common, "--output_dir", tmp_path / "resumed", "--seed", 1,
                        "--resume", tmp_path / "straight" / "epoch_1.pt")
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
    plain = Precision.resolve("cpu").prepare(tiny_cnn())
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
    plain = Precision.resolve("cpu").prepare(tiny_cnn())
    plain.load_state_dict(state)  # a compiled run's checkpoint loads into a plain model
    # resume the compiled run into a plain model, and a plain run's checkpoint into a compiled model
    resumed_plain = compiled_run(tmp_path / "plain", 123, resume=tmp_path / "compiled" / "epoch_1.pt", compiled=False)
    plain_straight = compiled_run(tmp_path / "plain_straight", 0, compiled=False)
    resumed_compiled = compiled_run(tmp_path / "again", 123, resume=tmp_path / "plain_straight" / "epoch_1.pt")
    for name, tensor in straight.state_dict().items():
        assert torch.equal(tensor, resumed_plain.state_dict()[name]), name
        assert torch.equal(tensor, plain_straight.state_dict()[name]), name
        assert torch.equal(tensor, resumed_compiled.state_dict()[name]), name


def test_the_printed_resume_command_continues_a_seed_2_run_exactly(tiny_cifar, tmp_path, monkeypatch, capsys):  # noqa: F811
    """A run started with --seed 2 (which also picks the --max_samples subset) and stopped by Ctrl-C in epoch 2
    prints a resume command; run as printed, without its --seed, or with another --seed, it ends with the
    weights of the run that never stopped: the resumed run takes the checkpoint's seed and says so."""
    import shlex
    import shutil

    import training_utils
    from main import main

    common = ["--dataset", "cifar10", "--data_dir", str(tiny_cifar), "--epochs", "2", "--batch_size", "16",
              "--max_samples", "40", "--seed", "2", "--workers", "0", "--precision", "fp32", "--no_plots"]
    main([*common, "--output_dir", str(tmp_path / "straight")])
    real_test, calls = training_utils.test, []

    def ctrl_c_in_the_second_evaluation(*args, **kwargs):
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real_test(*args, **kwargs)

    monkeypatch.setattr(training_utils, "test", ctrl_c_in_the_second_evaluation)
    with pytest.raises(SystemExit) as stopped:
        main([*common, "--output_dir", str(tmp_path / "stopped")])
    monkeypatch.undo()
    assert load_checkpoint(tmp_path / "stopped" / "last.pt")["epoch"] == 1
    printed = shlex.split(str(stopped.value.code).split("Continue with: ")[1])
    assert printed[:2] == ["python", "main.py"] and printed[-1] == "--resume" and "--seed" in printed
    seed_at = printed.index("--seed")
    without_seed = printed[:seed_at] + printed[seed_at + 2:]
    other_seed = printed[:seed_at + 1] + ["3"] + printed[seed_at + 2:]
    straight = load_checkpoint(tmp_path / "straight" / "last.pt")["model"]
    for name, command in (("as_printed", printed), ("without_seed", without_seed), ("other_seed", other_seed)):
        folder = tmp_path / name
        shutil.copytree(tmp_path / "stopped", folder)
        argv = command[2:]
        argv[argv.index("--output_dir") + 1] = str(folder)
        capsys.readouterr()
        main(argv)
        log = capsys.readouterr().out
        assert ("--seed 3 ignored" if name == "other_seed" else "seed 2, from") in log, name
        assert "continuing at epoch 2" in log, name
        resumed = load_checkpoint(folder / "last.pt")
        assert resumed["epoch"] == 2 and resumed["seed"] == 2, name
        for key, tensor in straight.items():
            assert torch.equal(tensor, resumed["model"][key]), (name, key)


def two_epochs(checkpoint_dir, resume=None, save_every=0, as_torch_2_3=False):
    """Two epochs of ``tiny_cnn`` on generated images under OneCycleLR, checkpoints in ``checkpoint_dir``;
    returns the model and the history. ``as_torch_2_3``: the OneCycleLR as torch 2.3 builds it, its anneal
    function in ``anneal_func``, which its ``state_dict()`` holds (torch/optim/lr_scheduler.py at v2.3.0
    and v2.3.1; from v2.4.0 it holds the name, ``_anneal_func_type``: pytorch/pytorch#123775)."""
    seed_everything(0)
    train_loader, test_loader = synthetic_loaders(n_train=256, batch_size=64)
    model = Precision.resolve("cpu").prepare(tiny_cnn())
    optimizer = sgd(model)
    scheduler = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=0.05, epochs=2, steps_per_epoch=len(train_loader))
    if as_torch_2_3:
        scheduler.anneal_func = scheduler._annealing_cos
        del scheduler._anneal_func_type
    history = fit(model, "cpu", train_loader, test_loader, optimizer, torch.nn.CrossEntropyLoss(), 2, scheduler,
                  precision="fp32", checkpoint_dir=checkpoint_dir, resume=resume, save_every=save_every, **QUIET)
    return model, history


def test_an_interrupt_between_two_checkpoint_files_never_leaves_best_pt_behind(tmp_path, monkeypatch):
    """Ctrl-C can land between the files of an epoch. Here it lands at the second file of epoch 2, the best
    epoch; resumed from last.pt, the run still ends with best.pt holding epoch 2 (were last.pt written first,
    it would hold epoch 2 and best.pt epoch 1, for good: the resumed run has nothing left to do)."""
    import training_utils

    real_save, written = training_utils.save_checkpoint, []

    def ctrl_c_at_the_second_file_of_epoch_2(state, path):
        written.append(state["epoch"])
        if written.count(2) == 2:
            raise KeyboardInterrupt
        real_save(state, path)

    monkeypatch.setattr(training_utils, "save_checkpoint", ctrl_c_at_the_second_file_of_epoch_2)
    with pytest.raises(KeyboardInterrupt):
        two_epochs(tmp_path)
    monkeypatch.undo()
    _, history = two_epochs(tmp_path, resume=tmp_path / "last.pt")
    assert history["test_acc"][1] > history["test_acc"][0]  # epoch 2 is the best
    assert load_checkpoint(tmp_path / "best.pt")["epoch"] == load_checkpoint(tmp_path / "last.pt")["epoch"] == 2


def test_a_checkpoint_of_torch_2_3s_one_cycle_schedule_loads_safely_and_resumes_exactly(tmp_path):
    """requirements.txt allows torch 2.3, whose OneCycleLR state holds a function: saved as it is, the
    checkpoint would be refused by torch.load(weights_only=True). Saved without it, it loads and resumes."""
    straight, _ = two_epochs(tmp_path / "straight", save_every=1, as_torch_2_3=True)
    saved = load_checkpoint(tmp_path / "straight" / "epoch_1.pt")["scheduler"]
    assert saved["last_epoch"] == 4 and not any(callable(value) for value in saved.values())
    resumed, _ = two_epochs(tmp_path / "resumed", resume=tmp_path / "straight" / "epoch_1.pt", as_torch_2_3=True)
    for name, tensor in straight.state_dict().items():
        assert torch.equal(tensor, resumed.state_dict()[name]), name
