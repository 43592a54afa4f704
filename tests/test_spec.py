"""The calls, commands and files of the four specification documents (../shared/spec/), run as written
with small data: the list a user copying them would try."""
import json

import albumentations as A
import numpy as np
import pytest
import torch
import torchvision.transforms as transforms
from PIL import Image
from albumentations.pytorch import ToTensorV2
from torch import nn, optim

import dataset
from tests.helpers import run_script_here, synthetic_loaders, tiny_cnn, write_cifar_npz
from tests.test_main import ROOT, tiny_cifar, tiny_folder  # noqa: F401  (fixtures)

DEVICE = "cpu"


@pytest.fixture(scope="module")
def cifar_folder(tmp_path_factory):
    """A CIFAR-10 .npz folder of 256 + 128 generated images (what TransformedDataset('./data') reads)."""
    return write_cifar_npz(tmp_path_factory.mktemp("cifar"), 256, 128)


# ------------------------------------------------------------------------ 000: the ResNet-50 module
def test_lr_finder_class_as_documented(tmp_path):
    from lr_finder import LRFinder
    train_loader, _ = synthetic_loaders(n_train=256, batch_size=32)
    model = tiny_cnn()
    optimizer = optim.SGD(model.parameters(), lr=1e-7, momentum=0.9)
    criterion = nn.CrossEntropyLoss()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    lr_finder = LRFinder(model, optimizer, criterion, DEVICE)
    lrs, losses = lr_finder.range_test(train_loader, start_lr=1e-7, end_lr=10, num_iter=30, step_mode="exp",
                                       smooth_f=0.05, diverge_th=5.0)
    assert len(lrs) == len(losses) > 10 and lrs[0] == pytest.approx(1e-7) and np.isfinite(losses[0])
    index = lr_finder.plot(skip_start=10, skip_end=5, log_lr=True, title="Learning Rate Finder",
                           save_path=tmp_path / "lr.png")
    assert 10 <= index < len(lrs) - 5 and lr_finder.figure.axes[0].get_title() == "Learning Rate Finder"
    assert index == 10 + int(np.gradient(np.asarray(losses[10:len(lrs) - 5])).argmin())
    assert (tmp_path / "lr.png").read_bytes()[:4] == b"\x89PNG"
    lr_finder.reset()
    assert all(torch.equal(v, before[k]) for k, v in model.state_dict().items())


def test_train_with_one_cycle_and_plot_training_history_as_documented():
    from lr_finder import plot_training_history, train_with_one_cycle
    torch.manual_seed(0)
    train_loader, val_loader = synthetic_loaders(n_train=512, batch_size=32)
    model = tiny_cnn()
    optimizer = optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    history = train_with_one_cycle(model=model, train_loader=train_loader, val_loader=val_loader,
                                   optimizer=optimizer, criterion=nn.CrossEntropyLoss(), max_lr=0.05, num_epochs=2,
                                   device=DEVICE)
    assert len(history["test_acc"]) == 2 and history["train_loss"][1] < history["train_loss"][0]
    assert max(history["lr"]) == pytest.approx(0.05, rel=0.01) and min(history["momentum"]) == pytest.approx(0.85, abs=0.001)
    assert plot_training_history(history).axes


