"""Whole training runs as experiments that are kept: each finished run of ``main.py`` (its settings,
accuracy per epoch, accuracy with test-time augmentation, seconds and machine) goes into a JSON store, so
a lesson can show dozens of runs without repeating them, and a long experiment can stop and continue.

A record may carry ``chosen_on`` ("test set"): its comparison picked a setting on the split that reports
it, so it stays for the record but backs no claim (``--list`` says so).

A run is named by a ``RunSpec`` (recipe, schedule, max LR, seed, epochs and any other ``main.py``
options, such as a trick switched off) and by where it trained: the device kind and the precision, filled
in for this machine when the spec leaves them open, so runs on a CPU in bf16 and on a GPU in fp16 never
share a name. ``ensure`` runs the specs the store does not hold yet, one after the other, and returns every
record; a run interrupted half-way continues from its last checkpoint (``main.py --resume``) the next
time. A lesson reads the repository's store as a read-only ``reference`` and keeps a learner's new runs
in a store of their own; ``plan`` says beforehand what would train. The command line does the same: it
reads the committed ``Data/speedrun_runs.json`` (``--reference``) and writes new runs to
``runs/speedrun_runs.json`` (``--store``), a folder git ignores. From a terminal:

    python experiments.py --data_dir $CIFAR10_DIR --seeds 0 1 2 --scheduler constant --max_lr 0.75
    python experiments.py --data_dir $CIFAR10_DIR --seeds 0 -- --no-weight_average   # a trick switched off
    python experiments.py --list                                                      # what the store holds
    python experiments.py --seeds 0 1 2 3 4 --plan                   # stored for this machine, or to train?
    python experiments.py --summary                                       # mean and spread over seeds
"""
import argparse
import json
import math
import os
import shlex
import statistics
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field, replace
from datetime import datetime, timezone
from pathlib import Path

import command_line

ROOT = Path(__file__).resolve().parent
REFERENCE = ROOT / "Data" / "speedrun_runs.json"  # the committed runs: read, written only when named as --store
STORE = ROOT / "runs" / "speedrun_runs.json"      # a learner's new runs


@dataclass(frozen=True)
class RunSpec:
    """One training run of ``main.py --recipe <recipe>``: what makes it differ from another run."""
    scheduler: str = "onecycle"
    max_lr: float = None            # None: the recipe's
    seed: int = 0
    epochs: int = None              # None: the recipe's
    options: tuple = field(default=())  # further main.py options, e.g. ("--no-weight_average",)
    recipe: str = "speedrun"
    holdout: float = 0              # >0: trained without, and evaluated on, this many held-out training images
    #                                 (below 1: this share of each class)
    device: str = None              # "cpu" or "cuda"; None: this machine's (``on_this_machine``)
    precision: str = None           # "bf16", "fp16" or "fp32"; None: this machine's fastest ("auto")

    SPEC_OPTIONS = ("--scheduler", "--max_lr", "--lr", "--seed", "--epochs", "--recipe", "--holdout", "--output_dir",
                    "--data_dir", "--device", "--precision")

    def __post_init__(self):
        named = [option for option in self.options if option.split("=")[0] in self.SPEC_OPTIONS]
        if named:  # in options they would train one run and store it under another name
            raise ValueError(f"{', '.join(named)} in the further options: give it as the run's own setting "
                             "(experiments.py --scheduler/--max_lr/--seeds/--epochs/--recipe/--holdout)")

    @property
    def key(self):
        """A readable, unique name: 'speedrun onecycle max_lr=recipe epochs=recipe seed=0'."""
        parts = [self.recipe, self.scheduler, f"max_lr={'recipe' if self.max_lr is None else f'{self.max_lr:g}'}",
                 f"epochs={'recipe' if self.epochs is None else self.epochs}", *self.options,
                 *([f"holdout={self.holdout:g}"] if self.holdout else []),
                 *([f"device={self.device}"] if self.device else []),
                 *([f"precision={self.precision}"] if self.precision else []), f"seed={self.seed}"]
        return " ".join(parts)

    def elsewhere(self):
        """The spec with where it trains left open: runs that differ only in device and precision share it."""
        return replace(self, device=None, precision=None)

    def argv(self, data_dir, output_dir):
        """The ``main.py`` arguments of this run."""
        args = ["--recipe", self.recipe, "--scheduler", self.scheduler, "--seed", str(self.seed), "--no_plots",
                "--output_dir", str(output_dir)]
        if data_dir:
            args += ["--data_dir", str(data_dir)]
        if self.max_lr is not None:
            args += ["--max_lr", f"{self.max_lr:g}"]
        if self.epochs is not None:
            args += ["--epochs", str(self.epochs)]
        if self.holdout:
            args += ["--holdout", f"{self.holdout:g}"]
        if self.device:
            args += ["--device", self.device]
        if self.precision:
            args += ["--precision", self.precision]
        return args + list(self.options)


