"""The speedrun lesson's schedule experiment: does one cycle train better than other LR schedules?

Every arm is the speedrun recipe (10 epochs) with another schedule, and every arm gets the same tuning
budget: its peak LR swept over one grid on 5,000 held-out training images (seed 0; widened past an edge
when the best is there, ``experiments.tune``). Then each arm trains at its own pick with the same seeds
0-4 on the whole training set, and the test set reports them: each arm minus one cycle, seed by seed,
with a 95% t-interval (``experiments.paired``). Runs go into a store (``experiments``), so the experiment
stops and continues where it was; the test set chooses nothing.

    python schedule_experiment.py --data_dir $CIFAR10_DIR            # all of it that no store holds yet
    python schedule_experiment.py --plan                                # what is stored, what would train

New runs go to ``--store`` (default ``runs/speedrun_runs.json``); the committed runs are read from
``--reference`` (default ``Data/speedrun_runs.json``) and never written, as in ``experiments.py``.
"""
import argparse
import os
import sys
from dataclasses import dataclass, replace

import command_line
import experiments
from experiments import RunSpec
from recipes import RECIPES

ARMS = {  # name: (main.py --scheduler, further main.py options)
    "one cycle, linear anneal": ("onecycle", ()),  # the recipe's (airbench94's)
    "one cycle, cosine anneal": ("onecycle", ("--anneal_strategy", "cos")),  # OneCycleLR's and fastai's default
    "warm-up, then step decay": ("warmup_step", ()),  # the same warm-up, then x0.1 at 1/2 and 3/4 of the steps
    "constant": ("constant", ()),
    "flat, then cosine": ("flat_cosine", ()),  # fastai's fit_flat_cos
}


@dataclass(frozen=True)
class ScheduleExperiment:
    """Everything the experiment's runs are made of; ``EXPERIMENT`` is the lesson's, a SMOKE run makes a
    small one (fewer images held out, fewer epochs and seeds)."""
    arms: tuple = tuple(ARMS)           # names of ARMS, in the order reported
    reference: str = "one cycle, linear anneal"  # the lesson's schedule: every other arm is compared with it
    grid: tuple = (0.375, 0.75, 1.5, 3.0)        # peak LRs, x2 apart, the recipe's 1.5 inside
    holdout: float = 5000               # held-out training images (500 per class) that choose each arm's LR
    tuning_seed: int = 0
    seeds: tuple = (0, 1, 2, 3, 4)      # every arm at its pick, on the whole training set, reported on the test set
    epochs: int = None                  # None: the recipe's
    options: tuple = ()                 # further main.py options of every run
    recipe: str = "speedrun"

    def arm_spec(self, name, **fields):
        """The ``RunSpec`` of arm ``name`` (its scheduler and options) with ``fields`` (max_lr, seed, holdout...)."""
        scheduler, options = ARMS[name]
        return RunSpec(scheduler=scheduler, options=self.options + options, recipe=self.recipe, epochs=self.epochs,
                       **fields)

    def tuning_spec(self, name):
        """Arm ``name`` on the held-out split at the tuning seed, its max LR left for ``experiments.tune``."""
        return self.arm_spec(name, holdout=self.holdout, seed=self.tuning_seed)

    def tuned(self, names=None, **where):
        """``{arm: (its best LR, {LR: held-out record})}``: each arm's sweep (``experiments.tune``; ``where``: the
        store, reference store, data folder... of ``experiments.ensure``)."""
        return {name: experiments.tune(self.tuning_spec(name), self.grid, **where) for name in names or self.arms}

    def final_spec(self, name, max_lr, seed):
        """Arm ``name`` at its chosen LR on the whole training set. At the recipe's own peak the LR is left as
        the recipe's (``max_lr=recipe`` in the store), as the lesson's seeds of the recipe are named."""
        return self.arm_spec(name, max_lr=None if max_lr == RECIPES[self.recipe].max_lr else max_lr, seed=seed)

    def final_runs(self, picks, **where):
        """``{arm: [records of the seeds]}`` at each arm's pick (``{arm: LR}``), reported on the test set."""
        return {name: experiments.ensure([self.final_spec(name, lr, seed) for seed in self.seeds], **where)
                for name, lr in picks.items()}

    def stored_runs(self, stores, any_machine=False):
        """What ``stores`` hold of the experiment, training nothing (the lesson reads it; this script trains
        it): ``{arm: (its pick or None while its sweep is not stored whole, {LR: held-out record}, [test
        records of its seeds at the pick])}``; a sweep still running lists the grid's LRs stored so far."""
        def found(spec):
            return experiments.find(experiments.on_this_machine(spec), stores, any_machine)

        held = {}
        for name in self.arms:
            picked = experiments.stored_pick(self.tuning_spec(name), self.grid, stores=stores, any_machine=any_machine)
            if picked is None:
                sweep = {lr: found(replace(self.tuning_spec(name), max_lr=lr)) for lr in self.grid}
                held[name] = (None, {lr: record for lr, record in sweep.items() if record}, [])
                continue
            seeds = [found(self.final_spec(name, picked[0], seed)) for seed in self.seeds]
            held[name] = (*picked, [record for record in seeds if record])
        return held

    def recipe_of(self, name, max_lr):
        """The recipe that arm ``name`` trains with at ``max_lr``: its options applied as main.py applies them
        (for a figure of its schedule, ``recipes.schedule_lrs``)."""
        from main import build_parser, resolve_recipe

        scheduler, options = ARMS[name]
        args = build_parser().parse_args(["--recipe", self.recipe, "--scheduler", scheduler, "--max_lr", f"{max_lr:g}",
                                          *(["--epochs", str(self.epochs)] if self.epochs else []),
                                          *self.options, *options])
        args.model = RECIPES[self.recipe].model
        return resolve_recipe(args)

    def plan_line(self, store, reference=None, any_machine=False):
        """``experiments.plan_line`` of the runs the experiment needs: an arm's sweep, then, once its pick is
        stored, its seeds at the pick (an arm still tuning adds its grid only)."""
        specs, tuning = [], 0
        for name in self.arms:
            picked = experiments.stored_pick(self.tuning_spec(name), self.grid, stores=(store, reference),
                                             any_machine=any_machine)
            if picked is None:
                specs += [replace(self.tuning_spec(name), max_lr=lr) for lr in self.grid]
                tuning += 1
            else:
                specs += [*(experiments.spec_of(record).elsewhere() for record in picked[1].values()),
                          *(self.final_spec(name, picked[0], seed) for seed in self.seeds)]
        return experiments.plan_line(specs, store, reference, train_missing=not any_machine) + (
            f"; {tuning} arms still tuning: their seeds come after" if tuning else "")


