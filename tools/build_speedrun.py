"""Writes CIFAR10_Speedrun.ipynb's cells (sources only; outputs come from executing it).

    python tools/build_speedrun.py                  # writes CIFAR10_Speedrun.ipynb
    python tools/build_speedrun.py /tmp/check.ipynb # elsewhere (to try it in SMOKE mode)
"""
import sys

from notebook_common import (CHECK_OUTPUT, DEVICE_SETTING, FIGURES_SETTING, SMOKE_SETTING, TRAINING_RECIPE, badge,
                             code, env_int, env_text, fresh_model, imports_cell, md, recipe_setting, settings_cell,
                             setup_cell_source, shown, smoke_folder, write_notebook)

SPEEDRUN_CPU_NOTE = ("No GPU in this runtime. Run all trains a range test and one 10-epoch run and reads the "
                     "dozens of other runs from the store (only missing ones train): 21 min on a 2-core CPU with "
                     "bf16 units (AVX-512 BF16; 17-19 min a run). A CPU without them trains in fp32, far slower: "
                     "an epoch took 737 s on an AVX2-only CPU, about two hours a run. No GPU has run this lesson "
                     "yet; to try one: Runtime > Change runtime type > T4 GPU.")
cells = [
md(badge("CIFAR10_Speedrun.ipynb") + """

# 94% on CIFAR-10 in 10 epochs: the speed tricks on top of one cycle, and what one cycle buys

The S10 lesson reached 94% on CIFAR-10 with David Page's ResNet in 24 epochs: 2.3 GFLOP per training
image, hours on a CPU. This lesson reaches about the same accuracy (94.07%, five seeds, at airbench94's
published peak) in **10 epochs of a smaller net, about an eighth of the arithmetic** (airbench94's 0.36
PFLOP for a whole run against S10's 2.7; a PFLOP is 10^15 floating-point operations), then uses the
speed for what the course has so far only asserted: it measures the one-cycle schedule against the
usual alternatives, over several seeds.

Nothing here is new research; it is two published lines of work, rebuilt in this repository's modules:
* David Page, ["How to train your ResNet"](https://myrtle.ai/learn/how-to-train-your-resnet/) (parts 1-8,
  [cifar10-fast](https://github.com/davidcpage/cifar10-fast)): the S10 net from 24 epochs down to 10 by
  measured changes, one at a time;
* Keller Jordan's [airbench94](https://github.com/KellerJordan/cifar10-airbench) (MIT licence): a 2-million
  weight net that reaches 94.01% (mean of 1000 runs) in 9.9 epochs, 3.8 s on an A100.

`recipes.SPEEDRUN` holds airbench94's settings in this repository's units; `custom_resnet.SpeedrunNet`
is its net; `batched_data` does its augmentation as tensor operations; `training_utils.LookaheadAverage`
its weight averaging. The same `fit` and `find_lr` as in S10 train and test it, and `main.py --recipe
speedrun` runs it from a terminal.

The lesson: the data on the device, the net and its whitening layer, the range test, the peak chosen on
held-out training images, one run by hand, five seeds, what each trick adds, and the experiment on
schedules."""),
code(setup_cell_source(SPEEDRUN_CPU_NOTE)),
md("""## Settings
The next cell holds what a run may change. To change a setting, in Colab as anywhere, edit its line
(`SEEDS = 3`) or set it in a cell above before running this one: `import os; os.environ["SEEDS"] = "3"`.
* `CIFAR10_DIR`: a folder with `train.npz`/`test.npz` or torchvision's files (default `./data`,
  downloading CIFAR-10 when it is missing);
* `EPOCHS`, `BATCH_SIZE`, `LR_ITER` (batches in the range test): the recipe's unless set;
* `SEEDS`: the seeds of the recipe at its chosen peak, and of every schedule in the experiment;
  `TRICK_SEEDS`: runs with each trick switched off; `HOLDOUT`: the training images held out (500 per
  class) on which every choice is made;
* `STORE`, `REFERENCE`, `TRAIN_MISSING`: runs through `experiments.py` are kept in a JSON store, named by
  their settings, device and precision. `REFERENCE` is the repository's store, only read; runs this
  machine trains go to `STORE`, never into `REFERENCE`. With `TRAIN_MISSING=0` (the default) a run this
  machine has not made is read from the repository's store when it holds one from another machine (its
  line names that machine); `TRAIN_MISSING=1` trains this machine's own. The cell below the settings
  says what Run all will train and about how long;
* `TRAIN_EXPERIMENT`: `1` trains the schedule experiment's missing runs in this notebook (hours); by
  default its section reads what the stores hold;
* `FIGURES`: where the figures go (`runs/figures`); those in `Data/` are the committed run's
  (`FIGURES=Data`), which a re-run leaves as they are.

(`SMOKE=1` makes a tiny run on generated images, which the tests use; its stored runs are tiny runs too.)"""),
code(settings_cell(
    """from dataclasses import replace

import numpy as np

import dataset
import schedule_experiment
from recipes import SPEEDRUN as recipe""",
    SMOKE_SETTING,
    env_text("CIFAR10_DIR", "data"),
    """if SMOKE:  # generated images in the CIFAR layout (256 training, 128 test), which main.py's runs read too
    CIFAR10_DIR = tempfile.mkdtemp()
    for split, train, count in (("train", True, 256), ("test", False, 128)):
        images, labels = dataset.load_cifar("synthetic", train=train)
        np.savez(os.path.join(CIFAR10_DIR, f"{split}.npz"), images=images[:count], labels=labels[:count])""",
    DEVICE_SETTING,
    recipe_setting("EPOCHS", smoke=2),
    recipe_setting("BATCH_SIZE", smoke=64),
    recipe_setting("LR_ITER", smoke=15),
    env_int("SEEDS", 5, smoke=2),
    env_int("TRICK_SEEDS", 1),
    env_int("HOLDOUT", 5000, smoke=64),
    'STORE = os.environ.get("STORE") or (os.path.join(tempfile.mkdtemp(), "runs.json") if SMOKE else '
    '"runs/speedrun_runs.json")  # yours',
    'REFERENCE = os.environ.get("REFERENCE") or ("tests/smoke_notebooks/speedrun_runs.json" if SMOKE else '
    '"Data/speedrun_runs.json")  # only read',
    'TRAIN_MISSING = os.environ.get("TRAIN_MISSING", "0") == "1"',
    'TRAIN_EXPERIMENT = os.environ.get("TRAIN_EXPERIMENT", "0") == "1"',
    FIGURES_SETTING,
    smoke_folder("CHECKPOINTS", "checkpoints/speedrun"),
    smoke_folder("RUNS_DIR", "runs/experiments", "the checkpoints of experiments.py's runs"),
    "SEED = 0  # the run by hand: the first of the seeds",
    "AIRBENCH_LR = recipe.max_lr  # the recipe's peak as published (airbench94's, in this repository's units)",
    """# every stored run of the lesson: the recipe with one schedule or another (schedule_experiment.py), with the
# main.py options beyond the recipe's that these settings give
EXPERIMENT = replace(schedule_experiment.EXPERIMENT, holdout=HOLDOUT, seeds=tuple(range(SEEDS)),
                     epochs=None if EPOCHS == recipe.epochs else EPOCHS,
                     options=() if BATCH_SIZE == recipe.batch_size else ("--batch_size", str(BATCH_SIZE)))
ONE_CYCLE = EXPERIMENT.reference  # the recipe's schedule: one cycle with a linear anneal""",
    'print(f"' + shown("EPOCHS", "BATCH_SIZE", "LR_ITER", "SEEDS", "TRICK_SEEDS", "HOLDOUT") + ' "\n'
    '      f"' + shown("TRAIN_MISSING", "TRAIN_EXPERIMENT") + " STORE={'a new file' if SMOKE and 'STORE' not in os.environ else STORE}\")")),
code(imports_cell("""import time

import torch

import experiments
import visualize
from batched_data import BatchedCifarLoader, TestTimeAugmentation
from custom_resnet import SpeedrunNet, patch_covariance, whitened_covariance
from lr_finder import find_lr
from precision import Precision, get_device
from recipes import build_criterion, build_optimizer, build_schedule, schedule_lrs
from seeding import seed_everything
from training_utils import LookaheadAverage, fit, test
from utils import count_parameters, describe_machine, model_summary""")),
md("""## What Run all will train
Every run of the lesson but two is read from the stores, or trained where they lack it
(`experiments.ensure`, with `STORE`, `REFERENCE` and `TRAIN_MISSING` from the settings); the range test
and the run by hand are always trained here. The next cell counts them before anything trains."""),
code("""WHERE = dict(data_dir=CIFAR10_DIR, store=STORE, work_dir=RUNS_DIR, reference=REFERENCE, train_missing=TRAIN_MISSING)


def runs(specs):
    \"\"\"The records of ``specs``: stored ones read, the others trained (experiments.ensure).\"\"\"
    return experiments.ensure(specs, **WHERE)


def lesson_runs():
    \"\"\"Every stored run the lesson's cells read, in their order: the held-out sweep (while it is not stored
    whole, its grid, with the grid's top standing in for the pick), the seeds at the pick, the recipe's seeds
    at airbench94's peak and the runs without each trick.\"\"\"
    tuning = EXPERIMENT.tuning_spec(ONE_CYCLE)
    picked = experiments.stored_pick(tuning, EXPERIMENT.grid, stores=(STORE, REFERENCE), any_machine=not TRAIN_MISSING)
    peak, tried = picked if picked else (max(EXPERIMENT.grid), EXPERIMENT.grid)
    recipe_seeds = [EXPERIMENT.final_spec(ONE_CYCLE, AIRBENCH_LR, seed) for seed in EXPERIMENT.seeds]
    return ([replace(tuning, max_lr=lr) for lr in tried] + [EXPERIMENT.final_spec(ONE_CYCLE, peak, seed) for seed in EXPERIMENT.seeds]
            + recipe_seeds + [without(options, seed) for options in TRICKS.values() for seed in range(TRICK_SEEDS)])


def points(value):
    \"\"\"A difference in points, two decimals, its sign always shown (+0.00, never -0.00).\"\"\"
    return f"{round(value, 2) + 0.0:+.2f}"


def without(options, seed):
    \"\"\"The recipe at airbench94's peak with a trick switched off by main.py ``options``.\"\"\"
    return replace(EXPERIMENT.final_spec(ONE_CYCLE, AIRBENCH_LR, seed), options=EXPERIMENT.options + options)


TRICKS = {  # each trick of the recipe and the main.py options that switch it off ("What each trick adds")
    "lookahead weight averaging": ("--no-weight_average",),
    "alternating flip (random flips instead)": ("--no-alternating_flip",),
    "64x LR for batch-norm biases": ("--bias_lr_scale", "1"),
    "label smoothing 0.2": ("--label_smoothing", "0"),
    "2-pixel translation": ("--crop_padding", "0"),
    "whitening bias trained 3 epochs": ("--whiten_bias_epochs", "0"),
}
planned = list(dict.fromkeys(lesson_runs()))  # a run two sections share is read (or trained) once
print(experiments.plan_line(planned, STORE, REFERENCE, TRAIN_MISSING))
print("besides: a range test and one run by hand, trained here; the schedule experiment: "
      + ("its missing runs trained here (TRAIN_EXPERIMENT)" if TRAIN_EXPERIMENT else "read from the stores"))"""),
md("""## The data, on the device
A `DataLoader` with Albumentations (S10) augments one image at a time in Python; at 10 epochs of a
cheap net that would cost more than the net. `BatchedCifarLoader` keeps the whole training set as one
uint8 tensor on the device and augments a batch at a time with tensor operations (Page's first change):
* **translation** by up to 2 pixels: reflect-pad by 2, then crop back to 32x32 at a random place;
* **alternating flip** (airbench): each image's first-epoch mirror choice is random, and after that it
  flips on every other epoch, so over any two epochs the net sees every image both ways; random flips
  leave a quarter of the images unmirrored (or mirrored) in two epochs.

Below, six training images over the first four epochs: the crops move at random, the mirroring
alternates."""),
code("""train_images, train_labels = dataset.load_cifar("cifar10", CIFAR10_DIR, train=True)
test_images, test_labels = dataset.load_cifar("cifar10", CIFAR10_DIR, train=False)
mean, std = dataset.channel_stats(train_images)
train_loader = BatchedCifarLoader(train_images, train_labels, BATCH_SIZE, mean, std, train=True, device=device,
                                  cutout_length=0, crop_padding=recipe.crop_padding, flip="alternating", seed=SEED)
test_loader = BatchedCifarLoader(test_images, test_labels, 1000, mean, std, train=False, device=device)
print(f"{len(train_labels)} training images, {len(test_labels)} test images; {len(train_loader)} steps of "
      f"{BATCH_SIZE} per epoch")

shown = torch.arange(6, device=device)
views, mirrored = [], []
for epoch in range(4):
    train_loader.set_epoch(epoch)
    views += list(train_loader.augment_batch(shown).cpu().numpy())
    mirrored.append(train_loader.first_flip ^ bool(epoch % 2))
train_loader.set_epoch(0)
both_ways = (mirrored[0] != mirrored[1]).float().mean().item()
print(f"images seen both ways over epochs 1 and 2: {both_ways:.0%}")
epochs_shown = [f"epoch {e + 1}" for e in range(4)]
visualize.plot_samples(views, [e for e in range(4) for _ in range(6)], epochs_shown, count=24, columns=6,
                       save_path=f"{FIGURES}/speedrun_flips.png")"""),
md("""## The net
`SpeedrunNet` is airbench94's net: no residual connections, three groups of two 3x3 convolutions at
64, 256 and 256 channels, each group halving the image with max-pooling, then a linear layer; about 2
million trained weights and 0.28 GFLOP per image forward (S10's ResNet: 6.6 million, 0.8 GFLOP). Three
of its parts come from Page's and Jordan's measurements:
* **batch norm with frozen scales** whose biases train at 64 times the LR (with the weight decay
  divided by 64). A PyTorch optimizer holds its weights in *param groups*, each with its own LR and
  weight decay; `recipes.parameter_groups` puts the batch-norm biases in a group of their own and marks
  it `lr_scale` 64, a factor that `OneCycleLR` and the range test multiply into the LR they set;
* **GELU** activations ([Hendrycks and Gimpel](https://arxiv.org/abs/1606.08415)), and logits
  multiplied by 1/9 before the softmax (as S10's by 0.125: a softer softmax, so the first steps do not
  make over-confident predictions);
* a frozen **patch-whitening** first layer (Page, part 8): its 2x2 filters are the eigenvectors of the
  covariance of the training images' 2x2 patches, each divided by the square root of its eigenvalue
  plus a small eps (5e-4), and their negatives (so the activation loses nothing). A direction of
  variance λ comes out with variance λ / (λ + eps): about 1 where λ is large, less where λ is near eps,
  so the eps keeps the faintest directions, mostly noise, from being blown up. The covariance cell
  below shows it: the outputs are uncorrelated, with variances from 0.54 (the faintest direction, λ
  about eps) to 1.00, not unit variance throughout.
  The first layer of a net learns something close to this anyway; computing it from 5,000 images saves
  the epochs that learning would take. Its bias trains for the first three epochs.

The next cell prints two counts. `count_parameters` counts the weights that train: 1,971,352.
torchsummary's table says 1,970,176, 1,176 fewer: it counts a layer's weight and bias as trainable only
if the weight trains, so the 1,152 batch-norm biases (which train) are listed as non-trainable beside
the 1,152 frozen scales (its 2,304); and it has no row for the whitening convolution, so it misses its
24 biases (which train for three epochs) and its 288 frozen filter weights."""),
code("""NUM_CLASSES = len(dataset.class_names("cifar10"))
model = precision.prepare(SpeedrunNet(num_classes=NUM_CLASSES))
whitening_images = train_loader.normalize(train_loader.images[:5000])
model.whiten.initialize(whitening_images)
print(f"trainable parameters: {count_parameters(model):,}")
model_summary(model, input_size=(3, 32, 32))""", metadata=CHECK_OUTPUT),
code("""before, after = patch_covariance(whitening_images), whitened_covariance(model.whiten, whitening_images)
off_diagonal = ~torch.eye(len(before), dtype=torch.bool, device=before.device)
for name, matrix in (("the images' 2x2 patches", before), ("the whitening layer's outputs", after)):
    print(f"covariance of {name}: diagonal {matrix.diagonal().min():.2f} to {matrix.diagonal().max():.2f}, "
          f"largest off-diagonal {matrix[off_diagonal].abs().max():.2f}")"""),
md("""## The range test
The range test ([Smith 2015, arXiv 1506.01186](https://arxiv.org/abs/1506.01186); fastai's
[`lr_find`](https://docs.fast.ai/callback.schedule.html#learner.lr_find)) trains for `LR_ITER` batches
while the LR grows exponentially, with the recipe's optimizer, loss, batch size and param groups (the
batch-norm biases at their 64x), and records the smoothed loss. Its four suggestions, as in the other
lessons: `steepest` (where the loss falls fastest), `valley` (fastai's: half-way down the longest fall),
`min_loss` (the LR of the lowest loss: the largest at which the loss still fell, Smith's upper bound
for the cycle) and `minimum` (`min_loss / 10`). Which of them, if any, is a good one-cycle peak for
this net is what the held-out sweep after it answers; the figure marks them all and chooses none."""),
code("""seed_everything(SEED)
probe = precision.prepare(SpeedrunNet(num_classes=NUM_CLASSES))
probe.whiten.initialize(whitening_images)
criterion = build_criterion(recipe)
lr_result = find_lr(probe, build_optimizer(recipe, probe, lr=recipe.lr_start), criterion, train_loader,
                    device=device, start_lr=recipe.lr_start, end_lr=recipe.lr_end, num_iter=LR_ITER,
                    precision=precision)
print(f"range test: {len(lr_result.all_lrs)} steps in {lr_result.seconds:.0f} s")
for name, value in lr_result.suggestions.items():
    print(f"{name:9s} {value:.3g}")
for warning in lr_result.warnings:
    print("note:", warning)
raw = np.convolve(visualize.raw_losses(lr_result.all_losses, lr_result.settings["smooth_f"]), np.ones(5) / 5, "valid")
print(f"the raw loss (5-step mean) is lowest at LR {lr_result.all_lrs[int(np.argmin(raw)) + 2]:.3g}; the smoothed "
      f"curve, an average over about {1 / lr_result.settings['smooth_f']:.0f} steps, lags behind it")
visualize.plot_lr_finder(lr_result, save_path=f"{FIGURES}/speedrun_lr_finder.png")"""),
md("""Two things make any rule on this curve only a starting point. The smoothing that makes the curve
readable averages the last twenty or so steps, and the LR grows by a large factor over twenty steps, so
the smoothed minimum sits to the right of the raw one. And the test lasts about two epochs' worth of
steps, while the run lasts ten, with a warm-up and an annealing the test never sees. Each draw of the
test also moves its suggestions: this repository's runs have drawn `min_loss` at 3.7 and at 5.7 with the
same settings."""),
md("""## The peak, chosen on held-out images
So the peak is chosen the direct way: whole 10-epoch one-cycle runs, one per peak of the grid 0.375,
0.75, 1.5, 3 (a factor 2 apart, airbench94's 1.5 inside), seed 0, trained on the training set less
`HOLDOUT` images (500 per class, always the same: `dataset.holdout_split`) and scored on those. The
test set plays no part: it reports the runs after this choice. Where the best peak is the grid's
largest or smallest, `experiments.tune` trains one more step beyond it, so the pick is inside the peaks
tried. On 5,000 images one run's accuracy has a binomial standard error of about 0.35 points near 93%,
so two runs' accuracies differ by about 0.5 points from the draw of the images alone; a gap smaller
than that does not rank two peaks."""),
code("""MAX_LR, sweep = experiments.tune(EXPERIMENT.tuning_spec(ONE_CYCLE), EXPERIMENT.grid, **WHERE)
print(f"\\n{'peak':>6s}  held-out  lowest epoch")
for lr, record in sweep.items():
    marks = ", ".join(mark for mark, hit in (("airbench94's", lr == AIRBENCH_LR), ("best: MAX_LR", lr == MAX_LR)) if hit)
    lowest = f"{min(record['test_acc']):11.2f}%" if record["test_acc"] else f"{'-':>12s}"
    print(f"{lr:6g}  {experiments.accuracy(record):>8s}  {lowest}" + (f"  ({marks})" if marks else ""))
edge = " (the edge of the peaks tried)" if MAX_LR in (min(sweep), max(sweep)) else ", inside the peaks tried"
print(f"MAX_LR = {MAX_LR:g}{edge}; the range test's suggestions (MAX_LR over each): "
      + ", ".join(f"{name} {lr:.3g} ({MAX_LR / lr:.2g})" for name, lr in lr_result.suggestions.items()))
visualize.plot_sweep([{"max_lr": lr, "test_acc": r["final_acc"]} for lr, r in sweep.items() if r["final_acc"]],
                     lr_result.suggestions, None, save_path=f"{FIGURES}/speedrun_holdout_sweep.png",
                     title=f"SpeedrunNet, {EPOCHS} one-cycle epochs, batch {BATCH_SIZE}, seed 0", split="held-out")"""),
md("""In the committed runs (seed 0, one run per peak): 0.375 90.72%, 0.75 92.48%, 1.5 93.18%, **3 93.46%**,
and 6, the step past the grid's edge, 85.44%: there the net unlearned while the LR rose (held-out 31.6%
after the first epoch, near chance after the third and fourth) and the annealing brought it back only
part of the way. So the pick is 3, inside the peaks tried, but 3 over 1.5 is +0.28 points, about half
the two runs' noise: the top is flat from 1.5 to 3 and falls off a cliff beyond. This lesson trains at
3, as its protocol says; the five seeds below show what that choice gave on the test set. The range
test's `min_loss` (3.74 in the committed test) lands 1.25x above the pick, in the flat top just below
the cliff; another draw's 5.7 lands beyond it. Here the range test marks where training breaks, and the
peak belongs somewhat below."""),
md("""## One run, by hand
The recipe's one cycle ([Smith 2018, arXiv 1803.09820](https://arxiv.org/abs/1803.09820)) at `MAX_LR`:
the LR rises linearly from 0.2x to 1x the peak over the first 23% of the steps (the **warm-up** lets the
fresh net reach a large LR without blowing up), then falls linearly to 0.07x (the **annealing**, where
most of the accuracy appears); the long stretch at a large LR in between regularises
([super-convergence, arXiv 1708.07120](https://arxiv.org/abs/1708.07120)). Momentum stays at 0.85
(Nesterov). Also on:
* **label smoothing** 0.2 ([Szegedy et al. 2016, arXiv 1512.00567](https://arxiv.org/abs/1512.00567)): the
  targets are 0.82 for the true class and 0.02 for the others, which keeps the net from growing its
  logits without end;
* **lookahead weight averaging** (airbench): every 5 steps a running average moves towards the weights,
  keeping a share 0.95^5 x (t/T)^3 of itself (t the step, T the last step), and the weights jump back to
  it; the run ends with the average. Early on that share is near 0, so the average follows the weights;
  at the end it is 0.95^5 = 0.77 per update, a memory of about 4 updates, the last 20 or so steps: a
  cheap ensemble of the run's last steps;
* **test-time augmentation**, 6 views (Page, airbench): the test images as they are, mirrored, and both
  shifted by a pixel each way, their logits averaged, the image and its mirror weighted a quarter each
  and the four shifted views an eighth each (airbench94's weights).

The run trains on all 50,000 training images and is scored on the test set; it has the settings of
the store's seed 0 below. The cell prints one line per epoch and the time of the whole run, evaluation
and augmentation included."""),
code(TRAINING_RECIPE + "\n" + fresh_model("SpeedrunNet(num_classes=NUM_CLASSES)") + """
model.whiten.initialize(whitening_images)
model.whiten.bias_train_steps = recipe.whiten_bias_epochs * len(train_loader)
optimizer = build_optimizer(recipe, model)
scheduler, per_batch = build_schedule(recipe, optimizer, len(train_loader))
average = LookaheadAverage(model, EPOCHS * len(train_loader))
started = time.perf_counter()
history = fit(model, device, train_loader, test_loader, optimizer, criterion, EPOCHS, scheduler,
              scheduler_per_batch=per_batch, precision=precision, checkpoint_dir=CHECKPOINTS, seed=SEED,
              weight_average=average)
tta = test(TestTimeAugmentation(model, recipe.tta_views), device, test_loader, criterion, precision=precision)
seconds = time.perf_counter() - started
print(f"peak LR {MAX_LR:g}: test accuracy {history['test_acc'][-1]:.2f}%, with {recipe.tta_views}-view test-time "
      f"augmentation {tta.acc:.2f}%; {seconds:.0f} s in all on {describe_machine(device).split(',')[0]}, {precision}")
visualize.plot_history(history, save_path=f"{FIGURES}/speedrun_curves.png")"""),
md("""## Five seeds
One run's accuracy moves by a few tenths of a point from seed to seed (published airbench94 runs have a
standard deviation of about 0.15 over many runs), so a claim rests on several. The same recipe at
`MAX_LR` through `main.py` (each seed draws its own initial weights, shuffling and augmentations), on
the whole training set, scored on the test set; the by-hand run above is seed 0's, which the cell
prints beside the store's. Then the same seeds at airbench94's published peak, 1.5, and the difference
seed by seed with its 95% t-interval: what the held-out choice gave on the test set. The test set
reports this; it chooses nothing (a peak picked here would be measured on the images that picked it)."""),
code("""full = runs([EXPERIMENT.final_spec(ONE_CYCLE, MAX_LR, seed) for seed in EXPERIMENT.seeds])
mean, spread, n = experiments.summary(full)
plain = experiments.summary([{"final_acc": record["test_acc"][-1]} for record in full])
print(f"\\npeak {MAX_LR:g}, {n} seeds: " + ", ".join(f"{r['spec']['seed']}: {r['final_acc']:.2f}%" for r in full))
print(f"mean {mean:.2f}% with test-time augmentation (standard deviation {spread:.2f}), {plain[0]:.2f}% without")
print(f"the run by hand: {tta.acc:.2f}%; the store's seed {SEED}: {full[SEED]['final_acc']:.2f}%")
print(f"a whole run: {experiments.clock(experiments.seconds(full))} s on average over the "
      f"{sum(map(experiments.timed_whole, full))} runs timed whole, on {full[0]['machine'].split(',')[0]}")
recipe_seeds = runs([EXPERIMENT.final_spec(ONE_CYCLE, AIRBENCH_LR, seed) for seed in EXPERIMENT.seeds])
if MAX_LR != AIRBENCH_LR:  # what the held-out choice gave on the test set, against the peak as published
    differences, middle, low, high = experiments.paired(full, recipe_seeds)
    print(f"airbench94's peak {AIRBENCH_LR:g}, the same seeds: {experiments.summary(recipe_seeds)[0]:.2f}%; {MAX_LR:g} minus "
          f"{AIRBENCH_LR:g}, seed by seed: " + ", ".join(points(d) for d in differences)
          + f"; mean {points(middle)} points, 95% interval [{points(low)}, {points(high)}]")"""),
md("""In the committed runs the five seeds at 3 average 93.46% (sd 0.07), below 94%, and trail airbench94's
1.5 on every seed: 3 minus 1.5 is -0.61 points, 95% interval [-0.79, -0.43]. The held-out sweep's +0.28
for 3 came from one pair of runs, half their noise, and it did not hold. What that says about tuning: a
one-seed sweep on 5,000 images ranks peaks a point or more apart (0.75 against 1.5, 3 against 6), not
peaks on a flat top; separating those takes more seeds per peak or more held-out images, given alike to
every alternative compared. The schedule experiment below gives every arm this same budget, so its
picks carry the same noise; the lesson reports what the protocol gives. `recipes.SPEEDRUN` keeps
airbench94's published 1.5 as its default, and the tricks below were measured at it.

## What each trick adds
Each row switches one trick off (a `main.py` option) and keeps the rest; the difference to the full
recipe is what that trick adds at 10 epochs. These runs were made at airbench94's peak (1.5) before
the held-out sweep chose 3, so the full recipe they are set against is the recipe at 1.5 over `SEEDS`
seeds (the second group of seeds above). One run per row unless `TRICK_SEEDS` says more, so read the table
with the seeds' standard deviation: one run differs from the mean by up to about twice that from chance
alone, and a smaller difference is not a finding.

The cell after the table puts each difference in **standard errors**. A standard error is the standard
deviation a number would have from the seeds' noise alone; for one run against the mean of n seeds, a
difference's standard error is sd x sqrt(1 + 1/n), and a trick that did nothing would rarely land more
than two of them away. Test-time augmentation needs no extra run: each run records its accuracy with
and without, so its gain is measured on the same weights. The seconds are the mean of a row's runs
timed whole (training, evaluation and test-time augmentation)."""),
code("""def timing(records):
    \"\"\"The mean time of ``records`` timed whole, and how many were.\"\"\"
    timed = sum(map(experiments.timed_whole, records))
    return f"{experiments.clock(experiments.seconds(records))} s ({timed} of {len(records)} timed whole)" if timed \\
        else f"not timed whole (0 of {len(records)})"


base, base_spread, base_n = experiments.summary(recipe_seeds)
base_plain = experiments.summary([{"final_acc": record["test_acc"][-1]} for record in recipe_seeds])[0]
trick_runs = {trick: runs([without(options, seed) for seed in range(TRICK_SEEDS)]) for trick, options in TRICKS.items()}
print(f"\\nthe recipe at peak {AIRBENCH_LR:g}, each trick switched off:")
print(f"{'without':40s} {'accuracy':>9s} {'adds':>6s} {'runs':>4s}  time of a run")
print(f"{'(nothing: the full recipe)':40s} {base:8.2f}% {'':>6s} {base_n:4d}  {timing(recipe_seeds)}")
tta_seconds = experiments.seconds(recipe_seeds, "tta_seconds")
print(f"{'test-time augmentation':40s} {base_plain:8.2f}% {points(base - base_plain):>6s} {base_n:4d}  "
      f"the same runs; its own cost {experiments.clock(tta_seconds)} s a run")
for trick, records in trick_runs.items():
    accuracy = experiments.summary(records)[0]
    print(f"{trick:40s} {accuracy:8.2f}% {points(base - accuracy):>6s} {len(records):4d}  {timing(records)}")"""),
code("""def measured(records):
    \"\"\"``(points the trick adds, their standard error, the verdict)`` of a trick's runs against the recipe's seeds;
    the error is 0 where the recipe's seeds agree exactly (possible on a few hundred test images): no noise to
    measure against, and no verdict.\"\"\"
    adds = base - experiments.summary(records)[0]
    error = base_spread * (1 / len(records) + 1 / base_n) ** 0.5
    verdict = ("the recipe's seeds agree exactly, so there is no standard error" if not error else
               "helps beyond the seeds' noise" if adds > 2 * error else
               "costs beyond the seeds' noise" if adds < -2 * error else "not told apart from the seeds' noise")
    return adds, error, verdict


gains = [record["final_acc"] - record["test_acc"][-1] for record in recipe_seeds]  # the same runs with and without
print(f"* test-time augmentation: {points(np.mean(gains))} points on average over the {base_n} runs ({points(min(gains))} "
      f"to {points(max(gains))}): the same weights measured both ways, so the seeds' noise does not enter")
for trick, records in trick_runs.items():
    adds, error, verdict = measured(records)
    print(f"* {trick}: {points(adds)} points" + (f", {abs(adds) / error:.1f} standard errors" if error else "")
          + f": {verdict}")"""),
md("""What the tricks table shows, in the committed runs (one run per trick; a store of your own gives your own):
* **Three tricks pay clearly at 10 epochs**: lookahead weight averaging (about a point), the 64x LR for
  the batch-norm biases (about three quarters of a point) and test-time augmentation (about eight
  tenths, measured on the same runs, so the seeds' noise does not enter). Without any one of them, the
  run stays below 94%.
* **The other four are not told apart from the seeds' noise**, one run each: label smoothing, the
  translation and the whitening bias's training each add a quarter of a point or less, and the alternating
  flip nothing visible. Gains of a tenth of a point are real in published work (Page's label smoothing
  saved one epoch of 24; airbench's figures are means of many runs), but seeing one takes tens of runs
  per row: the standard error of a difference of two means of n runs is 0.18 x sqrt(2/n) points here.
* **Time**: test-time augmentation costs 33 to 42 s a run (its six forward passes over the test
  images; the stored runs' `tta_seconds`). The other tricks' costs were not measured apart: whole runs of
  one configuration differed here by more than a trick could cost (the recipe's runs timed whole span
  over 100 s), so single runs cannot show a cost of seconds."""),
md("""## The experiment: one cycle against other schedules
The course says one cycle trains better than the usual alternatives; here that is put to the test
(`schedule_experiment.py`, `recipes.build_schedule`). The same net, tricks and 10 epochs, with five
schedules, named for what they are:
* **one cycle, linear anneal**: the recipe's (airbench94's), as above;
* **one cycle, cosine anneal**: the same warm-up, then half a cosine down; PyTorch's `OneCycleLR` by
  default and fastai's `fit_one_cycle`, so "one cycle" in most code means this one;
* **warm-up, then step decay**: the same warm-up, then the peak divided by 10 at half and at three
  quarters of the steps, the classic schedule of ResNet papers;
* **constant**: one LR throughout, no warm-up, no annealing;
* **flat, then cosine**: the peak from the first step for 75% of the steps, then a cosine to zero
  (fastai's `fit_flat_cos`, its Imagenette leaderboard's schedule).

**The same tuning budget for every arm**: its LR over the same grid (0.375 to 3, widened past an edge
where its best is there) on the same held-out images, seed 0, as the one-cycle sweep above. Then every
arm at its own pick over the **same seeds** on the whole training set, scored on the test set, and
each arm minus one cycle, seed by seed: the mean of those paired differences with a 95% t-interval
(`experiments.paired`; pairing removes what a seed's runs share: initial weights, data order,
augmentations). Four comparisons with one cycle are made, so among four 95% intervals one may miss its
true difference with a chance of up to 19%.

The experiment is about 45 runs, 13 hours on the 2-core CPU, so this notebook reads its runs from the
stores (`TRAIN_EXPERIMENT=1` trains the missing ones here) and `schedule_experiment.py` trains them,
stopping and continuing where it was:
`python schedule_experiment.py --data_dir <cifar10> --store runs/speedrun_runs.json --reference Data/speedrun_runs.json`.
The cell prints what the stores hold: each arm's sweep, its pick, its seeds, then the comparison of the
arms whose seeds are all stored."""),
code("""if TRAIN_EXPERIMENT:  # every arm's sweep, then its seeds at its pick: the runs the stores lack are trained
    picks = {name: pick for name, (pick, _) in EXPERIMENT.tuned(**WHERE).items()}
    EXPERIMENT.final_runs(picks, **WHERE)
held = EXPERIMENT.stored_runs((STORE, REFERENCE), any_machine=not TRAIN_MISSING)
print(f"{'arm':26s} held-out accuracy of each peak (seed 0) -> pick; test accuracy at the pick")
for name, (pick, swept, seeds) in held.items():
    tried = ", ".join(f"{lr:g}: {experiments.accuracy(r)}" for lr, r in swept.items()) or "nothing stored"
    chosen = f" -> {pick:g}" if pick is not None else f" (sweep not complete: {len(swept)} of {len(EXPERIMENT.grid)} stored)"
    tested = (f"; {experiments.summary(seeds)[0]:.2f}% mean of {len(seeds)} of {len(EXPERIMENT.seeds)} seeds" if seeds
              else "; no seed stored" if pick is not None else "")
    print(f"{name:26s} {tried}{chosen}{tested}")
print(EXPERIMENT.plan_line(STORE, REFERENCE, any_machine=not TRAIN_MISSING))
results = {name: seeds for name, (pick, _, seeds) in held.items() if len(seeds) == len(EXPERIMENT.seeds)}
if ONE_CYCLE in results and len(results) > 1:
    print("\\n".join(["", *schedule_experiment.comparison_lines(results, ONE_CYCLE)]))
else:
    print("no arm but one cycle has all its seeds stored yet: no comparison to print")"""),
code("""shapes = {name: schedule_lrs(EXPERIMENT.recipe_of(name, pick), len(train_loader))
          for name, (pick, _, _) in held.items() if pick is not None}
curves = {name: [record["test_acc"] for record in seeds] for name, (_, _, seeds) in held.items() if seeds}
visualize.plot_schedule_comparison({f"{name} ({held[name][0]:g})": lrs for name, lrs in shapes.items()},
                                   {f"{name} ({held[name][0]:g})": accs for name, accs in curves.items()},
                                   save_path=f"{FIGURES}/speedrun_schedules.png")"""),
md("""What the stores hold at this commit: one cycle's sweep and its seeds at its pick; the other arms'
sweeps are training (`python schedule_experiment.py --plan` says which runs are left). The comparison,
and what it supports, is written here when every arm's seeds are stored. The earlier comparison of
schedules, whose peaks were chosen on the test set that reported them, stays in the store, marked
`chosen_on` (`python experiments.py --list` says "backs no claim"), and backs nothing in this lesson."""),
md("""## Against airbench94, on the same machine
`benchmarks/airbench_cpu.py` runs Keller Jordan's public `airbench94.py`, ported to the CPU with the
fewest changes (bf16 autocast where the CPU has bf16 units, wall-clock timers), and this recipe through
`main.py`, in turns (A B, then B A, each run a fresh process, so that a drift of the machine's speed hits
both sides alike), and keeps every run in `Data/airbench_cpu.json`. It takes an hour or more on a CPU,
so the notebook reads its report rather than starting it:"""),
code("""import json
from pathlib import Path

comparison = Path("Data/airbench_cpu.json")
if comparison.exists():
    report = json.loads(comparison.read_text())
    for run in report["runs"]:
        print(f"{run['side']:38s} seed {run['seed']}: {run['accuracy_tta']:.2f}% with TTA, {run['seconds']:.0f} s whole")
    if "speedrun_time_over_airbench_time" in report:
        print(f"this recipe's time / airbench94's: {report['speedrun_time_over_airbench_time']:.3f} "
              f"({report['machine']}, {report['date']}" + ("" if report.get("finished", True) else ", unfinished") + ")")
else:
    print("no comparison stored: python benchmarks/airbench_cpu.py --airbench <airbench94.py> --data_dir <cifar10>")"""),
md("""## What this lesson showed
Each line is computed from the runs above."""),
code("""print(f"* The range test: " + ", ".join(f"{name} {lr:.3g}" for name, lr in lr_result.suggestions.items())
      + f"; the held-out sweep picked {MAX_LR:g} of " + ", ".join(f"{lr:g}" for lr in sweep) + ".")
print(f"* The recipe at {MAX_LR:g}: {mean:.2f}% test accuracy, mean of {n} seeds (sd {spread:.2f}), in {EPOCHS} epochs "
      f"({'at least' if mean >= 94 else 'below'} 94%); the run by hand {tta.acc:.2f}% in {seconds:.0f} s on "
      f"{describe_machine(device).split(',')[0]}, {precision}.")
clear = {trick: measured(records)[0] for trick, records in trick_runs.items()
         if measured(records)[2] == "helps beyond the seeds' noise"}
print(f"* Tricks that help beyond the seeds' noise (at {AIRBENCH_LR:g}): test-time augmentation ({points(np.mean(gains))}, "
      f"the same runs)" + "".join(f", {trick} ({points(adds)})" for trick, adds in clear.items()) + ".")
if len(results) > 1 and ONE_CYCLE in results:
    for name, records in results.items():
        if name != ONE_CYCLE:
            _, middle, low, high = experiments.paired(records, results[ONE_CYCLE])
            print(f"* {name} minus one cycle: {points(middle)} points, 95% interval [{points(low)}, {points(high)}]")
else:
    print(f"* The schedule experiment: {sum(len(seeds) == len(EXPERIMENT.seeds) for seeds in results.values())} of "
          f"{len(held)} arms have all their seeds stored; no comparison yet.")"""),
md("""## What to try next
* `python experiments.py --data_dir <cifar10> --store runs/mine.json --seeds 0 1 2 --epochs 8 --max_lr 3`:
  fewer epochs, and how much accuracy each one costs (in a store of your own).
* `python main.py --recipe speedrun --max_lr 3 --anneal_strategy cos`: the cosine-shaped one cycle.
* A GPU: the cells are written to run there unchanged (bf16 on compute capability 8.0 and up, fp16
  with a GradScaler below), though no GPU has run this lesson yet; airbench94 itself trains in 3.8 s on
  an A100."""),
]
write_notebook(cells, sys.argv[1] if len(sys.argv) > 1 else "CIFAR10_Speedrun.ipynb")