def on_this_machine(spec):
    """``spec`` with its device and precision filled in as this machine runs it (CUDA when there is one; the
    precision ``auto`` picks there), so that its key says where it trained: a run on a GPU in fp16 and one
    on a CPU in bf16 are two runs, never one stored under the other's name."""
    import torch

    from precision import Precision, get_device

    device = get_device(spec.device or "auto")
    if device.type == "cuda" and not torch.cuda.is_available():
        raise command_line.SettingsError(f"run {spec.key!r}: it names device cuda, and this machine has no CUDA GPU")
    try:
        precision = Precision.resolve(device, spec.precision or "auto").name
    except ValueError as error:
        raise command_line.SettingsError(f"run {spec.key!r}: {error}") from None
    return replace(spec, device=device.type, precision=precision)


def load_store(path=STORE):
    """``{key: record}`` of every run the store holds (empty when there is no store yet)."""
    path = Path(path)
    if not path.exists():
        return {}
    try:
        runs = json.loads(path.read_text())["runs"]
    except (ValueError, KeyError) as error:
        raise ValueError(f"{path} is not a store of runs ({error}); move it away to start a new one") from error
    return {run["key"]: run for run in runs}


def save_record(record, path=STORE):
    """Add (or replace) one run's record in the store, written whole and then renamed, so an interrupted
    write never leaves half a file."""
    path = Path(path)
    runs = load_store(path)
    runs[record["key"]] = record
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_suffix(".json.part")
    partial.write_text(json.dumps({"runs": sorted(runs.values(), key=lambda run: run["key"])}, indent=1) + "\n")
    partial.replace(path)


def git_commit():
    """The repository's commit (with '+changes' when the tree differs from it), or None outside git."""
    try:
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True,
                                check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=ROOT,
                               capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return None
    return commit + ("+changes" if dirty else "")


def run(spec, data_dir=None, store=STORE, work_dir=None, log=print):
    """Train ``spec`` (``training_run.train_run``, in this process: its log lines appear here), store its
    record and return it. Checkpoints go to ``work_dir / <key>``; when that folder holds an unfinished run,
    this one resumes it (the record then says so: its seconds are the resumed part's). An interrupted run
    raises KeyboardInterrupt: the same call continues it. The run trains on this machine's device and
    precision unless ``spec`` names them (``on_this_machine``)."""
    from main import settings_from_argv
    from precision import get_device
    from training_run import train_run
    from training_utils import NonFiniteLossError
    from utils import describe_machine

    spec = on_this_machine(spec)
    work_dir = Path(work_dir or ROOT / "runs" / "experiments")
    output_dir = work_dir / spec.key.replace(" ", "_").replace("=", "-")
    argv = spec.argv(data_dir, output_dir)
    resumed = (output_dir / "last.pt").exists() and not (output_dir / "history.json").exists()
    argv += ["--resume", str(output_dir / "last.pt")] if resumed else ["--overwrite"]
    try:
        settings = settings_from_argv(argv)
    except command_line.SettingsError as error:  # before any work: which run, and why
        raise command_line.SettingsError(f"run {spec.key!r}: {error}") from None
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else None
    started = time.perf_counter()
    try:
        result = train_run(settings, log=log)
    except NonFiniteLossError as error:  # a result too: the net does not train at these settings
        history = {"test_acc": [], "train_acc": [], "eval_split": None, "epoch_time": []}
        record = make_record(spec, history, time.perf_counter() - started, resumed, load,
                             describe_machine(get_device(spec.device)))
        record["diverged"] = str(error)
    else:
        if result.interrupted:
            raise KeyboardInterrupt(f"{spec.key}: stopped; the same call continues it from its last checkpoint")
        record = make_record(spec, result.history, time.perf_counter() - started, resumed, load,
                             describe_machine(result.device))
    record["command"] = shlex.join(["python", "main.py", *argv]).replace(str(ROOT) + os.sep, "")
    save_record(record, store)
    log(f"{spec.key}: {accuracy(record)} in {record['seconds']:.0f} s (stored in {Path(store).name})")
    return record


