"""experiments.tune and schedule_experiment.py: every arm's LR chosen on held-out images over one grid, the
pick kept inside the LRs tried, and the arms compared with one cycle seed by seed (stored records: the
statistics and the choices are what is tested here; test_experiments trains real runs)."""
from dataclasses import replace

import pytest

import experiments
import schedule_experiment as se
from experiments import RunSpec
from recipes import RECIPES
from tests.test_experiments import stored

HERE = dict(device="cpu", precision="fp32")  # named in full: the tests never depend on this machine's kind


def store_of(tmp_path, accuracy_by_lr, spec):
    store = tmp_path / "runs.json"
    for lr, accuracy in accuracy_by_lr.items():
        experiments.save_record(stored(RunSpec(**{**spec.__dict__, "max_lr": lr}), accuracy), store)
    return store


def test_tune_refuses_to_choose_on_the_test_set_and_needs_a_grid_with_an_inside():
    with pytest.raises(ValueError, match="never on the test set"):
        experiments.tune(RunSpec(**HERE), (0.5, 1, 2))
    with pytest.raises(ValueError, match="at least 3 LRs"):
        experiments.tune(RunSpec(holdout=5000, **HERE), (0.5, 1))


def test_tune_picks_the_best_held_out_lr_and_widens_the_grid_while_the_best_is_at_its_edge(tmp_path):
    spec = RunSpec(holdout=5000, **HERE)
    store = store_of(tmp_path, {0.375: 92.0, 0.75: 92.5, 1.5: 93.0, 3.0: 93.4, 6.0: 93.1, 12.0: 50.0}, spec)
    lines = []
    best, runs = experiments.tune(spec, (1.5, 0.375, 3.0, 0.75), store=store, log=lines.append)
    assert best == 3.0 and list(runs) == [0.375, 0.75, 1.5, 3.0, 6.0]  # one step past the edge, then inside
    assert all("(stored: " in line for line in lines) and len(lines) == 5  # read, nothing trained; 12 never asked
    inside = store_of(tmp_path, {0.375: 92.0, 0.75: 93.5, 1.5: 93.0, 3.0: None}, spec)  # 3.0 diverged
    best, runs = experiments.tune(spec, se.EXPERIMENT.grid, store=inside, log=lambda line: None)
    assert best == 0.75 and list(runs) == list(se.EXPERIMENT.grid)  # a diverged run is the worst, not an error


def test_tune_stops_widening_after_its_budget_even_at_the_edge(tmp_path):
    spec = RunSpec(holdout=5000, **HERE)
    store = store_of(tmp_path, {0.1875: 91.0, 0.09375: 91.5, 0.375: 90.0, 0.75: 89.0, 1.5: 88.0, 3.0: 87.0}, spec)
    best, runs = experiments.tune(spec, se.EXPERIMENT.grid, widen=1, store=store, log=lambda line: None)
    assert best == 0.1875 and min(runs) == 0.1875  # at the edge still: the caller sees it in the LRs tried
    best, runs = experiments.tune(spec, se.EXPERIMENT.grid, store=store, log=lambda line: None)
    assert best == 0.09375 and min(runs) == 0.09375


def test_the_arms_reuse_the_committed_held_out_runs_and_the_lessons_seeds_of_the_recipe():
    committed = experiments.load_store(experiments.REFERENCE)
    machine = dict(device="cpu", precision="bf16")  # where the committed runs trained
    for lr in (0.75, 1.5):
        spec = se.EXPERIMENT.arm_spec(se.EXPERIMENT.reference, holdout=se.EXPERIMENT.holdout, max_lr=lr, seed=se.EXPERIMENT.tuning_seed, **machine)
        assert spec.key in committed and committed[spec.key]["eval_split"] == "holdout 5000"
    for seed in se.EXPERIMENT.seeds:  # one cycle at the recipe's peak: the lesson's five stored seeds, not five new runs
        assert RunSpec(**{**se.EXPERIMENT.final_spec(se.EXPERIMENT.reference, 1.5, seed).__dict__, **machine}).key in committed
    cosine = se.EXPERIMENT.arm_spec("one cycle, cosine anneal", max_lr=0.75)
    assert cosine.argv(None, "out")[-2:] == ["--anneal_strategy", "cos"] and se.EXPERIMENT.final_spec("constant", 0.75, 0).max_lr == 0.75


def test_comparison_lines_give_each_arms_paired_difference_with_its_interval_and_count_the_comparisons():
    def runs(name, accuracies):
        return [stored(se.EXPERIMENT.arm_spec(name, seed=seed, **HERE), value) for seed, value in enumerate(accuracies)]

    results = {se.EXPERIMENT.reference: runs(se.EXPERIMENT.reference, [94.0, 93.8, 94.2]),
               "constant": runs("constant", [93.0, 92.9, 93.1]), "flat, then cosine": runs("flat, then cosine",
                                                                                              [94.1, 93.7, 94.3])}
    lines = se.comparison_lines(results)
    assert lines[1].startswith(f"{se.EXPERIMENT.reference:26s}  94.00%  0.20  3") and "[" not in lines[1]
    _, mean, low, high = experiments.paired(results["constant"], results[se.EXPERIMENT.reference])
    assert mean == pytest.approx(-1.0) and low < -1.0 < high and high < 0
    assert f"{mean:+.2f} [{low:+.2f}, {high:+.2f}]  -1.00, -0.90, -1.10" in lines[2]
    assert lines[-1] == ("2 comparisons with one cycle, linear anneal: with 2 intervals at 95%, the chance that "
                         "at least one misses its true difference is up to 10%")
    alone = se.comparison_lines({se.EXPERIMENT.reference: results[se.EXPERIMENT.reference]})
    assert alone == lines[:2]  # one arm: its line, and no count of comparisons that were not made


