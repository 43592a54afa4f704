"""The image-folder fast path: images decoded once into a cache that follows the folder (image_cache), and
batches cropped and flipped as tensor operations (batched_data.BatchedImageLoader) with the statistics of
the Albumentations path, exact per epoch, through main.py too; and the message for a partial Imagenette."""
import json
import os
from dataclasses import replace

import albumentations as A
import numpy as np
import pytest
import torch
from PIL import Image

import dataset
import image_cache
import imagenette
from batched_data import BatchedImageLoader
from recipes import RECIPES, training_sizes
from tests.helpers import resumed_run_equals_straight_run
from tests.test_main import tiny_folder  # noqa: F401 (a fixture)


def coordinate_image(size=160):
    """Red grows with the column, green with the row: a crop's corners tell where it came from."""
    ramp = np.round(np.linspace(0, 255, size))
    image = np.full((size, size, 3), 128, dtype=np.uint8)
    image[..., 0], image[..., 1] = ramp[None, :], ramp[:, None]
    return image


def crop_statistics(batch):
    """Per image (N x 3 x H x W, 0-255): crop width and height as shares of the image, centre column and
    row as shares, and whether it is mirrored."""
    red, green = batch[:, 0], batch[:, 1]
    left, right = red[:, :, 0].mean(1), red[:, :, -1].mean(1)
    top, bottom = green[:, 0, :].mean(1), green[:, -1, :].mean(1)
    return torch.stack([(right - left).abs() / 255, (bottom - top) / 255, (left + right) / 510,
                        (top + bottom) / 510, (right < left).float()], 1)


def identity_loader(images, train, size=32, seed=0, scale=(0.35, 1.0)):
    """A loader that leaves pixel values 0-255 (mean 0, std 1/255), one batch of all images."""
    return BatchedImageLoader(images, np.zeros(len(images)), len(images), size, (0, 0, 0), (1 / 255,) * 3,
                              train=train, seed=seed, scale=scale)


@pytest.mark.parametrize("min_scale", [0.0, 0.08])  # 0: the default for 32 px, fastai's 0.35; 0.08: torchvision's
def test_batched_crops_and_flips_have_the_statistics_of_the_albumentations_path(min_scale):
    image, n = coordinate_image(), 3000
    folder_path = A.Compose(dataset.imagenet_augmentations(32, min_scale=min_scale)[:2], seed=0)  # crop and flip
    expected = torch.stack([torch.tensor(folder_path(image=image)["image"]).permute(2, 0, 1).float()
                            for _ in range(n)])
    loader = identity_loader(np.repeat(image[None], n, 0), train=True, scale=dataset.crop_scale(32, min_scale))
    loader.set_epoch(1)
    batch, _ = next(iter(loader))
    a, b = crop_statistics(expected), crop_statistics(batch.float())
    quantiles = torch.tensor([0.1, 0.5, 0.9])
    for column, name in enumerate(("width", "height", "centre x", "centre y", "flipped")):
        assert abs(a[:, column].mean() - b[:, column].mean()) < 0.02, name
        if name != "flipped":
            assert torch.allclose(a[:, column].quantile(quantiles), b[:, column].quantile(quantiles), atol=0.02), name
    smallest = (min_scale or 0.35) * 3 / 4  # the smallest area share at the narrowest aspect ratio
    assert smallest ** 0.5 - 0.05 < b[:, 0].min() < smallest ** 0.5 + 0.1 and b[:, 0].max() <= 1.0


def test_the_recipes_min_scale_reaches_both_image_paths(tiny_folder, tmp_path):  # noqa: F811
    import main
    import training_run

    argv = ["--data_dir", str(tiny_folder), "--image_size", "32", "--max_lr", "0.1", "--min_scale", "0.6",
            "--cache_dir", str(tmp_path / "cache"), "--output_dir", str(tmp_path / "run")]
    settings = main.settings_from_argv(argv)
    train_loader, _ = training_run.image_loaders(settings, 8, "cpu")
    assert train_loader.scale == (0.6, 1.0)
    train_set, _, _ = training_run.build_data(settings)
    crop = train_set.transform.transforms[0]
    assert isinstance(crop, A.RandomResizedCrop) and tuple(crop.scale) == (0.6, 1.0)