def accuracy(record):
    """A record's final accuracy as text: '94.12%', or 'diverged' for a run whose loss became NaN."""
    return "diverged" if record["final_acc"] is None else f"{record['final_acc']:.2f}%"


def make_record(spec, history, seconds, resumed, load, machine):
    """A stored run: its spec, accuracies, times, machine, date and commit."""
    return {
        "key": spec.key, "spec": asdict(spec), "test_acc": history["test_acc"], "train_acc": history["train_acc"],
        "eval_split": history["eval_split"], "test_acc_tta": history.get("test_acc_tta"),
        "final_acc": history.get("test_acc_tta", history["test_acc"][-1] if history["test_acc"] else None),
        "epoch_seconds": [round(s, 2) for s in history["epoch_time"]],
        "tta_seconds": None if history.get("tta_seconds") is None else round(history["tta_seconds"], 2),
        "seconds": round(seconds, 2), "resumed": resumed, "machine": machine, "load_average_at_start": load,
        "date": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"), "commit": git_commit(),
    }


def ensure(specs, data_dir=None, store=STORE, work_dir=None, log=print, reference=None, train_missing=True):
    """The records of ``specs``, in order, as this machine runs them (``on_this_machine``): those ``store`` or
    the read-only ``reference`` store holds as they are (one line each says when and where they ran), the
    others trained now and stored in ``store``, never in ``reference``. With ``train_missing=False`` a run
    this machine lacks is read from another machine's run of the same settings (its line names the device
    and precision it had), and trained only when no machine's is stored. ``plan`` says beforehand which."""
    records = []
    for spec in specs:
        spec = on_this_machine(spec)
        record = find(spec, (store, reference), any_machine=not train_missing)
        if record is None:
            record = run(spec, data_dir, store, work_dir, log)
        else:
            log(f"{record['key']}: {accuracy(record)} (stored: {record['date']}, {run_time(record)} on "
                f"{record['machine'].split(',')[0]})")
        records.append(record)
    return records


def tune(spec, grid, widen=2, **where):
    """Choose ``spec``'s max LR on its held-out images: a run (``ensure``, with ``where``'s store, data folder
    and so on) at each LR of ``grid``, then, while the best is the largest or smallest LR tried, one more
    step beyond it at the grid's ratio (at most ``widen`` steps), so that the pick is inside the LRs tried.
    Returns ``(best LR, {LR: record})``, the LRs in increasing order; a diverged run counts as the worst.
    ``spec`` must hold images out (``holdout``): a choice made on the test set would be reported on it."""
    return _tune(spec, grid, widen, lambda specs: ensure(specs, **where))


def stored_pick(spec, grid, widen=2, stores=(), any_machine=False):
    """What ``tune`` returns, from the runs ``stores`` hold for this machine (or, with ``any_machine``, for
    another), training nothing; None while a run it needs is not stored."""
    def read(specs):
        found = [find(on_this_machine(one), stores, any_machine) for one in specs]
        if None in found:
            raise LookupError
        return found

    try:
        return _tune(spec, grid, widen, read)
    except LookupError:
        return None