def test_plan_counts_an_arms_grid_while_it_tunes_then_its_seeds_at_the_pick_and_trains_nothing(tmp_path, capsys):
    store = tmp_path / "runs.json"
    se.main(["--store", str(store), "--reference", "", "--arms", "constant", "--plan"])  # one cycle too: the arms are compared with it
    line = capsys.readouterr().out
    assert line.startswith("8 runs on this machine (") and line.endswith(
        ": 0 stored, 0 read from another machine's runs, 8 to train (8 with no stored run of the same kind to "
        "time them by); 2 arms still tuning: their seeds come after\n") and not store.exists()
    experiment = replace(se.EXPERIMENT, arms=("constant",))
    for lr, accuracy in zip(experiment.grid, (91.0, 92.0, 91.5, 90.0)):
        spec = experiments.on_this_machine(experiment.arm_spec("constant", holdout=experiment.holdout, max_lr=lr))
        experiments.save_record(stored(spec, accuracy), store)
    assert ": 4 stored, 0 read from another machine's runs, 5 to train" in experiment.plan_line(store)  # seeds at 0.75


def test_a_small_experiment_names_its_runs_with_its_own_epochs_and_options():
    small = replace(se.EXPERIMENT, holdout=64, seeds=(0, 1), epochs=2, options=("--batch_size", "32"))
    spec = small.final_spec("one cycle, cosine anneal", 0.75, 1)
    assert spec.key == "speedrun onecycle max_lr=0.75 epochs=2 --batch_size 32 --anneal_strategy cos seed=1"
    assert small.tuning_spec("constant").key == "speedrun constant max_lr=recipe epochs=2 --batch_size 32 holdout=64 seed=0"
    cosine = small.recipe_of("one cycle, cosine anneal", 0.75)  # what its runs train with, as main.py makes it
    assert (cosine.scheduler, cosine.anneal_strategy, cosine.max_lr, cosine.epochs, cosine.batch_size) == (
        "onecycle", "cos", 0.75, 2, 32)
    assert se.EXPERIMENT.recipe_of(se.EXPERIMENT.reference, 1.5) == RECIPES["speedrun"]  # the recipe itself
    assert se.EXPERIMENT.recipe_of("warm-up, then step decay", 3.0).scheduler == "warmup_step"


def test_stored_pick_is_tunes_pick_from_the_stores_alone_and_none_while_a_run_is_missing(tmp_path):
    spec = RunSpec(holdout=5000, **HERE)
    store = store_of(tmp_path, {0.375: 92.0, 0.75: 92.5, 1.5: 93.0, 3.0: 93.4}, spec)
    assert experiments.stored_pick(spec, se.EXPERIMENT.grid, stores=(store,)) is None  # 6.0 is needed and not stored
    experiments.save_record(stored(RunSpec(**{**spec.__dict__, "max_lr": 6.0}), 93.1), store)
    before = store.read_bytes()
    best, runs = experiments.stored_pick(spec, se.EXPERIMENT.grid, stores=(store,))
    assert (best, list(runs)) == (3.0, [0.375, 0.75, 1.5, 3.0, 6.0]) and store.read_bytes() == before
    assert (best, runs) == experiments.tune(spec, se.EXPERIMENT.grid, store=store, log=lambda line: None)


def test_stored_runs_reads_each_arms_sweep_pick_and_seeds_and_trains_nothing(tmp_path):
    experiment = replace(se.EXPERIMENT, arms=(se.EXPERIMENT.reference, "constant"), seeds=(0, 1, 2))
    store = tmp_path / "runs.json"
    for lr, accuracy in zip(experiment.grid, (91.0, 92.0, 93.5, 93.0)):  # one cycle's sweep: pick 1.5, inside
        spec = experiment.arm_spec(experiment.reference, holdout=experiment.holdout, max_lr=lr, seed=0)
        experiments.save_record(stored(experiments.on_this_machine(spec), accuracy), store)
    for seed, accuracy in ((0, 94.0), (2, 93.8)):  # two of its three seeds at the pick
        spec = experiments.on_this_machine(experiment.final_spec(experiment.reference, 1.5, seed))
        experiments.save_record(stored(spec, accuracy), store)
    spec = experiment.arm_spec("constant", holdout=experiment.holdout, max_lr=0.75, seed=0)  # constant: 1 of 4
    experiments.save_record(stored(experiments.on_this_machine(spec), 92.2), store)
    before = store.read_bytes()
    held = experiment.stored_runs((store, None))
    pick, swept, seeds = held[experiment.reference]
    assert pick == 1.5 and list(swept) == list(experiment.grid) and [r["spec"]["seed"] for r in seeds] == [0, 2]
    assert held["constant"] == (None, {0.75: experiments.load_store(store)[experiments.on_this_machine(spec).key]}, [])
    assert store.read_bytes() == before
