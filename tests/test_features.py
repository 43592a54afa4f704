"""The command line's and the range test's features: augmentation options, the four suggestions and
their plot, gradient accumulation, untouched RNGs, bad images that do not stop a run, SIGTERM."""
import json
import os
import random
import shutil
import signal
import struct
import subprocess
import sys
import time
import zlib

import numpy as np
import pytest
import torch
from torch import nn

import dataset
import visualize
from checkpoints import load_checkpoint
from lr_finder import find_lr, suggest
from tests.helpers import sgd, synthetic_loaders, tiny_cnn
from tests.test_main import ROOT, curve_result, run_main, tiny_cifar, tiny_folder  # noqa: F401  (fixtures)


# --------------------------------------------------------------------------------------- augmentation
def bar_angle(image):
    """Angle (degrees) of the principal axis of the bright pixels of a uint8 image."""
    ys, xs = np.nonzero(image[..., 0] > 128)
    coords = np.stack([xs - xs.mean(), ys - ys.mean()])
    eigenvalues, eigenvectors = np.linalg.eigh(coords @ coords.T)
    x, y = eigenvectors[:, np.argmax(eigenvalues)]
    angle = np.degrees(np.arctan2(y, x))
    return (angle + 90) % 180 - 90


def test_rotation_turns_images_by_at_most_the_angle():
    import albumentations as A
    image = np.zeros((64, 64, 3), np.uint8)
    image[31:33, 8:56] = 255  # a horizontal bar through the centre
    rotate = A.Compose(dataset.cifar_augmentations((0, 0, 0), crop_padding=0, flip=False, cutout_holes=0,
                                                   rotate_degrees=10), seed=0)
    angles = [abs(bar_angle(rotate(image=image)["image"])) for _ in range(60)]
    assert max(angles) <= 10.5 and max(angles) > 6 and np.mean(angles) > 2


@pytest.mark.parametrize("holes, length", [(1, 8), (3, 5)])
def test_cutout_cuts_the_asked_number_of_holes_of_the_asked_size(holes, length):
    import albumentations as A
    image = np.full((32, 32, 3), 255, np.uint8)
    mean = (0.0, 0.0, 0.0)  # holes are black on white
    cifar = A.Compose(dataset.cifar_augmentations(mean, cutout_length=length, cutout_holes=holes, crop_padding=0,
                                                  flip=False), seed=0)
    folder = A.Compose(dataset.imagenet_augmentations(32, mean, cutout_holes=holes, cutout_length=length,
                                                      color_jitter=0), seed=0)
    for transform in (cifar, folder):
        areas = [int((transform(image=image)["image"][..., 0] == 0).sum()) for _ in range(40)]
        assert min(areas) >= length * length and max(areas) == holes * length * length


# -------------------------------------------------------------------------------------- the range test
def test_four_suggestions_on_a_known_curve_and_steepest_stays_before_the_minimum():
    lrs = list(np.geomspace(1e-4, 10, 100))
    # falls gently to a minimum at index 60, rises, then falls steeply again (a wrecked net's drift)
    losses = np.r_[np.linspace(2.3, 1.0, 61), np.linspace(1.05, 1.9, 25), np.linspace(1.9, 1.2, 14)]
    suggestions, _ = suggest(lrs, list(losses))
    assert suggestions["min_loss"] == lrs[60] and suggestions["minimum"] == pytest.approx(lrs[60] / 10)
    assert suggestions["steepest"] <= lrs[60]  # the steep fall after the minimum is ignored
    assert lrs[0] < suggestions["valley"] < lrs[60]


def test_short_tests_and_zero_losses_get_the_right_reason():
    lrs = list(np.geomspace(1e-3, 1, 4))
    assert "only 4 point(s)" in suggest(lrs, [2.0, 1.9, 1.8, 1.7])[1]
    lrs = list(np.geomspace(1e-3, 1, 20))
    suggestions, reason = suggest(lrs, list(np.linspace(0.5, -1.0, 20)))  # a custom criterion below zero
    assert reason == "" and suggestions["min_loss"] == lrs[-1]