def _tune(spec, grid, widen, records):
    """``tune`` with ``records(specs) -> [record]`` to run or read the specs."""
    if not spec.holdout:
        raise ValueError(f"{spec.key}: tune on held-out training images (holdout), never on the test set "
                         "that reports the result")
    grid = sorted(grid)
    if len(grid) < 3:
        raise ValueError(f"a grid of at least 3 LRs has a best value inside it; got {grid}")
    ratio = grid[1] / grid[0]
    runs = dict(zip(grid, records([replace(spec, max_lr=lr) for lr in grid])))

    def score(lr):
        return -math.inf if runs[lr]["final_acc"] is None else runs[lr]["final_acc"]

    for _ in range(widen):
        best, lrs = max(runs, key=score), sorted(runs)
        if best not in (lrs[0], lrs[-1]):
            break
        lr = float(f"{best * ratio if best == lrs[-1] else best / ratio:.4g}")
        runs[lr] = records([replace(spec, max_lr=lr)])[0]
    return max(runs, key=score), dict(sorted(runs.items()))


def spec_of(record):
    """The ``RunSpec`` a stored record was trained from."""
    return RunSpec(**{**record["spec"], "options": tuple(record["spec"]["options"])})


def find(spec, stores, any_machine=False):
    """The stored record of ``spec`` (its device and precision filled in) in the first of ``stores`` (paths,
    None skipped) that holds it; with ``any_machine``, else a record of the same settings on another device
    or precision; None when there is neither."""
    held = [load_store(path) for path in stores if path]
    for runs in held:
        if spec.key in runs:
            return runs[spec.key]
    if any_machine:
        for runs in held:
            for record in runs.values():
                if spec_of(record).elsewhere() == spec.elsewhere():
                    return record
    return None


def plan(specs, store=STORE, reference=None, train_missing=True):
    """What ``ensure`` would do with the same arguments, before it does: ``(here, elsewhere, to_train)``, the
    specs (as this machine runs them) stored for this machine, read from another machine's runs, and to be
    trained."""
    here, elsewhere, to_train = [], [], []
    for spec in map(on_this_machine, specs):
        record = find(spec, (store, reference), any_machine=not train_missing)
        (to_train if record is None else here if record["key"] == spec.key else elsewhere).append(spec)
    return here, elsewhere, to_train


def plan_line(specs, store=STORE, reference=None, train_missing=True):
    """``plan`` in words, with the time the runs to train take at the pace of the stored whole runs of the
    same recipe, epochs, device and precision (or that there are none to go by)."""
    here, elsewhere, to_train = plan(specs, store, reference, train_missing)
    if not specs:
        return "no runs"
    machine = on_this_machine(specs[0])
    line = (f"{len(specs)} runs on this machine ({machine.device}, {machine.precision}): {len(here)} stored, "
            f"{len(elsewhere)} read from another machine's runs, {len(to_train)} to train")
    if not to_train:
        return line
    stored = [*load_store(store).values(), *(load_store(reference).values() if reference else [])]
    pace = [seconds([record for record in stored if _same_kind(spec_of(record), spec)]) for spec in to_train]
    known = [value for value in pace if not math.isnan(value)]
    if len(known) < len(to_train):
        return line + f" ({len(to_train) - len(known)} with no stored run of the same kind to time them by)"
    return line + f", about {sum(known) / 60:.0f} min at the pace of the stored runs"


def _same_kind(a, b):
    """Runs whose time is alike: the same recipe, epochs, device and precision."""
    return (a.recipe, a.epochs, a.device, a.precision) == (b.recipe, b.epochs, b.device, b.precision)


def summary(records, field_name="final_acc"):
    """``(mean, standard deviation, n)`` of a field over records (the deviation is 0 for one record); a
    diverged run has no accuracy, so a group holding one has no mean (ValueError)."""
    values = [record[field_name] for record in records]
    if None in values:
        diverged = [record["key"] for record in records if record[field_name] is None]
        raise ValueError(f"no mean: {len(diverged)} of {len(values)} runs diverged ({', '.join(diverged)})")
    return statistics.mean(values), statistics.stdev(values) if len(values) > 1 else 0.0, len(values)


