"""What the ResNet-50 lesson shows: class names instead of WordNet ids, a block-level model summary,
the validation split named as such, a range-test log that reads without wrapped words; and the whole
lesson run as Colab's "Run all" runs it, downloading its data."""
import re
import shlex
import shutil
import sys
import tempfile
from pathlib import Path

import numpy as np
import pytest
import torch

import imagenet_classes
from custom_resnet import CustomResNet, resnet50
from lr_finder import find_lr, write_report
from tests.helpers import sgd, synthetic_loaders, tiny_cnn
from utils import block_summary, count_parameters
from visualize import plot_history

nbformat = pytest.importorskip("nbformat")  # absent where only the unit tests run (gpu_check.sh's machine)
ROOT = Path(__file__).resolve().parents[1]
IMAGENETTE = {"n01440764": "tench", "n02102040": "English springer", "n02979186": "cassette player",
              "n03000684": "chain saw", "n03028079": "church", "n03394916": "French horn",
              "n03417042": "garbage truck", "n03425413": "gas pump", "n03445777": "golf ball",
              "n03888257": "parachute"}


def test_the_wnid_table_covers_imagenet_1k_in_class_index_order():
    wnids = imagenet_classes.WNIDS
    assert len(wnids) == 1000 == len(set(imagenet_classes.WNID_TO_NAME.values()))
    assert wnids == sorted(wnids)  # ImageFolder's order is ImageNet-1K's class index
    # the indices the Imagenette README gives: tench 0, English springer 217, parachute 701
    assert (wnids.index("n01440764"), wnids.index("n02102040"), wnids.index("n03888257")) == (0, 217, 701)


def test_readable_class_names_for_wnid_folders_only():
    assert imagenet_classes.readable_class_names(list(IMAGENETTE)) == list(IMAGENETTE.values())
    own = ["cat", "n01440764"]  # a folder of one's own classes keeps its names
    assert imagenet_classes.readable_class_names(own) == own
    assert imagenet_classes.readable_class_names([]) == []


def test_block_summary_of_resnet50():
    model = resnet50(num_classes=10)
    table = block_summary(model, (3, 224, 224))
    rows = {line.split()[0]: line for line in table.splitlines()[1:]}
    assert list(rows) == ["conv1", "bn1", "relu", "maxpool", "layer1", "layer2", "layer3", "layer4", "avgpool",
                          "fc", "total"]
    for layer, blocks, shape in (("layer1", 3, "256x56x56"), ("layer2", 4, "512x28x28"),
                                 ("layer3", 6, "1024x14x14"), ("layer4", 3, "2048x7x7")):
        assert f"{blocks} x Bottleneck" in rows[layer] and shape in rows[layer]
    assert rows["total"].split()[-1] == f"{count_parameters(model):,}" == "23,528,522"
    assert rows["fc"].split()[-1] == f"{2048 * 10 + 10:,}"
    assert model.training, "the summary leaves the model in training mode"
    small = block_summary(CustomResNet(), (3, 32, 32))
    assert small.splitlines()[-1].split()[-1] == "6,573,130" and "512x4x4" in small


def test_plot_history_names_the_validation_split_and_shows_top5():
    history = {"train_loss": [2.0, 1.5], "train_acc": [20.0, 40.0], "test_loss": [1.8, 1.4],
               "test_acc": [30.0, 45.0], "test_top5": [70.0, 85.0]}
    figure = plot_history(history, split="validation")
    loss_ax, acc_ax = figure.axes
    assert [t.get_text() for t in acc_ax.get_legend().get_texts()] == ["train", "validation", "validation top-5"]
    assert "final validation accuracy 45.00%" in acc_ax.get_title()
    cifar = plot_history({**history, "test_top5": [None, None]})
    assert [t.get_text() for t in cifar.axes[1].get_legend().get_texts()] == ["train", "test"]


def test_range_test_log_wraps_between_words(tmp_path):
    train_loader, _ = synthetic_loaders(n_train=512, batch_size=32)
    model = tiny_cnn()
    result = find_lr(model, sgd(model), torch.nn.CrossEntropyLoss(), train_loader, start_lr=1e-4, end_lr=10,
                     num_iter=30, device="cpu", precision="fp32")
    report = write_report(result, tmp_path, "synthetic", 32, "find_lr(...)", plot_file=tmp_path / "plot.png")
    text = report["log"].read_text()
    section = text.split("\nAnalysis\n")[1].split("\nCurve")[0]
    assert section.strip() and all(len(line) <= 100 for line in section.splitlines())
    words = " ".join(line.strip() for line in section.splitlines()).split()
    assert f"--max_lr {result.suggestions['min_loss']:.3g}" in " ".join(words)
    assert np.isfinite(result.suggestions["min_loss"])


def lesson():
    """The committed ImageNet lesson."""
    return nbformat.read(ROOT / "ImageNet_LR_Finder.ipynb", as_version=4)


def prose(notebook):
    """The markdown of ``notebook`` without its fenced code blocks."""
    text = "\n".join(cell.source for cell in notebook.cells if cell.cell_type == "markdown")
    return re.sub(r"```.*?```", "", text, flags=re.S)


def commands(notebook):
    """The command lines in the markdown code blocks (continuation lines joined), as argument lists."""
    text = "\n".join(cell.source for cell in notebook.cells if cell.cell_type == "markdown")
    blocks = "\n".join(re.findall(r"```\n(.*?)```", text, flags=re.S)).replace("\\\n", " ")
    return [shlex.split(line) for line in blocks.splitlines() if line.strip() and not line.startswith("#")]