def test_evaluation_batches_are_the_folder_paths_centre_crop():
    image = coordinate_image()
    batch, _ = next(iter(identity_loader(image[None], train=False)))
    expected = A.Compose(dataset.imagenet_val_crop(32))(image=image)["image"]
    assert np.abs(batch[0].permute(1, 2, 0).numpy() - expected).max() < 1.0


def test_an_epoch_is_fixed_by_seed_and_epoch_and_differs_between_epochs():
    images = np.repeat(coordinate_image(64)[None], 8, 0)
    first, again = identity_loader(images, True, seed=3), identity_loader(images, True, seed=3)
    first.set_epoch(2), again.set_epoch(2)
    a, b = next(iter(first))[0], next(iter(again))[0]
    assert torch.equal(a, b)
    again.set_epoch(3)
    assert not torch.equal(a, next(iter(again))[0])


def write_jpegs(folder, count, size=(48, 64)):
    rng = np.random.default_rng(0)
    for split in ("train", "val"):
        for wnid in ("n01440764", "n03888257"):
            (folder / split / wnid).mkdir(parents=True, exist_ok=True)
            for index in range(count):
                Image.fromarray(rng.integers(0, 256, (*size, 3), dtype=np.uint8)).save(
                    folder / split / wnid / f"{index}.JPEG")


def test_the_cache_is_built_once_and_rebuilt_when_the_folder_changes(tmp_path):
    root, cache = tmp_path / "folder", tmp_path / "cache"
    write_jpegs(root, 3)
    images, labels, classes = image_cache.cached_split(root, "train", 40, cache)
    assert images.shape == (6, 40, 40, 3) and images.dtype == np.uint8 and isinstance(images, np.memmap)
    assert labels.tolist() == [0, 0, 0, 1, 1, 1] and classes == ["n01440764", "n03888257"]
    with Image.open(root / "train" / "n01440764" / "0.JPEG") as first:  # 48 x 64: shorter side to 40, centre
        expected = np.asarray(first.convert("RGB").resize((53, 40), Image.BILINEAR))[:, 6:46]
    assert np.array_equal(images[0], expected)
    built = {path.name: path.stat().st_mtime_ns for path in cache.iterdir()}
    image_cache.cached_split(root, "train", 40, cache)
    assert {path.name: path.stat().st_mtime_ns for path in cache.iterdir()} == built  # read, not rebuilt
    (root / "train" / "n03888257" / "3.JPEG").write_text("not an image")
    with pytest.warns(UserWarning, match="cannot decode image .*3.JPEG"):
        images, labels, _ = image_cache.cached_split(root, "train", 40, cache)
    assert len(labels) == 7 and labels[-1] == dataset.SKIPPED_LABEL  # the loss ignores it
    assert len(list(cache.iterdir())) == 2 and set(built).isdisjoint(path.name for path in cache.iterdir())
    os.utime(root / "train" / "n01440764" / "1.JPEG", ns=(1, 1))  # a replaced file: same name, new time
    with pytest.warns(UserWarning, match="cannot decode image"):  # rebuilt: the broken file is met again
        image_cache.cached_split(root, "train", 40, cache)
    assert len(list(cache.iterdir())) == 2


def test_progressive_resizing_grows_the_training_crops_epoch_by_epoch_and_keeps_evaluation_at_image_size():
    recipe = replace(RECIPES["imagenet"], epochs=5, image_size=128, start_size=96)
    assert training_sizes(recipe) == (96, 104, 112, 120, 128)
    assert training_sizes(replace(recipe, start_size=0)) == (128,) * 5
    assert training_sizes(replace(recipe, epochs=1)) == (128,)
    images = np.repeat(coordinate_image(64)[None], 4, 0)
    train = BatchedImageLoader(images, np.zeros(4), 4, 48, (0, 0, 0), (1, 1, 1), sizes=(32, 40, 48))
    evaluation = BatchedImageLoader(images, np.zeros(4), 4, 48, (0, 0, 0), (1, 1, 1), train=False, sizes=(32, 40, 48))
    assert next(iter(train))[0].shape[-1] == 32  # before training (a range test): the first epoch's size
    for epoch, size in ((1, 32), (2, 40), (3, 48), (4, 48)):
        train.set_epoch(epoch), evaluation.set_epoch(epoch)
        assert next(iter(train))[0].shape[-2:] == (size, size) and next(iter(evaluation))[0].shape[-2:] == (48, 48)