@pytest.mark.parametrize("command", [
    "--dataset CIFAR100 --num_classes 100 --epochs 2",
    "--dataset custom --data_dir {folder} --num_classes 4 --batch_size 16 --find_lr --epochs 2",
    "--dataset ImageNet --data_dir {folder} --num_classes 4 --batch_size 16 --cutout --cutout_holes 1 "
    "--cutout_length 16 --rotate_degrees 10 --use_albumentation --find_lr --epochs 2",
])
def test_resnet50_module_commands(command, tiny_folder, tmp_path, capfd, monkeypatch):  # noqa: F811
    cifar100 = tmp_path / "cifar100"
    cifar100.mkdir()
    rng = np.random.default_rng(0)
    for name, count in (("train", 64), ("test", 32)):
        np.savez(cifar100 / f"{name}.npz", images=rng.integers(0, 256, (count, 32, 32, 3), dtype=np.uint8),
                 labels=np.arange(count) % 100)
    argv = command.format(folder=tiny_folder).split()
    small = ["--image_size", "32", "--lr_iter", "8", "--workers", "0", "--output_dir", str(tmp_path / "out")]
    if "CIFAR100" in argv:
        small += ["--data_dir", str(cifar100), "--batch_size", "32"]
    elif "--use_albumentation" not in argv:  # 8 range-test steps on 64 generated images fall only by chance;
        small += ["--loader", "albumentations"]  # these do on the DataLoader path (the batched one: test_image_cache)
    # the script run as a user types the command (its __main__ lines included), in this process
    result = run_script_here(capfd, monkeypatch, ROOT / "train_resnet50_one_cycle.py", *argv, *small)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "ResNet-50 v1.5" in result.stdout and "epoch  2/2" in result.stdout
    if "--find_lr" in argv:
        assert "training at the range test's suggested max LR" in result.stdout
        suggested = json.loads((tmp_path / "out" / "suggested_lr.json").read_text())["suggested_lr"]
        history = json.loads((tmp_path / "out" / "history.json").read_text())
        assert suggested * 0.9 <= max(history["lr"]) <= suggested * (1 + 1e-9)  # trained at the range test's LR
    if "--cutout" in argv:
        assert "cutout_holes=1, cutout_length=16, rotate_degrees=10" in result.stdout


def test_num_classes_must_match_the_data(tiny_folder, tmp_path, main_here):  # noqa: F811
    result = main_here("--data_dir", tiny_folder, "--num_classes", 10, "--epochs", 1, "--image_size", 32,
                       "--workers", 0, "--output_dir", tmp_path)
    assert result.returncode == 1 and "--num_classes 10 does not match the data" in result.stderr
    assert "holds 4 classes" in result.stderr


# ------------------------------------------------------------------------- 001: the ImageNet LR finder
def test_lr_finder_workflow_range_test_then_training(tiny_folder, tmp_path, main_here):  # noqa: F811
    results = tmp_path / "custom_results"
    found = main_here("--batch_size", 16, "--find_lr", "--lr_start", "1e-07", "--lr_end", 10, "--lr_iter", 20,
                      "--lr_plot", results / "my_lr_finder.png", "--data_dir", tiny_folder, "--epochs", 1, "--no_plots",
                      "--image_size", 32, "--num_workers", 0, "--output_dir", tmp_path / "outputs",
                      "--loader", "albumentations")  # a DataLoader run (--num_workers); its steps fall on this seed
    assert found.returncode == 0, found.stderr[-2000:]
    assert {p.name for p in results.iterdir()} == {"my_lr_finder.png", "lr_finder_log.txt", "suggested_lr.json"}
    report = json.loads((results / "suggested_lr.json").read_text())
    assert report["batch_size"] == 16 and report["plot_file"] == "my_lr_finder.png"
    assert "epoch  1/" not in found.stdout  # --epochs 1 with --find_lr: the range test only
    trained = main_here("--batch_size", 16, "--lr", results / "suggested_lr.json", "--epochs", 2, "--scheduler",
                        "cosine", "--data_dir", tiny_folder, "--image_size", 32, "--num_workers", 0,
                        "--output_dir", results)  # the folder holds only the range test: training may use it
    assert trained.returncode == 0, trained.stderr[-2000:]
    assert f"max LR {report['suggested_lr']:g}, 2 epochs, scheduler cosine" in trained.stdout
    other_batch = main_here("--batch_size", 8, "--lr", results / "suggested_lr.json", "--data_dir", tiny_folder,
                            "--output_dir", tmp_path / "x")
    assert other_batch.returncode == 2 and "ran at batch size 16, this run at 8" in other_batch.stderr