def test_the_plot_draws_the_raw_loss_clips_the_blow_up_and_marks_the_chosen_lr():
    x = np.linspace(0, 1, 80)
    losses = list(np.r_[2.3 - 1.2 * x[:60], np.linspace(1.1, 8.0, 20)])  # a blow-up to 8
    result = curve_result(losses)
    result.settings.update(smooth_f=0.05, skip_start=0)
    figure = visualize.plot_lr_finder(result, chosen_lr=result.suggestions["min_loss"])
    ax = figure.axes[0]
    labels = [line.get_label() for line in ax.get_lines()]
    assert "loss (raw)" in labels and "loss (smoothed)" in labels
    assert any(label.startswith("chosen max LR") for label in labels)
    bottom, top = ax.get_ylim()
    assert top < 3.0 and bottom < min(losses)  # the part where the suggestions are fills the plot
    raw = visualize.raw_losses([2.0, 1.9, 1.81], 0.5)  # s1 = 0.5 raw1 + 0.5 s0
    assert raw[1] == pytest.approx(1.8) and raw[2] == pytest.approx(1.72)


class Counting:
    """An iterable of batches that counts how many were drawn and, as a loader that augments with the global
    generators would, draws from torch's, NumPy's and Python's for every batch (a tiny jitter of the inputs)."""

    def __init__(self, loader):
        self.loader, self.drawn = loader, 0

    def __len__(self):
        return len(self.loader)

    def __iter__(self):
        for inputs, labels in self.loader:
            self.drawn += 1
            jitter = 1e-3 * (torch.rand(()).item() + np.random.rand() + random.random())
            yield inputs + jitter, labels


def test_accumulation_steps_reach_the_library_and_every_rng_is_left_alone():
    train_loader, val_loader = synthetic_loaders(n_train=256, n_test=64, batch_size=32)
    counting = Counting(train_loader)
    model = torch.nn.Sequential(tiny_cnn(), torch.nn.Dropout(0.2))  # the model draws from torch's generator too
    optimizer = sgd(model)
    torch.manual_seed(3), np.random.seed(3), random.seed(3)
    states = torch.get_rng_state(), np.random.get_state()[1].copy(), random.getstate()
    result = find_lr(model, optimizer, nn.CrossEntropyLoss(), counting, start_lr=1e-4, end_lr=1e-2, num_iter=6,
                     accumulation_steps=3, val_loader=val_loader, progress=False)
    assert len(result.all_lrs) == 6 and counting.drawn == 6 * 3 and result.settings["accumulation_steps"] == 3
    assert torch.equal(torch.get_rng_state(), states[0])
    assert np.array_equal(np.random.get_state()[1], states[1]) and random.getstate() == states[2]


def test_an_optimizer_with_a_scheduler_gets_a_message_saying_what_to_do():
    train_loader, _ = synthetic_loaders(n_train=64)
    model = tiny_cnn()
    optimizer = sgd(model)
    torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=0.1, total_steps=10)
    with pytest.raises(ValueError, match="already has a learning-rate scheduler attached.*build the scheduler"):
        find_lr(model, optimizer, nn.CrossEntropyLoss(), train_loader, num_iter=5)


# ------------------------------------------------------------------------------------------ bad images
def png_header(width, height):
    """A PNG that claims width x height pixels (a decompression bomb to PIL): header only."""
    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(b"")) + chunk(b"IEND", b""))


@pytest.fixture
def folder_with_bad_images(tiny_folder, tmp_path):  # noqa: F811
    root = tmp_path / "data"
    shutil.copytree(tiny_folder, root)
    first = sorted((root / "train").iterdir())[0]
    good = sorted(first.iterdir())[0]
    (first / "truncated.JPEG").write_bytes(good.read_bytes()[:300])
    (first / "notes.JPEG").write_text("not an image")
    (first / "huge.png").write_bytes(png_header(20000, 20000))
    return root


