"""Tests of the ImageNet path: main.py's command line (arguments, range test, training, torchrun), the
range-test report files, exact resume, and the ImageFolder helpers. Small generated data only; the tests
that read a real ImageNet-style folder run when IMAGENET_DIR points at one.

main.py runs in a subprocess (``run_main``) where the process is what is tested (``--help`` as a user
types it, torchrun); elsewhere in the test's process (the ``main_here`` fixture of tests/conftest.py), which
gives the same exit status and output without a new process's imports."""
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

import dataset
from checkpoints import load_checkpoint
from lr_finder import LRFinderResult, analyse, suggest, write_report
from precision import Precision
from seeding import seed_everything
from tests.helpers import synthetic_loaders, tiny_cnn, write_cifar_npz
from training_utils import fit

ROOT = Path(__file__).resolve().parents[1]
JSON_KEYS = {"suggested_lr", "suggestions", "dataset", "batch_size", "num_iter", "start_lr", "end_lr", "plot_file",
             "log_file", "timestamp"}
IMAGENET_DIR = os.environ.get("IMAGENET_DIR")


def run_main(*args, launcher=(), timeout=120):
    """Run main.py in a subprocess (one torch thread per process, as torchrun sets it)."""
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.run([sys.executable, *launcher, "main.py", *map(str, args)], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=timeout)


@pytest.fixture(scope="module")
def tiny_folder(tmp_path_factory):
    """A 4-class ImageFolder of 48x48 generated JPEGs: 64 training and 32 validation images."""
    root = tmp_path_factory.mktemp("tiny_imagenet")
    for split, seed, count in (("train", 0, 64), ("val", 1, 32)):
        source = dataset.SyntheticImages(n=count, size=48, seed=seed, num_classes=4)
        dataset.write_image_folder(source.images, source.labels, source.classes, root, split)
    return root


@pytest.fixture(scope="module")
def tiny_cifar(tmp_path_factory):
    """train.npz / test.npz of generated 32x32 images in the CIFAR layout (64 + 32)."""
    return write_cifar_npz(tmp_path_factory.mktemp("tiny_cifar"), 64, 32)


def curve_result(losses, start_lr=1e-5, end_lr=10.0):
    """An LRFinderResult for a given smoothed-loss curve over an exponential LR range."""
    lrs = list(np.geomspace(start_lr, end_lr, len(losses)))
    suggestions, reason = suggest(lrs, losses)
    settings = {"start_lr": start_lr, "end_lr": end_lr, "num_iter": len(losses), "step_mode": "exp"}
    result = LRFinderResult(lrs, list(losses), suggestions, settings, lrs, list(losses), reason, False, 1.5)
    result.warnings = analyse(result)
    return result


# ------------------------------------------------------------------------------------------ the report
def test_write_report_json_and_log(tmp_path):
    x = np.linspace(-1, 1, 60)
    result = curve_result(2.3 - 1.5 * np.exp(-8 * (x - 0.3) ** 2) + 0.8 * np.clip(x - 0.5, 0, None))
    command = "python main.py --data_dir imagenet --find_lr --lr_iter 60"
    paths = write_report(result, tmp_path, "imagefolder imagenet", 32, command, config={"model": "ResNet-50"})
    assert {p.name for p in tmp_path.iterdir()} == {"lr_finder_plot.png", "lr_finder_log.txt", "suggested_lr.json"}
    assert paths["plot"].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    summary = json.loads(paths["json"].read_text())
    assert JSON_KEYS <= set(summary)
    assert summary["suggested_lr"] == result.suggestions["min_loss"]
    assert set(summary["suggestions"]) == {"steepest", "valley", "min_loss", "minimum"}
    assert (summary["batch_size"], summary["num_iter"], summary["start_lr"], summary["end_lr"]) == (32, 60, 1e-5, 10.0)
    assert (summary["plot_file"], summary["log_file"]) == ("lr_finder_plot.png", "lr_finder_log.txt")
    assert summary["dataset"] == "imagefolder imagenet"
    log = paths["log"].read_text()
    for heading in ("Configuration", "Command", "Results", "Analysis", "Next steps"):
        assert f"\n{heading}\n" in log
    assert command in log and "model: ResNet-50" in log and "batch_size: 32" in log
    assert f"--max_lr {result.suggestions['min_loss']:.3g}" in log