def test_main_trains_an_image_folder_from_the_cache_with_progressive_resizing_and_resumes_it_exactly(
        tiny_folder, tmp_path, main_here):  # noqa: F811
    common = ["--data_dir", tiny_folder, "--epochs", 3, "--batch_size", 16, "--image_size", 40, "--start_size", 24,
              "--save_every", 1, "--cache_dir", tmp_path / "cache", "--no_plots", "--holdout", 0.25]
    straight, _ = resumed_run_equals_straight_run(main_here, common, tmp_path)
    assert "48 training images at 40px, evaluated on 16 held-out training images" in straight.stdout
    assert "progressive resizing: training crops of 24, 32, 40 px in epochs 1-3, evaluation at 40 px" in straight.stdout
    refused = main_here(*common[:-2], "--loader", "albumentations", "--output_dir", tmp_path / "refused")
    assert refused.returncode == 2 and "--start_size: progressive resizing comes from the batched loader" in refused.stderr
    assert "batched loader" in straight.stdout and "  val loss " in straight.stdout
    assert len(list((tmp_path / "cache").glob("*.npy"))) == 1  # the val folder was never decoded


def test_a_partial_imagenette_is_named_before_training_and_the_full_one_is_not():
    full = {split: dict(counts) for split, counts in imagenette.FULL_COUNTS.items()}
    assert imagenette.not_full_imagenette(full) is None
    assert imagenette.not_full_imagenette({"train": {"a": 3}, "val": {"a": 1}}) is None  # not Imagenette
    partial = {"train": {wnid: 300 for wnid in full["train"]}, "val": full["val"]}
    assert imagenette.not_full_imagenette(partial) == (
        "this folder holds Imagenette's classes but not all of its images (train: 3,000 of 9,469): its accuracy "
        "is not comparable with the Imagenette leaderboard, which uses the full split")


def test_the_throughput_benchmark_puts_both_resnet50_data_paths_beside_the_model_step(tmp_path, capsys):
    from tests.test_gpu_path import throughput_benchmark

    report = tmp_path / "r50.json"
    throughput_benchmark().main(["--model", "resnet50", "--device", "cpu", "--batch_size", "4", "--steps", "1",
                                 "--warmup", "0", "--image_size", "32", "--json", str(report)])
    table = capsys.readouterr().out
    assert "| (e) folder: decode + crop per image, DataLoader |" in table and "| (f) decoded once" in table
    summary = json.loads(report.read_text())
    assert [row["path"][:3] for row in summary["rows"]] == ["(e)", "(f)"] and summary["model"] == "resnet50"
    for row in summary["rows"]:
        # the rates are stored to 0.1 img/s, the ratio from the unrounded ones: a few img/s here, so 10%
        assert row["ratio_to_model_step"] == pytest.approx(row["with_data_img_s"] / summary["model_step_img_s"], 0.1)
    assert summary["folder_pipeline_img_s"] > 0 and summary["batched_pipeline_img_s"] > 0


def test_main_names_a_partial_imagenette_before_it_trains(tmp_path, main_here):
    rng = np.random.default_rng(0)
    for split, count in (("train", 2), ("val", 1)):
        for wnid in imagenette.FULL_COUNTS["train"]:
            (tmp_path / split / wnid).mkdir(parents=True)
            for index in range(count):
                Image.fromarray(rng.integers(0, 256, (40, 40, 3), dtype=np.uint8)).save(
                    tmp_path / split / wnid / f"{index}.JPEG")
    result = main_here("--data_dir", tmp_path, "--epochs", 1, "--batch_size", 8, "--image_size", 32, "--no_plots",
                       "--output_dir", tmp_path / "out")
    assert result.returncode == 0, result.stderr[-2000:]
    note = "note: this folder holds Imagenette's classes but not all of its images (train: 20 of 9,469, val: 10 of 3,925)"
    assert note in result.stdout and result.stdout.index(note) < result.stdout.index("epoch  1/1")