def test_unreadable_images_are_skipped_with_warnings_and_the_run_ends(folder_with_bad_images, tmp_path):
    # a process of its own: the DataLoader workers' warnings are to reach its stderr, as a user sees them
    result = run_main("--data_dir", folder_with_bad_images, "--epochs", 2, "--batch_size", 16, "--image_size", 32,
                      "--workers", 2, "--output_dir", tmp_path / "out", timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    for name in ("truncated.JPEG", "notes.JPEG", "huge.png"):
        assert f"skipped: cannot decode image" in result.stderr and name in result.stderr, name
    assert "epoch  2/2" in result.stdout and "skipped" in result.stdout.split("epoch  1/2")[1].splitlines()[0]
    assert load_checkpoint(tmp_path / "out" / "last.pt")["epoch"] == 2


def test_strict_images_stops_with_one_line(folder_with_bad_images, tmp_path, main_here):
    result = main_here("--data_dir", folder_with_bad_images, "--epochs", 1, "--batch_size", 16, "--image_size", 32,
                       "--workers", 2, "--strict_images", "--output_dir", tmp_path / "out")
    assert result.returncode == 1
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("main.py: error: cannot decode image") and "--strict_images" in last
    assert "Traceback" not in result.stderr


def test_a_wrong_folder_stops_after_many_failures_in_a_row(tmp_path, main_here):
    root = tmp_path / "data"
    for split in ("train", "val"):
        (root / split / "a").mkdir(parents=True)
        for index in range(30):
            (root / split / "a" / f"{index}.JPEG").write_text("text")
    with pytest.warns(UserWarning, match="skipped: cannot decode image"):  # each file, before the run stops
        result = main_here("--data_dir", root, "--epochs", 1, "--batch_size", 8, "--image_size", 32, "--workers", 0,
                           "--output_dir", tmp_path / "out")
    assert result.returncode == 1 and "20 files in a row could not be decoded" in result.stderr


# -------------------------------------------------------------------------------------------- SIGTERM
def test_sigterm_keeps_the_last_finished_epoch_and_prints_the_resume_command(tiny_cifar, tmp_path):  # noqa: F811
    out = tmp_path / "run"
    command = [sys.executable, "main.py", "--dataset", "cifar10", "--data_dir", str(tiny_cifar), "--epochs", "20",
               "--batch_size", "32", "--workers", "0", "--output_dir", str(out)]
    process = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                               env={**os.environ, "OMP_NUM_THREADS": "1"})
    deadline = time.time() + 300
    while not (out / "last.pt").exists() and time.time() < deadline and process.poll() is None:
        time.sleep(0.5)
    process.send_signal(signal.SIGTERM)
    stdout, stderr = process.communicate(timeout=120)
    assert process.returncode == 1, stderr[-2000:]
    done = load_checkpoint(out / "last.pt")["epoch"]
    assert done >= 1 and f"holds epoch {done}" in stdout
    assert f"Continue with: python main.py --dataset cifar10 --data_dir {tiny_cifar}" in stderr
    assert stderr.strip().endswith("--resume")
    history = json.loads(json.dumps(load_checkpoint(out / "last.pt")["history"]))
    assert len(history["test_acc"]) == done


def test_the_resume_command_replaces_find_lr_and_overwrite():
    from argparse import Namespace
    from pathlib import Path

    from main import resume_command
    args = Namespace(find_lr=True, report_dir=Path("runs/c100"))
    command = resume_command(["--dataset", "CIFAR100", "--find_lr", "--epochs", "30", "--overwrite", "--resume",
                              "old/last.pt", "--seed", "2"], args)
    assert command == ("python main.py --dataset CIFAR100 --epochs 30 --seed 2 --max_lr runs/c100/suggested_lr.json "
                       "--resume")


def test_under_torchrun_the_resume_command_is_the_torchrun_command(monkeypatch):
    from argparse import Namespace

    from main import resume_command
    monkeypatch.setenv("WORLD_SIZE", "8")
    monkeypatch.setenv("LOCAL_WORLD_SIZE", "4")  # two machines of four GPUs
    command = resume_command(["--data_dir", "/data/imagenet", "--epochs", "16"], Namespace(find_lr=False))
    assert command == "torchrun --nproc_per_node=4 main.py --data_dir /data/imagenet --epochs 16 --resume"


@pytest.mark.parametrize("rank", [0, 1])
def test_under_torchrun_only_rank_0_prints_the_resume_command(tmp_path, monkeypatch, rank):
    import main
    import training_run
    (tmp_path / "last.pt").write_bytes(b"a checkpoint")

    def interrupted(*_):
        raise KeyboardInterrupt

    monkeypatch.setattr(training_run, "_run", interrupted)
    for name, value in (("WORLD_SIZE", 2), ("LOCAL_WORLD_SIZE", 2), ("RANK", rank)):
        monkeypatch.setenv(name, str(value))
    with pytest.raises(SystemExit) as stopped:
        main.main(["--dataset", "cifar10", "--epochs", "3", "--batch_size", "64", "--output_dir", str(tmp_path),
                   "--resume"])
    if rank == 0:
        assert stopped.value.code == ("main.py: stopped. Continue with: torchrun --nproc_per_node=2 main.py --dataset "
                                      f"cifar10 --epochs 3 --batch_size 64 --output_dir {tmp_path} --resume")
    else:
        assert stopped.value.code == 1  # no message: rank 0 prints it, once