def test_run_lr_finder_script_and_documented_flags(tiny_folder, tmp_path, capfd, monkeypatch):  # noqa: F811
    result = run_script_here(capfd, monkeypatch, ROOT / "run_lr_finder.py", "--data_dir", tiny_folder, "--batch_size",
                             8, "--lr_start", "1e-07", "--lr_end", 10, "--lr_iter", "epoch", "--lr_advanced",
                             "--max_samples", 48, "--image_size", 32, "--num_workers", 0, "--output_dir", tmp_path,
                             "--loader", "albumentations")  # as above
    assert result.returncode == 0, result.stderr[-2000:]
    report = json.loads((tmp_path / "suggested_lr.json").read_text())
    assert report["num_iter"] == 6  # --lr_iter epoch: one pass over 48 images in batches of 8
    assert set(report["suggestions"]) == {"steepest", "valley", "min_loss", "minimum"}
    assert report["suggested_lr"] == report["suggestions"]["min_loss"]


def test_step_scheduler_flags(tiny_cifar, tmp_path, main_here):  # noqa: F811
    result = main_here("--dataset", "cifar10", "--data_dir", tiny_cifar, "--batch_size", 32, "--lr", "0.05",
                       "--epochs", 2, "--scheduler", "step", "--step_size", 1, "--gamma", 0.5, "--save_best",
                       "--workers", 0, "--output_dir", tmp_path)
    assert result.returncode == 0, result.stderr[-2000:]
    history = json.loads((tmp_path / "history.json").read_text())
    assert history["lr"] == pytest.approx([0.05] * 2 + [0.025] * 2)
    assert (tmp_path / "best.pt").is_file()


def test_default_max_lr_comes_from_the_recipe_and_is_printed(tiny_cifar, tmp_path, main_here):  # noqa: F811
    from main import build_parser, validate
    parser = build_parser()
    args = parser.parse_args(["--dataset", "cifar10", "--model", "resnet50", "--epochs", "20",
                              "--output_dir", str(tmp_path)])
    settings = validate(parser, args)
    assert settings.recipe.max_lr == 0.1 and settings.recipe.pct_start == 0.3 and settings.save_every == 5
    result = main_here("--dataset", "cifar10", "--data_dir", tiny_cifar, "--batch_size", 32, "--epochs", 1,
                       "--workers", 0, "--output_dir", tmp_path / "run")
    assert result.returncode == 0 and "max LR 0.4, 1 epochs" in result.stdout


def test_main_is_callable_from_python(tiny_cifar, tmp_path, capsys):  # noqa: F811
    from main import main
    main(["--dataset", "cifar10", "--data_dir", str(tiny_cifar), "--find_lr", "--lr_iter", "6", "--batch_size", "32",
          "--workers", "0", "--output_dir", str(tmp_path)])
    assert "wrote" in capsys.readouterr().out
    report = json.loads((tmp_path / "suggested_lr.json").read_text())
    assert set(report["suggestions"]) == {"steepest", "valley", "min_loss", "minimum"}