EXPERIMENT = ScheduleExperiment()


def sweep_lines(sweeps):
    """One line per arm: its held-out accuracy at each LR tried and its pick."""
    return [f"{name:26s} " + ", ".join(f"{lr:g}: {experiments.accuracy(record)}" for lr, record in runs.items())
            + f"  -> {best:g}" for name, (best, runs) in sweeps.items()]


def comparison_lines(results, reference=EXPERIMENT.reference):
    """Each arm's test accuracy over its seeds, and its paired difference to ``reference`` with the 95%
    t-interval, then how many comparisons were made (each interval misses its true difference 5% of the
    time, so among several, one missing is likelier)."""
    lines = [f"{'arm':26s} {'mean':>7s} {'sd':>5s} {'n':>2s}  minus {reference}: mean [95% interval] per seed"]
    for name, records in results.items():
        mean, spread, n = experiments.summary(records)
        line = f"{name:26s} {mean:6.2f}% {spread:5.2f} {n:2d}"
        if name != reference:
            differences, middle, low, high = experiments.paired(records, results[reference])
            line += f"  {middle:+.2f} [{low:+.2f}, {high:+.2f}]  " + ", ".join(f"{d:+.2f}" for d in differences)
        lines.append(line)
    compared = len(results) - 1
    if compared:
        lines.append(f"{compared} comparisons with {reference}: with {compared} intervals at 95%, the chance that "
                     f"at least one misses its true difference is up to {1 - 0.95 ** compared:.0%}")
    return lines


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data_dir", help="CIFAR-10 folder (default: CIFAR10_DIR or ./data, as main.py)")
    experiments.store_arguments(parser)
    parser.add_argument("--arms", nargs="+", choices=list(ARMS), default=list(ARMS), metavar="ARM",
                        help=f"the arms to run (default: all: {', '.join(ARMS)})")
    parser.add_argument("--sweeps_only", action="store_true", help="tune the arms and stop before the seeds")
    parser.add_argument("--plan", action="store_true", help="say what is stored and what would train (an arm's seeds "
                        "once its pick is known), and stop")
    args = parser.parse_args(argv)
    # the reference arm always runs, and first: every other arm is compared with it
    experiment = replace(EXPERIMENT, arms=tuple(dict.fromkeys([EXPERIMENT.reference, *args.arms])))
    reference = experiments.reference_of(args.store, args.reference)
    where = dict(data_dir=args.data_dir or os.environ.get("CIFAR10_DIR"), store=args.store, reference=reference)
    if args.plan:
        print(experiment.plan_line(args.store, reference))
        return
    from training_run import USER_ERRORS

    try:
        sweeps = experiment.tuned(**where)
        print("\n".join(["held-out accuracy of each arm's peak LRs (seed 0):", *sweep_lines(sweeps)]))
        if args.sweeps_only:
            return
        results = experiment.final_runs({name: sweeps[name][0] for name in experiment.arms}, **where)
    except (KeyboardInterrupt, command_line.SettingsError, *USER_ERRORS) as error:
        sys.exit(f"schedule_experiment.py: {error}")
    print("\n".join(["test accuracy at each arm's pick, seeds " + ", ".join(map(str, experiment.seeds)) + ":",
                     *comparison_lines(results, experiment.reference)]))


if __name__ == "__main__":
    main()
