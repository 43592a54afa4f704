"""The schedules the third lesson compares with one-cycle (recipes.build_schedule, main.py --scheduler):
each follows its formula in every param group (the batch-norm biases at their 64x scale), and a run with
one resumes exactly."""
import json
import math
from dataclasses import replace

import pytest
import torch

import recipes
from custom_resnet import SpeedrunNet
from tests.helpers import resumed_run_equals_straight_run
from tests.test_main import tiny_cifar  # noqa: F401 (a fixture)


def lrs_of(kind, epochs=4, steps_per_epoch=5, max_lr=1.5, **options):
    """Every step's LR of both param groups, stepping as fit does (per batch or per epoch)."""
    model = SpeedrunNet(widths=(8, 16, 16))
    recipe = replace(recipes.SPEEDRUN, scheduler=kind, max_lr=max_lr, epochs=epochs, **options)
    optimizer = recipes.build_optimizer(recipe, model)
    scheduler, per_batch = recipes.build_schedule(recipe, optimizer, steps_per_epoch)
    seen = []
    for _ in range(epochs):
        for _ in range(steps_per_epoch):
            seen.append([group["lr"] for group in optimizer.param_groups])
            optimizer.step()
            if per_batch:
                scheduler.step()
        if not per_batch:
            scheduler.step()
    return torch.tensor(seen), per_batch


def test_warmup_cosine_rises_linearly_over_pct_start_then_follows_half_a_cosine_to_zero():
    lrs, per_batch = lrs_of("warmup_cosine", epochs=10, steps_per_epoch=10)
    total, warmup = 100, round(recipes.SPEEDRUN.pct_start * 100)  # 23 steps
    start = 1.5 / recipes.SPEEDRUN.div_factor
    expected = [start + (1.5 - start) * s / warmup if s < warmup
                else 1.5 * 0.5 * (1 + math.cos(math.pi * (s - warmup) / (total - warmup))) for s in range(total)]
    assert per_batch
    assert lrs[:, 0].tolist() == pytest.approx(expected, rel=1e-6, abs=1e-9)
    assert lrs[:, 1].tolist() == pytest.approx([64 * lr for lr in expected], rel=1e-6, abs=1e-9)
    assert lrs[warmup, 0] == pytest.approx(1.5) and lrs[-1, 0] < 1.5 * 1e-3
    assert recipes.schedule_lrs(replace(recipes.SPEEDRUN, scheduler="warmup_cosine", max_lr=1.5, epochs=10), 10) == pytest.approx(expected, abs=1e-9)


def test_constant_keeps_max_lr_and_step_divides_it_by_gamma_every_step_size_epochs():
    constant, _ = lrs_of("constant")
    assert torch.allclose(constant, torch.tensor([1.5, 96.0]).expand_as(constant))
    step, per_batch = lrs_of("step", epochs=6, step_size=2, gamma=0.1)
    assert not per_batch
    per_epoch = step[::5, 0].tolist()
    assert per_epoch == pytest.approx([1.5, 1.5, 0.15, 0.15, 0.015, 0.015])
    assert recipes.schedule_lrs(replace(recipes.SPEEDRUN, scheduler="step", max_lr=1.5, epochs=6, step_size=2, gamma=0.1), 5) == pytest.approx(
        step[:, 0].tolist())
    assert torch.allclose(step[:, 1], 64 * step[:, 0])


def test_one_cycle_is_the_recipes_own():
    lrs, per_batch = lrs_of("onecycle", epochs=10, steps_per_epoch=10)
    assert per_batch and lrs[0, 0] == pytest.approx(1.5 / 5) and lrs[:, 0].max() == pytest.approx(1.5)
    assert lrs[-1, 0] == pytest.approx(1.5 * 0.07, rel=0.02)


def test_a_schedule_refuses_an_optimizer_built_at_another_lr_and_an_unknown_kind():
    optimizer = recipes.build_optimizer(recipes.SPEEDRUN, SpeedrunNet(widths=(8, 16, 16)), lr=0.1)
    with pytest.raises(ValueError, match="build it with lr=max_lr"):
        recipes.build_schedule(replace(recipes.SPEEDRUN, scheduler="constant", max_lr=1.5, epochs=2), optimizer, 5)
    with pytest.raises(ValueError, match="unknown schedule 'linear'; use one of onecycle, constant"):
        recipes.build_schedule(replace(recipes.SPEEDRUN, scheduler="linear", max_lr=0.1, epochs=2), optimizer, 5)


def test_main_trains_with_warmup_cosine_per_batch_and_resumes_it_exactly(tiny_cifar, tmp_path, main_here):  # noqa: F811
    common = ["--recipe", "speedrun", "--data_dir", tiny_cifar, "--epochs", 3, "--batch_size", 32, "--max_lr", 0.2,
              "--scheduler", "warmup_cosine", "--save_every", 1, "--no_plots"]
    straight, _ = resumed_run_equals_straight_run(main_here, common, tmp_path)
    assert "scheduler=warmup_cosine" in straight.stdout
    lrs = json.loads((tmp_path / "straight" / "history.json").read_text())["lr"]
    total = len(lrs)
    warmup = round(0.23 * total)
    assert lrs[0] == pytest.approx(0.2 / 5) and lrs[warmup] == pytest.approx(0.2)
    assert all(a > b for a, b in zip(lrs[warmup:], lrs[warmup + 1:]))  # stepped every batch, not every epoch


def test_warmup_step_warms_up_as_one_cycle_then_divides_by_gamma_half_way_and_at_three_quarters():
    lrs, per_batch = lrs_of("warmup_step", epochs=10, steps_per_epoch=10)
    warmup, start = recipes.SPEEDRUN.pct_start * 100 - 1, 1.5 / recipes.SPEEDRUN.div_factor  # as OneCycleLR
    expected = [start + (1.5 - start) * s / warmup if s < warmup else 1.5 if s < 50 else 0.15 if s < 75 else 0.015
                for s in range(100)]
    assert per_batch and lrs[:, 0].tolist() == pytest.approx(expected, rel=1e-6)
    assert lrs[:, 1].tolist() == pytest.approx([64 * lr for lr in expected], rel=1e-6)
    one_cycle, _ = lrs_of("onecycle", epochs=10, steps_per_epoch=10)
    assert lrs[:23, 0].tolist() == pytest.approx(one_cycle[:23, 0].tolist(), rel=1e-6)  # the same warm-up


def test_flat_cosine_holds_max_lr_for_three_quarters_then_follows_half_a_cosine_to_zero():
    lrs, per_batch = lrs_of("flat_cosine", epochs=10, steps_per_epoch=10)
    expected = [1.5 if s < 75 else 1.5 * 0.5 * (1 + math.cos(math.pi * (s - 75) / 25)) for s in range(100)]
    assert per_batch and lrs[:, 0].tolist() == pytest.approx(expected, rel=1e-6, abs=1e-9)
    assert lrs[-1, 0] < 0.02 and torch.allclose(lrs[:, 1], 64 * lrs[:, 0])