def compare(records, reference, field_name="final_acc"):
    """``(difference, standard error)``: the mean of ``records`` minus the mean of ``reference``, and the
    standard error of that difference from both groups' spreads (Welch's: ``sqrt(sd1²/n1 + sd2²/n2)``).
    A difference of two standard errors or more is unlikely to come from the seeds alone; the error is 0
    when neither group has two runs (no spread to go by), and then the difference proves nothing."""
    mean, spread, n = summary(records, field_name)
    reference_mean, reference_spread, reference_n = summary(reference, field_name)
    return mean - reference_mean, (spread ** 2 / n + reference_spread ** 2 / reference_n) ** 0.5


# the 97.5% quantile of Student's t with 1..30 degrees of freedom: the half-width of a 95% interval is
# T975[df] * sd / sqrt(n)
T975 = (12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228, 2.201, 2.179, 2.160, 2.145, 2.131,
        2.120, 2.110, 2.101, 2.093, 2.086, 2.080, 2.074, 2.069, 2.064, 2.060, 2.056, 2.052, 2.048, 2.045, 2.042)


def paired(records, reference, field_name="final_acc"):
    """The per-seed differences ``records`` minus ``reference`` over the seeds both hold, their mean and
    its 95% t-interval: ``(differences, mean, low, high)``. Pairing by seed removes what the two runs of
    a seed share (the same initial weights, data order and augmentations), so it needs fewer seeds than
    ``compare``. The interval is ``(-inf, inf)`` with fewer than two shared seeds."""
    by_seed = {record["spec"]["seed"]: record[field_name] for record in reference}
    differences = [record[field_name] - by_seed[record["spec"]["seed"]] for record in records
                   if record["spec"]["seed"] in by_seed]
    if not differences:
        raise ValueError("the two groups of runs share no seed")
    mean = statistics.mean(differences)
    if len(differences) < 2:
        return differences, mean, -math.inf, math.inf
    half = T975[min(len(differences) - 1, len(T975)) - 1] * statistics.stdev(differences) / len(differences) ** 0.5
    return differences, mean, mean - half, mean + half


def seconds(records, field_name="seconds"):
    """The mean of ``field_name`` (a run's wall-clock seconds, or its ``tta_seconds``) over the records
    that have it (runs stored before a field existed lack it); NaN when none has it. A resumed run's
    ``seconds`` are only its last part's, so it does not count towards the whole run's."""
    values = [record[field_name] for record in records
              if (timed_whole(record) if field_name == "seconds" else record.get(field_name) is not None)]
    return statistics.mean(values) if values else float("nan")


def timed_whole(record):
    """Whether a stored run's ``seconds`` time the whole run: not where it was paused or slowed by other work
    (``seconds`` None) or resumed (``seconds`` only its last part's)."""
    return record.get("seconds") is not None and not record.get("resumed")


def run_time(record):
    """A stored run's time as a line prints it: "1399 s" where ``timed_whole``, else "not timed whole"."""
    return f"{record['seconds']:.0f} s" if timed_whole(record) else "not timed whole"


def clock(value):
    """Seconds as a whole number, or "-" for NaN (``seconds`` of runs none of which was timed whole)."""
    return "-" if math.isnan(value) else f"{value:.0f}"


def groups(records):
    """``{configuration: [records]}``: runs that differ only in their seed, in the order first met. The
    configuration is the run's key without its seed ('speedrun constant max_lr=recipe epochs=recipe')."""
    grouped = {}
    for record in records:
        grouped.setdefault(record["key"].rsplit(" seed=", 1)[0], []).append(record)
    return grouped


def summary_lines(records):
    """One line per configuration: mean and standard deviation over its seeds, every seed's accuracy, and
    the mean seconds of a whole run."""
    lines = [f"{'mean':>7s} {'sd':>5s} {'runs':>4s} {'seconds':>8s}  configuration: accuracy per seed"]
    for name, runs in groups(records).items():
        each = ", ".join(f"{run['spec']['seed']}: {accuracy(run).rstrip('%')}" for run in runs)
        if any(run["final_acc"] is None for run in runs):  # no mean over the seeds that survived: it would flatter them
            lines.append(f"{'-':>7s} {'-':>5s} {len(runs):4d} {clock(seconds(runs)):>8s}  {name}: {each}")
            continue
        mean, spread, n = summary(runs)
        lines.append(f"{mean:6.2f}% {spread:5.2f} {n:4d} {clock(seconds(runs)):>8s}  {name}: {each}")
    return lines