def test_report_warns_about_edges_and_a_loss_that_never_fell(tmp_path):
    falling = curve_result(np.linspace(2.3, 0.5, 40))  # still falling at end_lr: min_loss at the high edge
    write_report(falling, tmp_path / "falling", "data", 16, "call", plot_file=tmp_path / "elsewhere.png")
    log = " ".join((tmp_path / "falling" / "lr_finder_log.txt").read_text().split())  # lines wrap between words
    assert "WARNING: the min_loss suggestion" in log and "high edge" in log and "still falling" in log
    assert json.loads((tmp_path / "falling" / "suggested_lr.json").read_text())["plot_file"] == "../elsewhere.png"
    assert (tmp_path / "elsewhere.png").is_file()

    flat = curve_result(np.linspace(2.3, 2.9, 40))  # the loss never fell
    write_report(flat, tmp_path / "flat", "data", 16, "call")
    summary = json.loads((tmp_path / "flat" / "suggested_lr.json").read_text())
    assert summary["suggested_lr"] is None and summary["suggestions"] == {}
    assert "never fell" in summary["reason"]
    log = " ".join((tmp_path / "flat" / "lr_finder_log.txt").read_text().split())
    assert "WARNING: no suggestion: the loss never fell" in log and "run the range test again" in log


# ------------------------------------------------------------------------------------------ exact resume
def cifar_run(epochs, seed):
    """A small BatchNorm CNN, SGD + OneCycleLR (cycling momentum) and device-resident loaders that crop,
    flip and cut out with their own generator, on generated data."""
    seed_everything(seed)
    train_loader, test_loader = synthetic_loaders(n_train=128, n_test=64, batch_size=32, augment=True)
    model = Precision.resolve("cpu").prepare(tiny_cnn())
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9, nesterov=True, weight_decay=5e-4)
    scheduler = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=0.05, epochs=epochs,
                                                    steps_per_epoch=len(train_loader), pct_start=0.4)
    return model, optimizer, scheduler, train_loader, test_loader


def test_resume_continues_the_same_schedule_and_weights(tmp_path):
    quiet = {"progress": False, "log": lambda *_: None}
    model, optimizer, scheduler, train_loader, test_loader = cifar_run(epochs=3, seed=0)
    straight = fit(model, "cpu", train_loader, test_loader, optimizer, torch.nn.CrossEntropyLoss(), 3, scheduler,
                   precision="fp32", checkpoint_dir=tmp_path / "straight", save_every=1, **quiet)

    model2, optimizer2, scheduler2, train_loader2, test_loader2 = cifar_run(epochs=3, seed=123)  # other init
    resumed = fit(model2, "cpu", train_loader2, test_loader2, optimizer2, torch.nn.CrossEntropyLoss(), 3, scheduler2,
                  precision="fp32", checkpoint_dir=tmp_path / "resumed", resume=tmp_path / "straight" / "epoch_1.pt",
                  **quiet)
    assert len(straight["lr"]) == 3 * len(train_loader)
    assert resumed["lr"] == straight["lr"] and resumed["momentum"] == straight["momentum"]
    assert resumed["train_loss"] == straight["train_loss"] and resumed["test_acc"] == straight["test_acc"]
    for name, tensor in model.state_dict().items():
        assert torch.equal(tensor, model2.state_dict()[name]), name
    assert scheduler2.last_epoch == scheduler.last_epoch == 3 * len(train_loader)


def test_fit_records_momentum_per_step_and_steps_epoch_schedulers_per_epoch():
    x, y = torch.randn(32, 3, 4, 4), torch.randint(0, 3, (32,))
    loader = [(x[i:i + 8], y[i:i + 8]) for i in range(0, 32, 8)]
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(48, 3))
    plain = Precision.resolve("cpu", "fp32", channels_last=False)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    one_cycle = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=0.1, epochs=2, steps_per_epoch=4)
    history = fit(model, "cpu", loader, loader, optimizer, torch.nn.CrossEntropyLoss(), 2, one_cycle,
                  precision=plain, log=lambda *_: None)
    probe = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=0.1, momentum=0.9)
    schedule = torch.optim.lr_scheduler.OneCycleLR(probe, max_lr=0.1, epochs=2, steps_per_epoch=4)
    expected = []
    for _ in range(8):
        expected.append(probe.param_groups[0]["momentum"])
        probe.step()
        schedule.step()
    assert history["momentum"] == expected  # the momentum OneCycleLR set at every step, not once an epoch

    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    step = torch.optim.lr_scheduler.StepLR(optimizer, step_size=1, gamma=0.1)
    history = fit(model, "cpu", loader, loader, optimizer, torch.nn.CrossEntropyLoss(), 2, step,
                  precision=plain, log=lambda *_: None)
    assert history["lr"] == pytest.approx([0.1] * 4 + [0.01] * 4)


