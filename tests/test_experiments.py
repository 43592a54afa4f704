"""experiments.py: runs of main.py kept in a JSON store; a stored run is not repeated, an interrupted one
continues from its checkpoint, and a broken store or a failed run says so."""
import argparse
import json
import math
import statistics
from dataclasses import replace

import pytest
import torch

import experiments
from checkpoints import load_checkpoint
from experiments import RunSpec
from command_line import SettingsError
from precision import cpu_has_bf16
from tests.test_main import tiny_cifar  # noqa: F401 (a fixture)

TINY = ("--batch_size", "32", "--no-weight_average")


@pytest.fixture(scope="module")
def two_seeds(tiny_cifar, tmp_path_factory):  # noqa: F811
    """Two stored runs (seeds 0 and 1, 2 epochs, a checkpoint after each epoch) on the tiny CIFAR folder:
    ``(specs, records, store, work folder, log lines)``. The tests below check these two runs several ways
    instead of training their own."""
    folder = tmp_path_factory.mktemp("experiments")
    store, work = folder / "runs.json", folder / "work"
    specs = [RunSpec(max_lr=0.2, seed=seed, epochs=2, options=TINY + ("--save_every", "1")) for seed in (0, 1)]
    lines = []
    records = experiments.ensure(specs, tiny_cifar, store, work, log=lines.append)
    return [experiments.on_this_machine(spec) for spec in specs], records, store, work, lines


def test_a_run_is_stored_once_and_read_back_instead_of_trained_again(two_seeds, tiny_cifar, capsys):  # noqa: F811
    specs, first, store, work, _ = two_seeds
    assert [record["key"] for record in first] == [spec.key for spec in specs]
    here = f"device={specs[0].device} precision={specs[0].precision}"  # where this machine trains them
    assert specs[0].precision == ("bf16" if cpu_has_bf16() else "fp32") or specs[0].device == "cuda"
    assert specs[0].key == ("speedrun onecycle max_lr=0.2 epochs=2 --batch_size 32 --no-weight_average --save_every 1 "
                            f"{here} seed=0")
    record = first[0]
    assert len(record["test_acc"]) == 2 and record["final_acc"] == record["test_acc_tta"]  # the recipe's 6 views
    parts = sum(record["epoch_seconds"]) + record["tta_seconds"]  # each rounded to 0.01 s in the store
    assert record["seconds"] >= parts - 0.02 and parts > 0  # the whole run's clock holds its epochs and the TTA pass
    assert not record["resumed"] and record["machine"]
    assert record["command"].startswith("python main.py --recipe speedrun --scheduler onecycle --seed 0")
    assert f"--device {specs[0].device} --precision {specs[0].precision}" in record["command"]  # as its key says
    assert first[0]["test_acc"] != first[1]["test_acc"] or first[0]["train_acc"] != first[1]["train_acc"]  # seeds
    stored = json.loads(store.read_text())["runs"]
    assert sorted(run["key"] for run in stored) == sorted(spec.key for spec in specs)
    checkpoint = work / specs[0].key.replace(" ", "_").replace("=", "-") / "last.pt"
    written = checkpoint.stat().st_mtime_ns
    lines = []
    again = experiments.ensure(specs, tiny_cifar, store, work, log=lines.append)
    assert again == json.loads(json.dumps(first)) and checkpoint.stat().st_mtime_ns == written  # read back, not trained again
    assert lines[-1].startswith(specs[1].key + ": ") and "(stored: " in lines[-1]
    mean, spread, n = experiments.summary(again)
    assert n == 2 and mean == pytest.approx(sum(r["final_acc"] for r in first) / 2)
    capsys.readouterr()
    experiments.main_cli(["--store", str(store), "--reference", "", "--summary"])
    table = capsys.readouterr().out.splitlines()
    assert len(table) == 2 and table[1].endswith(
        f"speedrun onecycle max_lr=0.2 epochs=2 --batch_size 32 --no-weight_average --save_every 1 {here}: "
        f"0: {first[0]['final_acc']:.2f}, 1: {first[1]['final_acc']:.2f}")  # two seeds, one configuration
    assert table[1].split()[:3] == [f"{mean:.2f}%", f"{spread:.2f}", "2"]