def store_arguments(parser):
    """``--store`` and ``--reference``, as experiments.py and schedule_experiment.py take them."""
    parser.add_argument("--store", default=STORE, help="the JSON store new runs go to (default: "
                        f"{STORE.relative_to(ROOT)})")
    parser.add_argument("--reference", default=REFERENCE, help="a store read but never written (default: the "
                        f"committed runs, {REFERENCE.relative_to(ROOT)}; '' for none)")


def reference_of(store, reference):
    """The reference store to read beside ``store``: None when there is none or it is ``store`` itself (a
    maintainer adding runs to the committed store names it as ``--store``)."""
    if not reference or Path(reference).resolve() == Path(store).resolve():
        return None
    return reference


def list_lines(path):
    """A heading naming the store, then one line per stored run: accuracy, time, key, machine, and whether
    it backs a claim."""
    runs = load_store(path)
    lines = [f"{path}: {len(runs)} runs"]
    for key, record in runs.items():
        chosen = f"; its LR was chosen on the {record['chosen_on']}: it backs no claim" \
            if record.get("chosen_on") else ""
        lines.append(f"{accuracy(record):>7s}  {run_time(record):>15s}  {key}  ({record['machine'].split(',')[0]}"
                     f"{chosen})")
    return lines


def main_cli(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data_dir", help="CIFAR-10 folder (default: CIFAR10_DIR or ./data, as main.py)")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0], help="one run per seed (default: 0)")
    parser.add_argument("--scheduler", default="onecycle", help="main.py --scheduler (default: onecycle)")
    parser.add_argument("--max_lr", type=float, help="main.py --max_lr (default: the recipe's)")
    parser.add_argument("--epochs", type=int, help="main.py --epochs (default: the recipe's)")
    parser.add_argument("--recipe", default="speedrun", help="main.py --recipe (default: speedrun)")
    parser.add_argument("--holdout", type=command_line.holdout_size, default=0, help="main.py --holdout: tune on this many "
                        "held-out training images (or this share of each class) instead of the test set or val "
                        "folder (default: 0, report on those)")
    store_arguments(parser)
    parser.add_argument("--list", action="store_true", help="print what the store holds and stop")
    parser.add_argument("--plan", action="store_true", help="say which of the runs asked for the store holds for "
                        "this machine's device and precision and which would train, and stop")
    parser.add_argument("--summary", action="store_true",
                        help="print mean and spread over seeds of each configuration the store holds, and stop")
    parser.add_argument("options", nargs="*", help="after --: further main.py options")
    args = parser.parse_args(argv)
    reference = reference_of(args.store, args.reference)
    read = (args.store, reference) if reference else (args.store,)
    if args.list:
        print("\n".join(line for path in read for line in list_lines(path)))
        return
    if args.summary:
        print("\n".join(summary_lines([record for path in read for record in load_store(path).values()])))
        return
    data_dir = args.data_dir or os.environ.get("CIFAR10_DIR")
    try:
        specs = [RunSpec(args.scheduler, args.max_lr, seed, args.epochs, tuple(args.options), args.recipe, args.holdout)
                 for seed in args.seeds]
    except ValueError as error:
        parser.error(str(error))
    if args.plan:
        print(plan_line(specs, args.store, reference))
        return
    from training_run import USER_ERRORS

    try:
        records = ensure(specs, data_dir, args.store, reference=reference)
    except (KeyboardInterrupt, command_line.SettingsError, *USER_ERRORS) as error:
        sys.exit(f"experiments.py: {error}")
    try:
        mean, spread, n = summary(records)
    except ValueError as error:  # a run diverged: stored as such, a result like any other
        print(error)
        return
    print(f"mean {mean:.2f}% (standard deviation {spread:.2f}, {n} runs)")


if __name__ == "__main__":
    main_cli()