# ------------------------------------------------------------------------------- 002: the S10 notebook
def test_s10_reference_notebook_calls(cifar_folder):
    from training_utils import get_lr, test, train
    from utils import (display_cifar_misclassified_data, display_loss_and_accuracies, get_cifar_statistics,
                       get_misclassified_data, visualize_cifar_augmentation)
    from visualize import display_cifar_data_samples

    train_set = dataset.TransformedDataset(cifar_folder, train=True, download=True)
    test_set = dataset.TransformedDataset(cifar_folder, train=False, download=True)
    get_cifar_statistics(train_set)
    get_cifar_statistics(test_set, data_set_type="Test")
    classes = dataset.SyntheticImages.classes
    assert display_cifar_data_samples(train_set.source, 20, classes).axes
    aug_set_transforms = {
        'randomcrop': A.RandomCrop(height=32, width=32, p=1),
        'horizontalflip': A.HorizontalFlip(p=1),
        'cutout': A.CoarseDropout(num_holes_range=(1, 1), hole_height_range=(16, 16), hole_width_range=(16, 16),
                                  fill=(125, 123, 114), p=1),  # albumentations 2.x spelling of the same cutout
        'normalize': A.Normalize((0.49139968, 0.48215827, 0.44653124), (0.24703233, 0.24348505, 0.26158768)),
        'standardize': ToTensorV2(),
    }
    assert visualize_cifar_augmentation(train_set, aug_set_transforms).axes
    train_loader = torch.utils.data.DataLoader(train_set, batch_size=32, shuffle=True)
    test_loader = torch.utils.data.DataLoader(test_set, batch_size=64)
    torch.manual_seed(0)
    model = tiny_cnn().to(DEVICE)
    optimizer = optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    criterion = nn.CrossEntropyLoss()
    EPOCHS = 3
    scheduler = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=0.05, steps_per_epoch=len(train_loader),
                                                    epochs=EPOCHS, pct_start=5 / EPOCHS / 8, div_factor=100,
                                                    three_phase=False, final_div_factor=100, anneal_strategy="linear")
    train_losses, test_losses, train_acc, test_acc, learning_rates = [], [], [], [], []
    for epoch in range(1, EPOCHS + 1):
        result = train(model, DEVICE, train_loader, optimizer, criterion, scheduler)
        correct, processed, train_loss = result
        train_acc.append(100 * correct / processed)
        train_losses.append(train_loss / len(train_loader))  # as the specification's loop writes it
        assert train_losses[-1] == pytest.approx(sum(result.steps["loss"]) / len(train_loader), rel=1e-5)
        learning_rates.append(get_lr(optimizer))
        correct, test_loss = test(model, DEVICE, test_loader, criterion)
        test_acc.append(100. * correct / len(test_loader.dataset))
        test_losses.append(test_loss)
    assert processed == len(train_set) and isinstance(correct, int)
    # chance is 10%. Seeding torch, NumPy and random does not fix this run (its augmentations vary from run to
    # run); eight runs of these 3 short epochs ended at 28-38%, so 20% is the bar for "it learns"
    assert train_losses[-1] < train_losses[0] and test_acc[-1] > 20
    assert learning_rates[0] > learning_rates[1] > 0  # the LR of the next step, read after each epoch
    assert display_loss_and_accuracies(train_losses, train_acc, test_losses, test_acc).axes
    inv_normalize = transforms.Normalize(mean=[-0.4942 / 0.2466, -0.4851 / 0.2428, -0.4504 / 0.2615],
                                         std=[1 / 0.2466, 1 / 0.2428, 1 / 0.2615])
    misclassified_data = get_misclassified_data(model, DEVICE, test_loader)
    assert display_cifar_misclassified_data(misclassified_data, classes, inv_normalize, number_of_samples=10).axes


# -------------------------------------------------------------------- 003: the implementation summary
def test_implementation_summary_names(monkeypatch):
    import lr_finder
    import training_utils
    from custom_resnet import CustomResNet, build_model
    from lr_finder import find_lr_advanced
    from training_utils import evaluate, train_epoch
    from utils import count_parameters

    assert isinstance(build_model("cifar10", 10), CustomResNet)
    assert count_parameters(build_model("imagenet1k", 1000)) == 25_557_032
    assert count_parameters(build_model("resnet50_cifar", 10)) == 23_520_842
    # the specification's names (specification.py) call the repository's own functions with what they are given
    for shim, module, name in ((train_epoch, training_utils, "train"), (evaluate, training_utils, "test"),
                               (find_lr_advanced, lr_finder, "find_lr")):
        monkeypatch.setattr(module, name, lambda *args, name=name, **kwargs: (name, args, kwargs))
        assert shim(1, 2, precision="fp32") == (name, (1, 2), {"precision": "fp32"})
    with pytest.raises(ValueError, match="unknown model or data set 'vgg'"):
        build_model("vgg", 10)