def test_overwrite_removes_the_previous_runs_files_and_nothing_else(tiny_cifar, tmp_path, monkeypatch):  # noqa: F811
    """Interrupted in its first epoch, a run that replaced another has nothing to resume: the old run's
    checkpoints, history and curves went when it started (an old last.pt would be offered for resuming)."""
    import main
    import training_utils
    old_run = ["last.pt", "best.pt", "epoch_5.pt", "epoch_10.pt", "history.json", "curves.png"]
    kept = ["notes.txt", "epoch_best.pt", "suggested_lr.json"]
    for name in old_run + kept:
        (tmp_path / name).write_text("the old run's")

    def interrupted(*_, **__):
        raise KeyboardInterrupt

    monkeypatch.setattr(training_utils, "test", interrupted)  # Ctrl-C in the first evaluation
    with pytest.raises(SystemExit) as stopped:
        main.main(["--dataset", "cifar10", "--data_dir", str(tiny_cifar), "--epochs", "2", "--batch_size", "32",
                   "--workers", "0", "--overwrite", "--output_dir", str(tmp_path)])
    assert stopped.value.code == "main.py: stopped before the first epoch finished: there is nothing to resume"
    assert sorted(path.name for path in tmp_path.iterdir()) == sorted(kept)


def test_pretrained_weights_that_cannot_be_downloaded_end_in_one_line(tiny_folder, tmp_path, monkeypatch,  # noqa: F811
                                                                       main_here):
    """Offline (here: through a proxy nothing listens on), with an empty torch hub cache, --pretrained ends
    with one line that says what to do, not a traceback from urllib in every process."""
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch_home"))
    for name in ("https_proxy", "HTTPS_PROXY", "http_proxy", "HTTP_PROXY"):
        monkeypatch.setenv(name, "http://127.0.0.1:9")
    for name in ("no_proxy", "NO_PROXY"):
        monkeypatch.delenv(name, raising=False)
    import urllib.request
    monkeypatch.setattr(urllib.request, "_opener", None)  # in this process: an opener built earlier kept its proxies
    result = main_here("--data_dir", tiny_folder, "--pretrained", "--epochs", 1, "--batch_size", 16, "--workers", 0,
                       "--output_dir", tmp_path / "run")
    assert result.returncode == 1 and "Traceback" not in result.stderr, result.stderr[-2000:]
    last_line = result.stderr.strip().splitlines()[-1]
    assert last_line.startswith("main.py: error: could not download (or read) the pretrained ResNet-50 weights")
    assert f"{tmp_path / 'torch_home'}/hub/checkpoints/" in last_line and "without --pretrained" in last_line


# ------------------------------------------------------------------------- main.py's range-test options
def main_range_test(folder, data_dir, *options):
    """Run main.py's range test alone (in this process) on the tiny CIFAR folder; returns its JSON and the
    curve of its log as (lrs, smoothed losses) arrays."""
    from main import main

    main(["--dataset", "cifar10", "--data_dir", str(data_dir), "--find_lr", "--lr_iter", "8", "--batch_size", "16",
          "--lr_start", "1e-3", "--workers", "0", "--precision", "fp32", "--output_dir", str(folder), *options])
    log = (folder / "lr_finder_log.txt").read_text().split("Curve (lr, smoothed loss)\n")[1]
    curve = np.array([[float(value) for value in line.split()] for line in log.strip().splitlines()])
    return json.loads((folder / "suggested_lr.json").read_text()), curve[:, 0], curve[:, 1]


