"""lr_sweep.py: the range test, one short one-cycle run per max LR, the JSON and the figure."""
import json

import pytest

import lr_sweep


def test_sweep_trains_each_max_lr_and_writes_its_numbers(tmp_path):
    output = tmp_path / "sweep"
    summary = lr_sweep.main(["--dataset", "synthetic", "--subset", "128", "--test_subset", "64", "--batch_size", "32",
                             "--lr_iter", "12", "--epochs", "1", "--grid", "0.05", "0.4", "--workers", "0",
                             "--output", str(output)])
    saved = json.loads((tmp_path / "sweep.json").read_text())
    assert (tmp_path / "sweep.png").read_bytes()[:4] == b"\x89PNG"
    trained = [run["max_lr"] for run in saved["results"]]
    assert {0.05, 0.4} <= set(trained) and trained == sorted(trained)
    assert set(saved["suggestions"]) == {"steepest", "valley", "min_loss", "minimum"}
    assert saved["best"]["test_acc"] == max(run["test_acc"] for run in saved["results"])
    assert summary["at_rule"]["max_lr"] in trained and saved["settings"]["epochs"] == 1
    again = lr_sweep.main(["--plot_only", "--output", str(output)])
    assert again["results"] == saved["results"]


@pytest.fixture(scope="module")
def zero_init_sweep(tmp_path_factory):
    """A sweep of ResNet-50 with zero-init residuals on a folder of 48 + 16 generated 32px images: two range
    tests (12 and 16 iterations), one run at the grid's 0.01 and none added for a suggestion
    (``--suggestion_runs`` without names). Returns its summary and output path. Both tests below check this
    one sweep: each range test and run of ResNet-50 costs seconds on a CPU."""
    import dataset
    tmp_path = tmp_path_factory.mktemp("sweeps")
    folder = tmp_path / "folder"
    for split, seed, count in (("train", 0, 48), ("val", 1, 16)):
        shapes = dataset.SyntheticImages(n=count, size=32, seed=seed)
        dataset.write_image_folder(shapes.images, shapes.labels, shapes.classes, folder, split)
    output = tmp_path / "zero"
    summary = lr_sweep.main(folder_sweep(folder) + ["--lr_iter", "12", "16", "--suggestion_runs", "--output",
                                                    str(output)])
    return summary, output


def folder_sweep(folder):
    """The options both sweeps of the folder share."""
    return ["--dataset", "imagefolder", "--data_dir", str(folder), "--image_size", "32", "--batch_size", "16",
            "--epochs", "1", "--grid", "0.01", "--workers", "0"]


def test_sweep_on_an_image_folder_with_resnet50_and_two_range_tests(zero_init_sweep):
    summary, output = zero_init_sweep
    assert summary["recipe"] == "imagenet" and summary["split"] == "validation"
    assert [test["num_iter"] for test in summary["range_tests"]] == [12, 16]
    assert summary["suggestions"] == summary["range_tests"][0]["suggestions"]
    second = summary["range_tests"][1]
    assert 5 <= len(second["lrs"]) == len(second["losses"]) <= 16  # the test may stop early at a blow-up
    assert all(run["test_top5"] is not None and 0 <= run["test_acc"] <= run["test_top5"] <= 100
               for run in summary["results"])
    for name in ("zero.png", "zero_range_tests.png"):
        assert (output.parent / name).read_bytes()[:4] == b"\x89PNG"
    assert "validation" in lr_sweep.main(["--plot_only", "--output", str(output)])["split"]


def test_sweep_compares_two_initialisations(zero_init_sweep):
    """--init default trains torchvision's initialisation; --suggestion_runs limits the added runs;
    --plot_only --compare draws both sweeps' accuracies and all their range tests in one pair of figures."""
    zero, output = zero_init_sweep
    folder = output.parent / "folder"
    default = lr_sweep.main(folder_sweep(folder) + ["--lr_iter", "12", "--init", "default", "--suggestion_runs",
                                                    "min_loss", "--output", str(output.parent / "default")])
    assert [run["max_lr"] for run in zero["results"]] == [0.01]  # no suggestion added
    assert "zero-init residuals" in zero["what"] and "torchvision's init" in default["what"]
    assert {run["max_lr"] for run in default["results"]} == {0.01, default["suggestions"]["min_loss"]} or \
        abs(default["suggestions"]["min_loss"] / 0.01 - 1) < 0.15  # within 15% of a grid point: not added
    assert zero["results"][0]["test_acc"] != default["results"][0]["test_acc"] or \
        zero["results"][0]["final_train_loss"] != default["results"][0]["final_train_loss"]
    (output.parent / "zero_range_tests.png").unlink(missing_ok=True)
    lr_sweep.main(["--plot_only", "--output", str(output), "--compare", str(output.parent / "default.json")])
    assert (output.parent / "zero_range_tests.png").read_bytes()[:4] == b"\x89PNG"  # the tests of both sweeps


def test_sweep_on_a_folder_needs_the_folder(monkeypatch, capsys):
    import pytest
    monkeypatch.delenv("IMAGENET_DIR", raising=False)
    with pytest.raises(SystemExit):
        lr_sweep.main(["--dataset", "imagefolder"])
    assert "needs --data_dir" in capsys.readouterr().err


def test_sweep_without_a_range_test_on_a_test_subset(tmp_path, capsys):
    """--no_range_test trains the grid alone (no range test, no suggestion added or marked); --test_subset 40
    measures each run on a class-balanced 40 of the test images."""
    summary = lr_sweep.main(["--dataset", "synthetic", "--subset", "60", "--test_subset", "40", "--batch_size", "32",
                             "--epochs", "1", "--grid", "0.05", "0.2", "--workers", "0", "--no_range_test",
                             "--output", str(tmp_path / "sweep")])
    assert summary["range_tests"] == [] and summary["suggestions"] == {} and summary["at_rule"] is None
    assert [run["max_lr"] for run in summary["results"]] == [0.05, 0.2]
    assert "60 training images, 40 test images" in capsys.readouterr().out
    assert all(round(run["test_acc"] * 40 / 100, 6).is_integer() for run in summary["results"])