# ----------------------------------------------------- augmentation options, in the images the model sees
def rows_images(count, size):
    """uint8 images whose red channel rises down the rows and is constant along each row: crops, resizes and
    flips keep each row constant, a rotation tilts the rows. Even images are blue, odd ones are not, so
    the data mean (CIFAR's cutout fill) is not blue and a hole shows in the blue images' blue channel."""
    red = np.linspace(20, 235, size)[:, None].repeat(size, 1)
    images = np.zeros((count, size, size, 3), np.uint8)
    images[..., 0] = red.round()
    images[..., 1] = (np.arange(count) % 5 * 50)[:, None, None]
    images[0::2, :, :, 2] = 255
    return images, np.arange(count) % 4


def seen_by_the_model(command, tmp_path):
    """The training images main.py builds for ``command`` (the first epoch's augmentations of the blue
    images), as uint8-scale H x W x 3 arrays (the normalisation undone)."""
    import albumentations as A

    from main import build_data, build_parser, validate
    images, labels = rows_images(32, 48 if "ImageNet" in command else 32)
    if "ImageNet" in command:
        for split in ("train", "val"):
            for index, (image, label) in enumerate(zip(images, labels)):
                (tmp_path / "data" / split / str(label)).mkdir(parents=True, exist_ok=True)
                Image.fromarray(image).save(tmp_path / "data" / split / str(label) / f"{index}.png")
    else:
        (tmp_path / "data").mkdir()
        for split in ("train", "test"):
            np.savez(tmp_path / "data" / f"{split}.npz", images=images, labels=labels)
    parser = build_parser()
    args = parser.parse_args([*command.format(data=tmp_path / "data").split(), "--output_dir", str(tmp_path / "out")])
    validate(parser, args)
    train_set, _, _ = build_data(args)
    normalize = next(t for t in train_set.transform.transforms if isinstance(t, A.Normalize))
    mean, std = np.asarray(normalize.mean) * 255, np.asarray(normalize.std) * 255
    blue = [i for i in range(len(train_set)) if train_set.source[i][0][..., 2].min() == 255]
    return [train_set[(1, i)][0].permute(1, 2, 0).numpy() * std + mean for i in blue]


def row_tilt(image, hole):
    """Angle (degrees) between the red channel's gradient and the vertical, fitted over the central 20 x 20
    pixels (which a rotation of up to 15 degrees fills without its border), hole pixels left out."""
    size = image.shape[0]
    ys, xs = np.mgrid[0:size, 0:size]
    centre = (abs(ys - size / 2 + 0.5) < 10) & (abs(xs - size / 2 + 0.5) < 10) & ~hole
    design = np.stack([xs[centre], ys[centre], np.ones(centre.sum())], 1)
    (a, b, _), *_ = np.linalg.lstsq(design, image[..., 0][centre], rcond=None)
    return abs(np.degrees(np.arctan2(a, b)))


@pytest.mark.parametrize("command, hole_area, max_angle", [
    ("--dataset ImageNet --data_dir {data} --num_classes 4 --batch_size 16 --cutout --cutout_holes 1 "
     "--cutout_length 16 --rotate_degrees 10 --use_albumentation --find_lr --epochs 2 --image_size 32", 16 * 16, 10),
    ("--dataset cifar10 --data_dir {data} --max_lr 0.1", 8 * 8, 0),  # S10's recipe: one 8x8 hole, no rotation
    ("--dataset cifar10 --data_dir {data} --max_lr 0.1 --no-cutout --rotate_degrees 15", 0, 15),
], ids=["spec_imagenet_cutout_rotation", "cifar_default", "cifar_no_cutout_rotation"])
def test_cutout_and_rotation_options_reach_the_training_images(command, hole_area, max_angle, tmp_path):
    images = seen_by_the_model(command, tmp_path)
    holes = [image[..., 2] < 200 for image in images]
    assert len(images) == 16 and all(hole.sum() == hole_area for hole in holes)
    angles = [row_tilt(image, hole) for image, hole in zip(images, holes)]
    if max_angle:
        assert max(angles) <= max_angle + 0.5 and max(angles) > max_angle / 2
    else:
        assert max(angles) < 0.5