def test_an_interrupted_run_continues_from_its_checkpoint_and_ends_as_a_straight_one(two_seeds, tiny_cifar,  # noqa: F811
                                                                                     tmp_path):
    specs, records, _, work, _ = two_seeds
    spec, straight = specs[0], records[0]
    folder = work / spec.key.replace(" ", "_").replace("=", "-")
    interrupted = tmp_path / "cut" / folder.name
    interrupted.mkdir(parents=True)
    (interrupted / "last.pt").write_bytes((folder / "epoch_1.pt").read_bytes())  # as if stopped after epoch 1
    resumed = experiments.run(spec, tiny_cifar, tmp_path / "b.json", tmp_path / "cut", log=print)
    assert resumed["resumed"] and "--resume" in resumed["command"]
    assert resumed["test_acc"] == straight["test_acc"] and resumed["final_acc"] == straight["final_acc"]
    a, b = (load_checkpoint(path / "last.pt")["model"] for path in (folder, interrupted))
    assert all(torch.equal(a[name], b[name]) for name in a)


def test_a_failed_run_and_a_broken_store_say_what_happened(tiny_cifar, tmp_path):  # noqa: F811
    from command_line import SettingsError

    with pytest.raises(SettingsError, match=r"run 'speedrun onecycle .*': argument --tta_views: invalid choice: 3"):
        experiments.run(RunSpec(epochs=1, options=("--tta_views", "3")), tiny_cifar, tmp_path / "s.json", tmp_path)
    assert not (tmp_path / "s.json").exists()
    broken = tmp_path / "broken.json"
    broken.write_text("{not json")
    with pytest.raises(ValueError, match="broken.json is not a store of runs .* move it away"):
        experiments.load_store(broken)


def test_compare_gives_the_difference_of_means_and_its_welch_standard_error():
    one_cycle = [{"final_acc": a} for a in (94.12, 93.98, 93.81, 94.13, 94.30)]
    cosine = [{"final_acc": a} for a in (93.92, 93.84, 93.79)]
    difference, error = experiments.compare(cosine, one_cycle)
    assert difference == pytest.approx(93.85 - 94.068)
    # sd 0.0656 over 3 runs, 0.1834 over 5: sqrt(0.0656²/3 + 0.1834²/5) = 0.0904
    assert error == pytest.approx(0.0904, abs=1e-4)
    assert experiments.compare(one_cycle, one_cycle)[0] == 0
    assert experiments.compare([{"final_acc": 92.7}], [{"final_acc": 90.73}]) == (pytest.approx(1.97), 0.0)


def test_seconds_leaves_out_runs_stored_without_them_and_resumed_runs():
    records = [{"seconds": 1000.0, "tta_seconds": 30.0}, {"seconds": 1100.0, "tta_seconds": 34.0},
               {"seconds": 300.0, "tta_seconds": 32.0, "resumed": True}, {"seconds": None}]
    assert experiments.seconds(records) == 1050.0  # the resumed run's 300 s are only its last part
    assert experiments.seconds(records, "tta_seconds") == 32.0  # its test-time augmentation ran whole
    assert math.isnan(experiments.seconds([{"seconds": None}]))
    assert experiments.clock(experiments.seconds([{"seconds": 300.0, "resumed": True}])) == "-"
    assert experiments.clock(1049.6) == "1050"



