"""The recipes are the single source of the training settings: the S10 notebook, the ImageNet notebook
and main.py read the same objects, and the one-cycle builder follows OneCycleLR's formula."""
import json
from dataclasses import replace
from pathlib import Path

import pytest
import torch

import main
import recipes
from recipes import IMAGENET, RESNET50_CIFAR, S10, build_criterion, build_one_cycle, build_optimizer

ROOT = Path(__file__).resolve().parents[1]


def effective_recipe(*argv):
    """The recipe main.py trains with for a command line (parsed and validated, no training)."""
    parser = main.build_parser()
    args = parser.parse_args([str(a) for a in argv])
    return args, main.validate(parser, args, []).recipe


def notebook_source(name):
    cells = json.loads((ROOT / name).read_text())["cells"]
    return "\n".join("".join(cell["source"]) for cell in cells if cell["cell_type"] == "code")


def test_main_trains_cifar10_with_the_s10_notebooks_recipe(tmp_path):
    args, recipe = effective_recipe("--dataset", "cifar10", "--output_dir", tmp_path)
    assert recipe == S10  # every field: optimizer, smoothing, augmentation, one-cycle settings, epochs, batch
    assert (recipe.max_lr, recipe.epochs, recipe.batch_size, recipe.cutout_length) == (0.4, 24, 512, 8)
    source = notebook_source("S10.ipynb")
    assert "from recipes import S10 as recipe" in source
    for call in ("build_optimizer(recipe", "build_one_cycle(recipe", "build_criterion(recipe"):
        assert call in source, call


def test_main_trains_image_folders_with_the_imagenet_recipe(tmp_path):
    for split in ("train", "val"):
        (tmp_path / "data" / split / "n01440764").mkdir(parents=True)
    args, recipe = effective_recipe("--data_dir", tmp_path / "data", "--output_dir", tmp_path / "out")
    assert args.dataset == "imagefolder" and args.model == "resnet50"
    assert recipe == IMAGENET and recipe.cycle_momentum and recipe.anneal_strategy == "cos"
    assert "recipes.IMAGENET" in notebook_source("ImageNet_LR_Finder.ipynb")


def test_resnet50_on_cifar_has_its_own_recipe_and_options_override_any_field(tmp_path):
    _, recipe = effective_recipe("--dataset", "CIFAR100", "--model", "resnet50", "--output_dir", tmp_path)
    assert recipe == RESNET50_CIFAR
    _, recipe = effective_recipe("--dataset", "cifar10", "--cycle_momentum", "--base_momentum", "0.8",
                                 "--anneal_strategy", "cos", "--three_phase", "--pct_start", "0.3",
                                 "--max_lr", "0.2", "--output_dir", tmp_path)
    assert recipe == replace(S10, cycle_momentum=True, base_momentum=0.8, anneal_strategy="cos", three_phase=True,
                             pct_start=0.3, max_lr=0.2)


def test_help_shows_the_one_cycle_options_with_each_data_sets_default(capsys):
    with pytest.raises(SystemExit):
        main.build_parser().parse_args(["--help"])
    text = " ".join(capsys.readouterr().out.split())
    for option in ("--cycle_momentum", "--base_momentum", "--max_momentum", "--anneal_strategy", "--three_phase",
                   "--pct_start", "--div_factor", "--final_div_factor"):
        assert option in text, option
    assert "(default from the recipe: CIFAR s10 0.4, CIFAR --model resnet50 0.1, image folders 0.1)" in text
    assert "cycle_momentum ... " not in text and "CIFAR s10 False" in text  # cycle_momentum for S10


def test_one_cycle_from_a_recipe_matches_the_formula_and_cycles_momentum():
    recipe = replace(IMAGENET, anneal_strategy="linear")
    model = torch.nn.Linear(2, 2)
    optimizer = build_optimizer(recipe, model.parameters())
    epochs, steps = 2, 10
    schedule = build_one_cycle(replace(recipe, max_lr=0.5, epochs=epochs), optimizer, steps_per_epoch=steps)
    lrs, momentums = [], []
    for _ in range(epochs * steps):
        lrs.append(optimizer.param_groups[0]["lr"])
        momentums.append(optimizer.param_groups[0]["momentum"])
        optimizer.step()
        schedule.step()
    peak = round(recipe.pct_start * epochs * steps) - 1
    assert lrs[0] == pytest.approx(0.5 / recipe.div_factor) and lrs[peak] == pytest.approx(0.5)
    assert lrs[-1] == pytest.approx(0.5 / recipe.div_factor / recipe.final_div_factor)
    assert momentums[0] == pytest.approx(recipe.max_momentum) and momentums[peak] == pytest.approx(recipe.base_momentum)
    assert momentums[-1] == pytest.approx(recipe.max_momentum)
    assert isinstance(optimizer, torch.optim.SGD) and optimizer.defaults["nesterov"]
    assert build_criterion(S10).label_smoothing == 0.2


def test_recipe_errors_say_what_to_do():
    with pytest.raises(ValueError, match="max_lr must be a positive number"):
        build_one_cycle(replace(S10, max_lr=None), build_optimizer(S10, torch.nn.Linear(2, 2).parameters()), 1)
    with pytest.raises(ValueError, match="unknown optimizer 'lamb'"):
        build_optimizer(replace(S10, optimizer="lamb"), torch.nn.Linear(2, 2).parameters())
    assert recipes.recipe_for("cifar100") is S10 and recipes.recipe_for("imagefolder") is IMAGENET
