"""Two training recipes timed against each other on one machine: runs interleaved A B, B A, ..., each in a
fresh process, with a JSON report written after every run.

These shared machines drift by up to 2x within minutes, so only runs interleaved in one sitting compare:
a pair's second run swaps the order of the first, so drift hits both sides alike. A run's time is the
whole process (start-up, data, training, evaluation), measured from outside. ``benchmarks/airbench_cpu.py``
(airbench94 against the speedrun recipe) and ``benchmarks/fastai_imagenette.py`` (fastai's Imagenette
recipe against this repository's ResNet-50) are built on it.
"""
import json
import subprocess
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def timed(command, log):
    """Runs ``command`` in the repository root (its output streams through) and returns its wall-clock
    seconds; a failed run raises ``CalledProcessError``."""
    log(f"$ {' '.join(map(str, command))}")
    started = time.perf_counter()
    subprocess.run([str(part) for part in command], check=True, cwd=ROOT)
    return time.perf_counter() - started


def report_of(runs, names, settings, accuracy, pairs, finished):
    """The report over the runs so far: ``settings`` (what the comparison was measured with), the number of
    ``pairs`` asked for, every run,
    each side's mean seconds and mean ``accuracy`` (a run's key), and, with both sides, the ratio of the
    mean seconds, the second side's over the first's (``<second>_time_over_<first>_time``: the first is the
    reference), and each pair's. ``finished`` is False while pairs are still to run."""
    means = {}
    for name in names:
        side = [run for run in runs if run["name"] == name]
        if side:
            means[name] = {"seconds": sum(r["seconds"] for r in side) / len(side),
                           accuracy: sum(r[accuracy] for r in side) / len(side), "runs": len(side)}
    report = {**settings, "pairs": pairs, "finished": finished, "runs": runs, "means": means,
              "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())}
    if len(means) == 2:
        first, second = names
        report[f"{second}_time_over_{first}_time"] = means[second]["seconds"] / means[first]["seconds"]
        seconds = {(run["name"], run["seed"]): run["seconds"] for run in runs}
        report["pair_ratios"] = {str(seed): seconds[(second, seed)] / seconds[(first, seed)]
                                 for seed in sorted({run["seed"] for run in runs})
                                 if (first, seed) in seconds and (second, seed) in seconds}
    return report


def earlier_runs(output, settings, resume, log):
    """With ``resume``: the runs of the report at ``output`` (one stopped half-way, or one with fewer pairs),
    which the comparison keeps and does not repeat. A report measured with other ``settings`` (another
    machine, length, options) is refused: its times do not compare with new ones."""
    path = Path(output) if output else None
    if not resume or path is None or not path.exists():
        return []
    earlier = json.loads(path.read_text())
    theirs = {key: earlier.get(key) for key in settings}
    if theirs != settings:
        differs = ", ".join(f"{key} {theirs[key]!r} there, {settings[key]!r} here" for key in settings
                            if theirs[key] != settings[key])
        raise SystemExit(f"--resume: {path} was measured otherwise ({differs}); give another --output to start anew")
    log(f"--resume: keeping {len(earlier['runs'])} runs of {path} ({earlier['date']})")
    return list(earlier["runs"])


def compare(sides, names, pairs, first_seed, settings, accuracy, output=None, resume=False, log=print):
    """Runs ``pairs`` pairs of the ``sides`` named in ``names`` (``{name: side(seed, work_folder, log) ->
    run}``, a run a dict with ``name``, ``side`` (a description), ``seed``, ``seconds`` and the key
    ``accuracy``), pair p with seed ``first_seed + p``, in the order A B, then B A; with one name, that
    side's runs only. ``settings`` go into the report and must match for ``resume`` (``earlier_runs``). The report (``report_of``) is written
    to ``output`` after every run, so a comparison stopped half-way keeps the runs it finished."""
    runs = earlier_runs(output, settings, resume, log)
    done = {(run["name"], run["seed"]) for run in runs}

    def write(finished):
        so_far = report_of(runs, names, settings, accuracy, pairs, finished)
        if output:
            Path(output).parent.mkdir(parents=True, exist_ok=True)
            Path(output).write_text(json.dumps(so_far, indent=1) + "\n")
        return so_far

    with tempfile.TemporaryDirectory() as work:
        for pair in range(pairs):
            for name in names if pair % 2 == 0 else names[::-1]:
                if (name, first_seed + pair) in done:
                    continue
                runs.append(sides[name](first_seed + pair, Path(work), log))
                log(f"{runs[-1]['side']}, seed {runs[-1]['seed']}: {runs[-1][accuracy]:.2f}% ({accuracy}), "
                    f"{runs[-1]['seconds']:.0f} s")
                write(finished=False)
    report = write(finished=True)
    for name, mean in report["means"].items():
        log(f"{name}: {mean[accuracy]:.2f}% mean ({accuracy}), {mean['seconds']:.0f} s mean over {mean['runs']} runs")
    if "pair_ratios" in report:
        first, second = names
        each = ", ".join(f"seed {seed} {ratio:.3f}" for seed, ratio in report["pair_ratios"].items())
        log(f"{second} time / {first} time: {report[f'{second}_time_over_{first}_time']:.3f} (pairs: {each}; "
            f"{report['machine']})")
    if output:
        log(f"wrote {output}")
    return report