def test_a_holdout_run_trains_without_the_held_out_images_and_reports_on_them_not_on_the_test_set(
        two_seeds, tiny_cifar, tmp_path, capsys):  # noqa: F811
    spec = RunSpec(max_lr=0.2, seed=0, epochs=1, options=TINY + ("--tta_views", "1"), holdout=20)
    assert spec.key.endswith("--tta_views 1 holdout=20 seed=0") and "--holdout 20" in " ".join(spec.argv(None, "o"))
    record = experiments.run(spec, tiny_cifar, tmp_path / "runs.json", tmp_path / "work", log=print)
    held_out = capsys.readouterr().out
    assert "44 training images at 32px, evaluated on 20 held-out training images" in held_out
    assert record["eval_split"] == "holdout 20" and "  val loss " in held_out and "  test loss " not in held_out
    assert all(abs(acc * 20 / 100 - round(acc * 20 / 100)) < 1e-6 for acc in record["test_acc"])  # of 20 images
    _, tested, _, _, lines = two_seeds  # runs without a holdout: all 64 images trained, tested on the test set
    assert tested[0]["eval_split"] == "test" and "64 training images at 32px)" in "\n".join(lines)


def test_a_setting_of_the_run_among_the_further_options_is_refused_not_stored_under_another_name(capsys):
    with pytest.raises(ValueError, match="--epochs in the further options: give it as the run's own setting"):
        RunSpec(options=("--epochs", "8"))
    with pytest.raises(SystemExit):
        experiments.main_cli(["--seeds", "0", "--", "--max_lr=3"])
    assert "--max_lr=3 in the further options" in capsys.readouterr().err
    with pytest.raises(ValueError, match="--precision in the further options"):  # it is part of the run's name
        RunSpec(options=("--precision", "fp32"))
    assert RunSpec(epochs=8, options=("--no-weight_average",)).key == (
        "speedrun onecycle max_lr=recipe epochs=8 --no-weight_average seed=0")


def test_paired_differences_come_with_a_95_percent_t_interval_over_the_shared_seeds():
    def runs(values):
        return [{"spec": {"seed": seed}, "final_acc": value} for seed, value in values.items()]

    one_cycle = runs({0: 94.12, 1: 93.98, 2: 93.81, 3: 94.13})
    other = runs({0: 93.92, 1: 93.84, 2: 93.79})  # seed 3 not run: left out
    differences, mean, low, high = experiments.paired(other, one_cycle)
    assert differences == pytest.approx([-0.20, -0.14, -0.02])
    sd = statistics.stdev(differences)
    assert mean == pytest.approx(-0.12) and high - mean == pytest.approx(4.303 * sd / 3 ** 0.5)  # t(0.975, 2)
    assert low < mean < high < 0.2  # the interval holds 0 here: no difference shown
    with pytest.raises(ValueError, match="share no seed"):
        experiments.paired(runs({7: 93.0}), one_cycle)
    assert experiments.paired(runs({0: 93.0}), one_cycle)[2:] == (-math.inf, math.inf)


def test_the_command_line_writes_a_learners_store_and_reads_the_committed_one_beside_it():
    parser = argparse.ArgumentParser()
    experiments.store_arguments(parser)
    args = parser.parse_args([])
    ROOT = experiments.ROOT
    assert args.store == ROOT / "runs" / "speedrun_runs.json" and args.reference == ROOT / "Data" / "speedrun_runs.json"
    assert "runs/" in (ROOT / ".gitignore").read_text().split()  # a learner's runs never show up in git status
    assert experiments.reference_of(args.store, args.reference) == args.reference
    assert experiments.reference_of(args.reference, args.reference) is None  # a maintainer writing the committed store
    assert experiments.reference_of(args.store, "") is None