# ------------------------------------------------------------------------------------- the command line
def test_help_explains_the_options():
    result = run_main("--help")
    assert result.returncode == 0
    for option in ("--find_lr", "--lr_diverge_th", "--max_lr", "--scheduler", "--resume", "--overwrite",
                   "--pretrained", "torchrun"):
        assert option in result.stdout


@pytest.mark.parametrize("args, named", [
    (["--find_lr", "--lr_start", "0.5", "--lr_end", "0.01"], "--lr_start 0.5 must be below --lr_end 0.01"),
    (["--epochs", "-3", "--max_lr", "0.1"], "-3"),
    (["--epochs", "0", "--max_lr", "0.1"], "must be > 0, got 0"),
    (["--data_dir", "/no/such/folder", "--find_lr"], "/no/such/folder"),
    (["--scheduler", "linear", "--max_lr", "0.1"], "'linear'"),
    (["--pct_start", "1.5", "--max_lr", "0.1"], "1.5"),
    (["--max_lr", "0.1", "--resume", "/no/such/last.pt"], "/no/such/last.pt"),
    (["--max_lr", "0.1", "--torchvision_init"], "--torchvision_init applies to --model resnet50"),
    (["--max_lr", "0.1", "--color_jitter", "1.5"], "--color_jitter must be in [0, 1], got 1.5"),
    (["--max_lr", "0.1", "--min_scale", "1.5"], "--min_scale must be in [0, 1], got 1.5"),
    (["--max_lr", "0.1", "--start_size", "8"], "--start_size must be 0 (off) or in [16, image_size 32], got 8"),
    (["--max_lr", "0.1", "--start_size", "48"], "--start_size must be 0 (off) or in [16, image_size 32], got 48"),
    (["--max_lr", "0.1", "--start_size", "32"], "--start_size (progressive resizing) applies to image folders"),
    (["--max_lr", "0.1", "--loader", "batched", "--rotate_degrees", "15"], "--loader batched has no rotation"),
    (["--max_lr", "0.1", "--loader", "batched", "--cutout_holes", "2"], "not --cutout_holes 2"),
    (["--max_lr", "0.1", "--loader", "batched", "--use_albumentation"], "contradict each other"),
    (["--find_lr", "--epochs", "3", "--batch_size", "32", "--lr_accumulation_steps", "4"],
     "--lr_accumulation_steps 4 makes the range test find the max LR for batches of 128 images, but training "
     "steps every --batch_size 32 images"),
])
def test_bad_arguments_exit_with_code_2(tmp_path, args, named, main_here):
    result = main_here(*args, "--output_dir", tmp_path / "out")
    assert result.returncode == 2
    assert named in result.stderr


def test_previous_run_needs_resume_or_overwrite_and_output_dir_must_be_writable(tmp_path, main_here):
    (tmp_path / "suggested_lr.json").write_text("{}")
    result = main_here("--find_lr", "--output_dir", tmp_path)
    assert result.returncode == 2 and f"{tmp_path} holds a previous range test" in result.stderr
    assert "--overwrite" in result.stderr
    (tmp_path / "last.pt").write_text("")
    result = main_here("--max_lr", "0.1", "--output_dir", tmp_path)
    assert result.returncode == 2 and f"--output_dir {tmp_path} holds a previous run (last.pt)" in result.stderr
    (tmp_path / "a_file").write_text("")
    result = main_here("--find_lr", "--output_dir", tmp_path / "a_file" / "out")
    assert result.returncode == 2 and "cannot be written" in result.stderr


def test_find_lr_on_an_image_folder_writes_the_report(tiny_folder, tmp_path, main_here):
    out = tmp_path / "lr"
    # the DataLoader path (the batched one has its own tests): on 64 images, 12 steps of 8 fall on this seed
    result = main_here("--data_dir", tiny_folder, "--find_lr", "--lr_iter", 12, "--batch_size", 8, "--image_size", 32,
                       "--workers", 0, "--output_dir", out, "--loader", "albumentations")
    assert result.returncode == 0, result.stderr[-2000:]
    assert {p.name for p in out.iterdir()} == {"lr_finder_plot.png", "lr_finder_log.txt", "suggested_lr.json"}
    summary = json.loads((out / "suggested_lr.json").read_text())
    assert JSON_KEYS <= set(summary)
    assert summary["batch_size"] == 8 and summary["num_iter"] == 12 and "4 classes" in summary["dataset"]
    assert set(summary["suggestions"]) == {"steepest", "valley", "min_loss", "minimum"}
    assert "main.py --data_dir" in (out / "lr_finder_log.txt").read_text()
    assert "ResNet-50 v1.5, zero-init residuals" in (out / "lr_finder_log.txt").read_text()