def test_the_lessons_main_py_commands_parse_and_leave_the_precision_to_main_py():
    import main

    lines = [line for line in commands(lesson()) if "main.py" in line]
    assert len(lines) == 4
    for line in lines:
        arguments = line[line.index("main.py") + 1:]
        assert "--amp" not in arguments and "--precision" not in arguments, line
        parsed = main.build_parser().parse_args(arguments)
        assert parsed.precision is None and not parsed.amp, "main.py's default (auto): the notebook's precision rule"


def test_the_lesson_explains_with_links_and_quotes_no_number_of_an_old_run():
    notebook = lesson()
    text = prose(notebook)
    for link in ("arxiv.org/abs/1506.01186", "arxiv.org/abs/1803.09820", "arxiv.org/abs/1708.07120",
                 "docs.fast.ai/callback.schedule", "arxiv.org/abs/1512.00567",
                 "pytorch.org/docs/stable/amp.html", "memory_format_tutorial", "torch.optim.SGD",
                 "github.com/fastai/imagenette"):
        assert link in text, link
    for concept in ("label smoothing", "Nesterov", "weight decay", "bf16 autocast", "GradScaler", "channels_last",
                    "momentum cycled", "min_loss", "valley", "steepest", "warm-up", "annealing", "held out",
                    "87.43%", "91.57%", "fit_flat_cos", "95% t-interval"):
        assert concept in text, concept
    for stale in ("23.5 million", "62.60", "0.0248", "0.0123", "36 minutes", "a few images per second", "at chance",
                  "earlier version", "nbval", " CI "):
        assert stale not in text, stale
    assert text.count("SMOKE") == 1, "one sentence on the test mode, no more"
    sources = [cell.source for cell in notebook.cells if cell.cell_type == "code"]
    assert not any("NBVAL" in source or "nbval" in source for source in sources), "markers are cell tags"
    assert not any("progress=False" in source for source in sources), "progress follows progress.show_bar's rule"
    [summary] = [cell for cell in notebook.cells if "block_summary(" in cell.source]
    assert summary.metadata["tags"] == ["nbval-check-output"]
    assert 'SEEDS = 3' in text and 'os.environ["SEEDS"] = "3"' in text, "how to change a setting in Colab"


def settings_cell(notebook):
    return next(cell.source for cell in notebook.cells if cell.cell_type == "code" and "IMAGENET_DIR" in cell.source)


def test_smoke_mode_makes_its_own_images_even_where_imagenet_dir_is_set(tmp_path, monkeypatch):
    """CI sets IMAGENET_DIR for the real-data tests; the SMOKE run nbval compares must not use it (or download)."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    monkeypatch.setenv("SMOKE", "1")
    monkeypatch.setenv("IMAGENET_DIR", str(tmp_path / "real"))
    monkeypatch.delenv("IMAGENETTE_URL", raising=False)
    namespace = {}
    exec(settings_cell(lesson()), namespace)
    folder = Path(namespace["IMAGENET_DIR"])
    assert folder.parent == tmp_path and folder.name.startswith("tmp") and (folder / "val").is_dir()
    assert not (tmp_path / "data").exists(), "nothing downloaded"


# The lesson end to end as Colab's "Run all" meets it, offline: SMOKE mode, no IMAGENET_DIR, and a small
# archive in Imagenette's layout standing in for fast.ai's download (IMAGENETTE_URL, a file:// URL).
COPY_IGNORE = (".git", ".venv", "data", "runs", "checkpoints", "out", "gpu_check", ".carry", "__pycache__",
               ".pytest_cache", ".ipynb_checkpoints")


def test_run_all_without_imagenet_dir_downloads_imagenette_and_runs_the_lesson(tmp_path, monkeypatch):
    from nbclient import NotebookClient

    from tests.test_imagenette import WNIDS, make_imagenette_archive

    repo = tmp_path / "repo"
    shutil.copytree(ROOT, repo, ignore=shutil.ignore_patterns(*COPY_IGNORE))
    server = tmp_path / "server"
    server.mkdir()
    _, url, sha256 = make_imagenette_archive(server, train_per_class=12, val_per_class=4)
    monkeypatch.delenv("IMAGENET_DIR", raising=False)
    monkeypatch.delenv("COLAB_RELEASE_TAG", raising=False)
    monkeypatch.setenv("SMOKE", "1")
    monkeypatch.setenv("LR_ITER", "20")  # a setting changed as a learner would, and a shorter test
    monkeypatch.setenv("IMAGENETTE_URL", url)
    monkeypatch.setenv("IMAGENETTE_SHA256", sha256)
    notebook = nbformat.read(repo / "ImageNet_LR_Finder.ipynb", as_version=4)  # the committed lesson
    NotebookClient(notebook, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(repo)}}).execute()
    texts = ["".join(output.get("text", "") for output in cell.get("outputs", []) if output.get("name") == "stdout")
             for cell in notebook.cells if cell.cell_type == "code"]
    assert not [output for cell in notebook.cells for output in cell.get("outputs", [])
                if output.output_type == "error"]
    settings = next(text for text in texts if "IMAGE_SIZE=" in text)
    assert f"downloading {url}" in settings and "SHA-256 checked" in settings and "unpacking" in settings
    assert "LR_ITER=20" in settings
    folder = repo / "data" / "imagenette2-160"
    assert sorted(path.name for path in (folder / "train").iterdir()) == list(WNIDS)
    data = next(text for text in texts if "decoded at" in text)
    assert "train: 36 images in 3 classes\nval: 12 images in 3 classes" in data
    assert "36 training and 12 validation images; tench, English springer, parachute" in data
    assert any("epoch  2/2" in text for text in texts), "the lesson trained on the downloaded images"
    assert any("<- MAX_LR" in text for text in texts), "the stored held-out sweep chose the peak"
    assert any("the run by hand: " in text for text in texts)