def test_list_says_which_stored_runs_had_a_setting_chosen_on_the_test_set(tmp_path, capsys):
    base = {"spec": {"seed": 0}, "final_acc": 93.0, "seconds": 1000.0, "machine": "AMD EPYC, 2 cores"}
    store = tmp_path / "runs.json"
    experiments.save_record({**base, "key": "speedrun constant max_lr=0.75 epochs=recipe seed=0",
                             "chosen_on": "test set"}, store)
    experiments.save_record({**base, "key": "speedrun onecycle max_lr=recipe epochs=recipe seed=0"}, store)
    experiments.save_record({**base, "key": "speedrun onecycle max_lr=recipe epochs=recipe seed=1", "resumed": True},
                            store)
    reference = tmp_path / "committed.json"
    experiments.save_record({**base, "key": "speedrun onecycle max_lr=recipe epochs=recipe seed=2"}, reference)
    experiments.main_cli(["--store", str(store), "--reference", str(reference), "--list"])
    heading, constant, one_cycle, resumed, reference_heading, committed = capsys.readouterr().out.splitlines()
    assert heading == f"{store}: 3 runs" and reference_heading == f"{reference}: 1 runs" and "seed=2" in committed
    assert constant.endswith("(AMD EPYC; its LR was chosen on the test set: it backs no claim)")
    assert one_cycle.split()[1:3] == ["1000", "s"] and one_cycle.endswith("(AMD EPYC)")
    assert "not timed whole  speedrun onecycle" in resumed  # a resumed run's seconds are only its last part's


def test_a_holdout_share_names_and_passes_the_share():
    spec = RunSpec(recipe="imagenet", holdout=0.1, epochs=5)
    assert spec.key == "imagenet onecycle max_lr=recipe epochs=5 holdout=0.1 seed=0"
    assert spec.argv(None, "out")[-2:] == ["--holdout", "0.1"]
    assert RunSpec(holdout=5000).key.endswith("holdout=5000 seed=0")  # the sweep's stored keys stay valid


def stored(spec, final_acc, seconds=1000.0):
    """A record of ``spec`` as ``experiments.run`` stores it (no training)."""
    return {"key": spec.key, "spec": {**spec.__dict__, "options": list(spec.options)}, "final_acc": final_acc,
            "seconds": seconds, "epoch_seconds": [seconds], "date": "2026-12-05 10:00 UTC",
            "machine": "AMD EPYC, 2 cores"}


@pytest.mark.skipif(torch.cuda.is_available(), reason="names runs as a CPU-only machine does")
def test_runs_are_named_by_device_and_precision_so_another_machines_run_is_never_taken_for_this_ones(tmp_path):
    here = experiments.on_this_machine(RunSpec(seed=0))
    assert here.device == "cpu" and here.precision == ("bf16" if cpu_has_bf16() else "fp32")  # no GPU in the tests
    assert experiments.on_this_machine(RunSpec(precision="fp32")).precision == "fp32"  # asked for: kept
    with pytest.raises(SettingsError, match="names device cuda, and this machine has no CUDA GPU"):
        experiments.on_this_machine(RunSpec(device="cuda"))
    gpu = replace(here, device="cuda", precision="fp16")
    reference = tmp_path / "committed.json"
    experiments.save_record(stored(gpu, 94.0), reference)
    experiments.save_record(stored(replace(here, seed=1), 93.5, seconds=600.0), reference)
    specs = [RunSpec(seed=0), RunSpec(seed=1), RunSpec(seed=2)]
    mine = tmp_path / "mine.json"
    here_, elsewhere, to_train = experiments.plan(specs, mine, reference)
    assert [s.seed for s in here_] == [1] and elsewhere == [] and [s.seed for s in to_train] == [0, 2]
    assert experiments.plan_line(specs, mine, reference) == (
        f"3 runs on this machine (cpu, {here.precision}): 1 stored, 0 read from another machine's runs, 2 to train, "
        "about 20 min at the pace of the stored runs")  # 2 x 600 s, the stored run of the same kind
    here_, elsewhere, to_train = experiments.plan(specs, mine, reference, train_missing=False)
    assert [s.seed for s in elsewhere] == [0] and [s.seed for s in to_train] == [2]  # the GPU's seed 0 read
    lines = []
    records = experiments.ensure(specs[:2], None, mine, tmp_path / "work", log=lines.append, reference=reference,
                                 train_missing=False)
    assert [r["final_acc"] for r in records] == [94.0, 93.5] and not mine.exists()  # nothing trained, nothing written
    assert lines[0].startswith(gpu.key + ": 94.00% (stored: ")  # the line names the device and precision it had
    assert experiments.plan_line([RunSpec(seed=5, epochs=3)], mine, reference).endswith(
        "1 to train (1 with no stored run of the same kind to time them by)")