def test_main_range_test_options_reach_the_curve(tiny_cifar, tmp_path):  # noqa: F811
    """--lr_step_mode linear spaces the LRs evenly; --lr_smooth_f is the smoothing of the curve (0: the raw
    losses, which the same seed repeats); --lr_diverge_th stops the test at the first loss above that many
    times the lowest so far; --lr_accumulation_steps alone (no training) reports its effective batch. The
    linear runs train the small SpeedrunNet (twice as many steps, and the options, not the net, are checked);
    the blow-up needs S10's net, which diverges within 8 steps on the way to LR 10."""
    linear = ["--lr_step_mode", "linear", "--lr_end", "0.05", "--lr_diverge_th", "1e6", "--lr_accumulation_steps", "2",
              "--model", "speedrun"]
    report, lrs, raw = main_range_test(tmp_path / "raw", tiny_cifar, *linear, "--lr_smooth_f", "0")
    _, same_lrs, smoothed = main_range_test(tmp_path / "smoothed", tiny_cifar, *linear, "--lr_smooth_f", "0.5")
    assert report["batch_size"] == 32 and report["step_mode"] == "linear" and len(lrs) == len(raw) == 8
    np.testing.assert_allclose(np.diff(lrs), (0.05 - 1e-3) / 7, rtol=1e-3)  # evenly spaced
    assert np.array_equal(lrs, same_lrs) and np.ptp(raw) > 0.01
    expected = [raw[0]]
    for loss in raw[1:]:
        expected.append(0.5 * loss + 0.5 * expected[-1])
    np.testing.assert_allclose(smoothed, expected, atol=2e-5)

    report, lrs, losses = main_range_test(tmp_path / "diverged", tiny_cifar, "--lr_end", "10",
                                          "--lr_diverge_th", "1.05")
    stop = len(losses) - 1
    assert report["iterations_run"] == len(losses) < 8 and report["step_mode"] == "exp"
    assert losses[stop] > 1.05 * losses[:stop].min()
    assert all(losses[i] <= 1.05 * losses[:i + 1].min() for i in range(stop))  # not earlier


# ------------------------------------------------------------------------------ main.py's training options
def tiny_main_run(data_dir, folder, *options):
    """One epoch of main.py (in this process) on 40 of the tiny CIFAR folder's images: two steps of 16."""
    from main import main

    main(["--dataset", "cifar10", "--data_dir", str(data_dir), "--epochs", "1", "--batch_size", "16",
          "--max_samples", "40", "--workers", "0", "--precision", "fp32", "--no_plots", "--output_dir", str(folder),
          *options])
    return load_checkpoint(folder / "last.pt")


def test_main_grad_clip_bounds_the_gradient_of_every_step(tiny_cifar, tmp_path, monkeypatch):  # noqa: F811
    """--grad_clip 0.05: every optimizer step sees a gradient norm of at most 0.05, where the norms before
    clipping (what clip_grad_norm_ returns) are larger."""
    from torch.optim.optimizer import register_optimizer_step_pre_hook

    real_clip, before, stepped = torch.nn.utils.clip_grad_norm_, [], []

    def recording_clip(*args, **kwargs):
        before.append(float(real_clip(*args, **kwargs)))
        return torch.tensor(before[-1])

    def gradient_norm(optimizer, args, kwargs):
        grads = [p.grad.norm() for group in optimizer.param_groups for p in group["params"] if p.grad is not None]
        stepped.append(float(torch.stack(grads).norm()))

    monkeypatch.setattr(torch.nn.utils, "clip_grad_norm_", recording_clip)
    hook = register_optimizer_step_pre_hook(gradient_norm)
    try:
        tiny_main_run(tiny_cifar, tmp_path / "clipped", "--grad_clip", "0.05")
    finally:
        hook.remove()
    assert len(stepped) == len(before) == 2
    assert all(norm > 0.05 for norm in before) and all(norm <= 0.05 * (1 + 1e-4) for norm in stepped)


def test_main_compile_trains_the_compiled_model(tiny_cifar, tmp_path, monkeypatch):  # noqa: F811
    """--compile trains through torch.compile: its graph capture (TorchDynamo) and forward and backward graphs
    (AOTAutograd), here run by the "aot_eager" backend. Inductor's C++ code generation is left out: compiling
    this model's training and evaluation graphs with it took 40-45 s on a 2-core CPU (test_gpu_path compiles
    with inductor on CUDA). The checkpoint holds the plain model's weights, which match a plain run's."""
    import torch._dynamo

    import training_run

    real_compile, compiled = training_run.compile_model, []

    def compile_aot_eager(model, **options):
        compiled.append(model)
        return real_compile(model, backend="aot_eager", **options)

    monkeypatch.setattr(training_run, "compile_model", compile_aot_eager)
    graphs = torch._dynamo.utils.counters["stats"]["unique_graphs"]
    with_compile = tiny_main_run(tiny_cifar, tmp_path / "compiled", "--compile")["model"]
    assert len(compiled) == 1 and torch._dynamo.utils.counters["stats"]["unique_graphs"] >= graphs + 2  # train, eval
    plain = tiny_main_run(tiny_cifar, tmp_path / "plain")["model"]
    assert set(with_compile) == set(plain) and not any(key.startswith("_orig_mod.") for key in with_compile)
    for name, tensor in plain.items():
        torch.testing.assert_close(with_compile[name], tensor, rtol=1e-4, atol=1e-5, msg=name)