def test_torchrun_two_processes_train_and_write_one_set_of_files(tiny_cifar, tmp_path):
    out = tmp_path / "ddp"
    result = run_main("--dataset", "cifar10", "--data_dir", tiny_cifar, "--epochs", 1, "--batch_size", 32,
                      "--max_lr", 0.05, "--workers", 0, "--output_dir", out, "--no_cuda",  # gloo, on any host
                      launcher=("-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2"))
    assert result.returncode == 0, result.stderr[-3000:]
    assert ", x 2, " in result.stdout and result.stdout.count("epoch  1/1") == 1
    # each process trained on its own half of every batch: only DDP's gradient averaging keeps them equal
    assert "weights and buffers identical in all 2 processes" in result.stdout
    assert {p.name for p in out.iterdir()} == {"last.pt", "best.pt", "history.json", "curves.png"}
    state = load_checkpoint(out / "last.pt")
    assert state["steps_per_epoch"] == 2  # 64 images in global batches of 32: 32 images, 16 a step, per process
    assert not any(key.startswith("module.") for key in state["model"])
    assert len(json.loads((out / "history.json").read_text())["lr"]) == 2


# ----------------------------------------------------------------------------------- ImageFolder helpers
def test_image_folder_datasets_balanced_subset_and_transforms(tiny_folder):
    train_set, val_set, classes = dataset.image_folder_datasets(tiny_folder, image_size=32, max_samples=16)
    assert classes == ["warm_disc", "warm_h-bar", "warm_ring", "warm_square"]
    assert np.bincount(train_set.source.labels).tolist() == np.bincount(val_set.source.labels).tolist() == [4] * 4
    image, label = train_set[0]
    assert image.shape == (3, 32, 32) and image.dtype == torch.float32 and 0 <= label < 4
    assert val_set[0][0].shape == (3, 32, 32)


def test_loader_workers_augment_differently(tiny_folder):
    train_set, _, _ = dataset.image_folder_datasets(tiny_folder, image_size=32, max_samples=4)
    constant = dataset.AlbumentationsDataset(
        dataset.ImageArrays(np.stack([train_set.source[0][0]] * 8), np.zeros(8, dtype=np.int64)), train_set.transform)
    batches = [x for x, _ in dataset.make_loader(constant, 1, train=False, workers=2, persistent=False)]
    assert not torch.equal(batches[0], batches[1])  # each image its own seed, whichever worker loads it


@pytest.mark.skipif(not IMAGENET_DIR, reason="set IMAGENET_DIR to an ImageNet-style folder (train/ and val/)")
def test_real_image_folder():
    train_set, val_set, classes = dataset.image_folder_datasets(IMAGENET_DIR, image_size=64, max_samples=10 * 4)
    per_class = max(1, 40 // len(classes))
    assert len(train_set) == len(val_set) == per_class * len(classes)  # every class has a few images
    assert train_set[0][0].shape == val_set[0][0].shape == (3, 64, 64)


def test_auto_loader_is_the_batched_one_for_cifar_on_one_gpu():
    from dataclasses import replace

    from recipes import S10
    from training_run import RunSettings, choose_loader

    cuda, cpu = torch.device("cuda"), torch.device("cpu")
    plain = RunSettings(recipe=replace(S10, cutout_holes=1), loader="auto", dataset="cifar10")
    assert choose_loader(plain, cuda, 1) == "batched"
    assert choose_loader(plain, cpu, 1) == "albumentations"  # on a CPU both share the cores
    assert choose_loader(plain, cuda, 2) == "albumentations"  # torchrun: the sampler shards
    for change in ({"rotate_degrees": 15}, {"cutout_holes": 2}):
        assert choose_loader(replace(plain, recipe=replace(plain.recipe, **change)), cuda, 1) == "albumentations", change
    # image folders: batched wherever it can crop and flip (decoding each JPEG every epoch costs as much as a step)
    assert choose_loader(replace(plain, dataset="imagefolder", recipe=replace(plain.recipe, cutout_holes=0)), cpu, 1) \
        == "batched"
    assert choose_loader(replace(plain, dataset="imagefolder"), cuda, 1) == "albumentations"  # cutout: no
    assert choose_loader(replace(plain, loader="batched"), cpu, 1) == "batched"