def test_a_learners_new_runs_go_to_their_own_store_and_the_reference_store_is_never_written(
        two_seeds, tiny_cifar, tmp_path):  # noqa: F811
    specs, records, committed, work, _ = two_seeds
    before = committed.read_bytes()
    mine = tmp_path / "mine.json"
    third = replace(specs[0], seed=2, options=specs[0].options[:-2])  # without --save_every: a new run
    lines = []
    again = experiments.ensure([specs[0], third], tiny_cifar, mine, tmp_path / "work", log=lines.append,
                               reference=committed)
    assert again[0] == json.loads(json.dumps(records[0])) and "(stored: " in lines[0]  # read, not trained
    assert committed.read_bytes() == before  # the reference is only read
    assert list(experiments.load_store(mine)) == [third.key] and again[1]["key"] == third.key


def test_a_stored_runs_line_gives_its_time_only_where_it_was_timed_whole():
    timed = {"seconds": 1399.4, "resumed": False, "epoch_seconds": [280.0] * 5}
    assert experiments.run_time(timed) == "1399 s"
    assert experiments.run_time(dict(timed, seconds=None)) == "not timed whole"  # paused or slowed: no sum of parts
    assert experiments.run_time(dict(timed, resumed=True)) == "not timed whole"  # its seconds are the last part's


def test_a_run_whose_loss_diverges_is_stored_as_diverged_and_not_trained_again(
        tiny_cifar, tmp_path, capsys):  # noqa: F811
    store = tmp_path / "runs.json"
    spec = RunSpec(max_lr=1e30, seed=0, epochs=1, options=TINY + ("--tta_views", "1"))
    lines = []
    [record] = experiments.ensure([spec], tiny_cifar, store, tmp_path / "work", log=lines.append)
    assert record["final_acc"] is None and record["test_acc"] == []
    assert "the loss became nan at epoch 1" in record["diverged"]
    assert lines[-1].startswith(record["key"] + ": diverged in ")
    again = []
    read = experiments.ensure([spec], tiny_cifar, store, tmp_path / "work", log=again.append)
    assert read == json.loads(json.dumps([record]))
    assert again[-1].startswith(record["key"] + ": diverged (stored: ")  # read back, not trained again
    with pytest.raises(ValueError, match="no mean: 1 of 1 runs diverged"):
        experiments.summary([record])
    capsys.readouterr()
    experiments.main_cli(["--store", str(store), "--reference", "", "--summary"])
    assert capsys.readouterr().out.splitlines()[1].split()[:3] == ["-", "-", "1"]  # no mean that hides it
    experiments.main_cli(["--store", str(store), "--reference", "", "--list"])
    assert capsys.readouterr().out.splitlines()[1].split()[0] == "diverged"


def test_plan_on_the_command_line_says_what_would_train_and_trains_nothing(tmp_path, capsys):
    store = tmp_path / "runs.json"
    experiments.save_record(stored(experiments.on_this_machine(RunSpec(seed=1)), 93.0, seconds=900.0), store)
    experiments.main_cli(["--store", str(store), "--reference", "", "--seeds", "0", "1", "2", "--plan"])
    here = experiments.on_this_machine(RunSpec())
    assert capsys.readouterr().out == (f"3 runs on this machine (cpu, {here.precision}): 1 stored, 0 read from another "
                                       "machine's runs, 2 to train, about 30 min at the pace of the stored runs\n")
    assert list(experiments.load_store(store)) == [here.key.replace("seed=0", "seed=1")]  # nothing trained
