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
image, hours on a CPU. This lesson reaches the same accuracy in **10 epochs of a smaller net, about an
eighth of the arithmetic** (airbench94's 0.36 PFLOP for a whole run against S10's 2.7; a PFLOP is 10^15
floating-point operations), then uses the
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

The lesson: the data on the device, the net and its whitening layer, the range test and a sweep that
checks it, one run by hand, five seeds, what each trick adds, and the experiment on schedules."""),
code(setup_cell_source(SPEEDRUN_CPU_NOTE)),
md("""## Settings
The next cell holds what a run may change. To change a setting, in Colab as anywhere, edit its line
(`SEEDS = 3`) or set it in a cell above before running this one: `import os; os.environ["SEEDS"] = "3"`.
* `CIFAR10_DIR`: a folder with `train.npz`/`test.npz` or torchvision's files (default `./data`,
  downloading CIFAR-10 when it is missing);
* `SEEDS`: runs of the full recipe; `EXPERIMENT_SEEDS`: runs of each other schedule; `TRICK_SEEDS`:
  runs with each trick switched off;
* `STORE`: the file of stored runs. Every run through `experiments.py` is kept there with its accuracy,
  seconds, machine and date; a cell that needs runs trains only those the file lacks, so re-running the
  notebook costs the by-hand run and the range test. The repository's file holds the runs behind the
  outputs below; point `STORE` to a new file to measure everything on your own machine.
* `FIGURES`: where the figures go (`runs/figures`); those in `Data/` are the committed run's
  (`FIGURES=Data`), which a re-run leaves as they are.

(`SMOKE=1` makes a tiny run on generated images, which the tests use.)"""),
code(settings_cell(
    """import numpy as np

import dataset
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
    env_int("EXPERIMENT_SEEDS", 3, smoke=1),
    env_int("TRICK_SEEDS", 1),
    'STORE = os.path.join(tempfile.mkdtemp(), "runs.json") if SMOKE else os.environ.get("STORE", "Data/speedrun_runs.json")',
    FIGURES_SETTING,
    smoke_folder("CHECKPOINTS", "checkpoints/speedrun"),
    smoke_folder("RUNS_DIR", "runs/experiments", "the checkpoints of experiments.py's runs"),
    "SEED = 0",
    """# what every stored run shares with this notebook's settings (main.py options beyond the recipe's)
RUN = {"epochs": None if EPOCHS == recipe.epochs else EPOCHS,
       "options": () if BATCH_SIZE == recipe.batch_size else ("--batch_size", str(BATCH_SIZE))}""",
    'print(f"' + shown("EPOCHS", "BATCH_SIZE", "LR_ITER", "SEEDS") + ' "\n'
    '      f"' + shown("EXPERIMENT_SEEDS", "TRICK_SEEDS") + " STORE={'a new file' if SMOKE else STORE}\")")),
code(imports_cell("""import time
from dataclasses import replace

import torch

import experiments
import visualize
from batched_data import BatchedCifarLoader, TestTimeAugmentation
from custom_resnet import SpeedrunNet, patch_covariance, whitened_covariance
from experiments import RunSpec
from lr_finder import find_lr
from precision import Precision, get_device
from recipes import build_criterion, build_optimizer, build_schedule, schedule_lrs
from seeding import seed_everything
from training_utils import LookaheadAverage, fit, test
from utils import count_parameters, describe_machine, model_summary""")),
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
code("""train_images, train_labels = dataset.load_cifar("synthetic" if SMOKE else "cifar10", CIFAR10_DIR, train=True)
test_images, test_labels = dataset.load_cifar("synthetic" if SMOKE else "cifar10", CIFAR10_DIR, train=False)
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
code("""NUM_CLASSES = len(dataset.class_names("synthetic" if SMOKE else "cifar10"))
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
md("""## The range test, and a sweep that checks it
The range test ([Smith 2015, arXiv 1506.01186](https://arxiv.org/abs/1506.01186); fastai's
[`lr_find`](https://docs.fast.ai/callback.schedule.html#learner.lr_find)) trains for `LR_ITER` batches
while the LR grows exponentially, with the recipe's optimizer, loss, batch size and param groups (the
batch-norm biases at their 64x), and records the smoothed loss. S10's rule takes the LR of the
lowest loss (`min_loss`) as the one-cycle peak: the largest LR at which the loss still falls, Smith's
upper bound for the cycle."""),
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
RANGE_TEST_LR = lr_result.suggestions.get("min_loss", recipe.max_lr)
raw = np.convolve(visualize.raw_losses(lr_result.all_losses, lr_result.settings["smooth_f"]), np.ones(5) / 5, "valid")
print(f"the raw loss (5-step mean) is lowest at LR {lr_result.all_lrs[int(np.argmin(raw)) + 2]:.3g}; the smoothed "
      f"curve, an average over about {1 / lr_result.settings['smooth_f']:.0f} steps, lags behind it")
visualize.plot_lr_finder(lr_result, chosen_lr=RANGE_TEST_LR, save_path=f"{FIGURES}/speedrun_lr_finder.png")"""),
md("""Two things make the range test's pick only a starting point here. The smoothing that makes the curve
readable averages the last twenty or so steps, and the LR grows by a large factor over twenty steps, so
the smoothed minimum sits to the right of the raw one. And the test lasts about two epochs' worth of
steps, while the run lasts ten, with a warm-up and an annealing the test never sees. So the choice is
checked the direct way: whole one-cycle runs at the recipe's peak (airbench94's, 1.5 in this
repository's units), at half and at twice it, and at the range test's pick. `experiments.ensure` trains
the runs the store lacks (through `main.py --recipe speedrun`) and reads back the others."""),
code("""sweep_lrs = sorted({recipe.max_lr / 2, recipe.max_lr, recipe.max_lr * 2, float(f"{RANGE_TEST_LR:.2g}")})
sweep = {lr: experiments.ensure([RunSpec(max_lr=None if lr == recipe.max_lr else lr, seed=SEED, **RUN)],
                                CIFAR10_DIR, STORE, RUNS_DIR)[0] for lr in sweep_lrs}
best_lr = max(sweep, key=lambda lr: sweep[lr]["final_acc"])
for lr, record in sweep.items():
    marks = ", ".join(mark for mark, hit in (("the recipe's", lr == recipe.max_lr),
                                             ("the range test's min_loss", lr == float(f"{RANGE_TEST_LR:.2g}")),
                                             ("best", lr == best_lr)) if hit)
    print(f"peak LR {lr:<6.3g} {record['final_acc']:.2f}%, lowest epoch {min(record['test_acc']):5.2f}%"
          + (f"  ({marks})" if marks else ""))
MAX_LR = recipe.max_lr
print(f"training at peak LR {MAX_LR:g}, {MAX_LR / RANGE_TEST_LR:.2f}x the range test's min_loss")"""),
md("""In the committed runs (seed 0, one run each, so read a few tenths of a point as the seeds' noise):
the recipe's peak did best, half and twice it cost about half a point each, and the range test's
min_loss did worse. At 3.7, this notebook's pick (about 2.5 times the recipe's peak), the test accuracy
fell to 38% by the fourth epoch and the annealing brought it back to 93.2%. `main.py --find_lr`, with
the same settings and another random draw, picked 5.7: that run fell to chance in the third epoch and
ended at 89.2% (it is in the store too). So the pick moves with the draw, and both draws overshoot:
the rule that found S10's peak within a few percent fails here, because the smoothed loss of a short
test still falls at an LR that a run cannot hold for epochs. Two differences from S10 may explain it (this lesson does not
measure them): the test lasts about two epochs' worth of steps at batch 1024, while a run spends
epochs near its peak; and the batch-norm biases train at 64 times the LR under test. What the range
test gives here is a ceiling, the LR at which training breaks; the sweep picks the peak below it, and
the lesson trains at the recipe's."""),
md("""## One run, by hand
The recipe's one cycle ([Smith 2018, arXiv 1803.09820](https://arxiv.org/abs/1803.09820)): the LR rises
linearly from 0.2x to 1x the peak over the first 23% of the steps (the **warm-up** lets the fresh net
reach a large LR without blowing up), then falls linearly to 0.07x (the **annealing**, where most of the
accuracy appears); the long stretch at a large LR in between regularises
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
  shifted by a pixel each way, their logits averaged with airbench's weights: a quarter each for the
  image and its mirror, an eighth each for the four shifted views.

The cell prints one line per epoch and the time of the whole run, evaluation and augmentation included."""),
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
print(f"test accuracy {history['test_acc'][-1]:.2f}%, with {recipe.tta_views}-view test-time augmentation "
      f"{tta.acc:.2f}%; {seconds:.0f} s in all on {describe_machine(device).split(',')[0]}")
visualize.plot_history(history, save_path=f"{FIGURES}/speedrun_curves.png")"""),
md("""## Five seeds
One run's accuracy moves by a few tenths of a point from seed to seed (published airbench94 runs have a
standard deviation of about 0.15 over many runs), so a claim rests on several. The same recipe through
`main.py` (each seed draws its own initial weights, shuffling and augmentations); the cell prints the
spread of these seeds:"""),
code("""full = experiments.ensure([RunSpec(seed=seed, **RUN) for seed in range(SEEDS)], CIFAR10_DIR, STORE, RUNS_DIR)
mean, spread, n = experiments.summary(full)
plain = experiments.summary([{"final_acc": record["test_acc"][-1]} for record in full])
print(f"{n} seeds: {mean:.2f}% mean with test-time augmentation (standard deviation {spread:.2f}; "
      f"{min(r['final_acc'] for r in full):.2f} to {max(r['final_acc'] for r in full):.2f}), "
      f"{plain[0]:.2f}% without")"""),
md("""## What each trick adds
Each row switches one trick off (a `main.py` option) and keeps the rest; the difference to the full
recipe is what that trick adds at 10 epochs. One run per row unless `TRICK_SEEDS` says more, so read
the table with the standard deviation printed above: one run differs from the mean by up to about twice
that from chance alone, and a smaller difference is not a finding. The cell after the table puts each
difference in **standard errors**: the standard deviation the difference would have from the seeds'
noise alone (for one run against the mean of n, sd x sqrt(1 + 1/n)); a trick that did nothing would
rarely land two of them away. Test-time augmentation needs no extra run: each run records its accuracy
with and without."""),
code("""TRICKS = {
    "lookahead weight averaging": ("--no-weight_average",),
    "alternating flip (random flips instead)": ("--no-alternating_flip",),
    "64x LR for batch-norm biases": ("--bias_lr_scale", "1"),
    "label smoothing 0.2": ("--label_smoothing", "0"),
    "2-pixel translation": ("--crop_padding", "0"),
    "whitening bias trained 3 epochs": ("--whiten_bias_epochs", "0"),
}
full_seconds = experiments.seconds(full)
print(f"{'without':42s} {'accuracy':>9s} {'adds':>7s} {'seconds':>8s}  runs")
print(f"{'(nothing: the full recipe)':42s} {mean:8.2f}% {'':>7s} {full_seconds:8.0f}  {n}")
print(f"{'test-time augmentation':42s} {plain[0]:8.2f}% {mean - plain[0]:+7.2f} "
      f"{full_seconds - experiments.seconds(full, 'tta_seconds'):8.0f}  {n}")
trick_runs = {}
for trick, options in TRICKS.items():
    runs = trick_runs[trick] = experiments.ensure([RunSpec(seed=seed, epochs=RUN["epochs"], options=RUN["options"] + options)
                               for seed in range(TRICK_SEEDS)], CIFAR10_DIR, STORE, RUNS_DIR, log=lambda line: None)
    accuracy = experiments.summary(runs)[0]
    timed = experiments.clock(experiments.seconds(runs))  # "-" if its only run was resumed
    print(f"{trick:42s} {accuracy:8.2f}% {mean - accuracy:+7.2f} {timed:>8s}  {len(runs)}")
print("seconds: the mean wall-clock time of a whole run (training, evaluation and test-time augmentation) "
      "over the runs that recorded it")"""),
code("""# one run against the mean of n seeds: if the trick did nothing, their difference would have a standard
# error of sd * sqrt(1/runs + 1/n), with sd the full recipe's spread over its seeds
gains = [record["final_acc"] - record["test_acc"][-1] for record in full]  # the same runs with and without
print(f"* test-time augmentation: {np.mean(gains):+.2f} points on average over the {n} runs ({min(gains):+.2f} to "
      f"{max(gains):+.2f}): the same weights measured both ways, so the seeds' noise does not enter")
for trick, runs in trick_runs.items():
    adds = mean - experiments.summary(runs)[0]
    error = spread * (1 / len(runs) + 1 / n) ** 0.5
    if not error:  # the seeds agreed exactly (possible on a few hundred test images): no noise to measure against
        print(f"* {trick}: {adds:+.2f} points; the recipe's seeds agree exactly, so there is no standard error")
        continue
    verdict = ("helps beyond the seeds' noise" if adds > 2 * error else
               "costs beyond the seeds' noise" if adds < -2 * error else "not told apart from the seeds' noise")
    print(f"* {trick}: {adds:+.2f} points, {abs(adds) / error:.1f} standard errors: {verdict}")"""),
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
  images; the stored runs' `tta_seconds`). The other tricks' costs were not measured apart: the table's
  runs took 1,016 to 1,152 s each, and whole runs of one configuration differed by as much here (the
  three stored constant-0.75 runs: 1,009 to 1,159 s), so single runs cannot show a cost of seconds."""),
md("""## The experiment: one cycle against other schedules
The course has taught that one cycle trains faster; here it is measured. The same net, tricks and
epochs, with five LR schedules (`recipes.build_schedule`, `main.py --scheduler`):
* **one cycle**: the recipe's (above);
* **constant** at the one-cycle peak, with no warm-up and no annealing;
* **constant** at the best constant LR of a short sweep (one seed each at 1/2 and 1/4 of the peak; the
  best then gets the other seeds);
* **step**: the peak, divided by 10 after epochs 4 and 8, the classic schedule of ResNet papers;
* **warm-up + cosine**: the same linear warm-up from 0.2x, then half a cosine down to 0: itself a one
  cycle, with the cosine anneal that is PyTorch `OneCycleLR`'s default shape.

Each gets `EXPERIMENT_SEEDS` runs, seeds 0-2; the one-cycle row is the five seeds above, so only seeds
0-2 are shared. The peaks were not chosen alike, and all on the test set that reports the results:
one cycle's (the recipe's) did best of five peaks tried on seed 0 (the sweep above, and the 5.7 of
`main.py --find_lr`), the constant LR is the best of three, and step and warm-up + cosine use the
one-cycle peak untuned."""),
code("""def runs(scheduler, max_lr=None, seeds=range(EXPERIMENT_SEEDS), options=()):
    return experiments.ensure([RunSpec(scheduler=scheduler, max_lr=max_lr, seed=seed, epochs=RUN["epochs"],
                                       options=RUN["options"] + options) for seed in seeds],
                              CIFAR10_DIR, STORE, RUNS_DIR, log=lambda line: None)


constant_sweep = {lr: runs("constant", lr, seeds=[SEED])[0] for lr in (MAX_LR / 4, MAX_LR / 2)}
constant_sweep[MAX_LR] = runs("constant", seeds=[SEED])[0]
best_constant = max(constant_sweep, key=lambda lr: constant_sweep[lr]["final_acc"])
print("constant-LR sweep (seed 0): " + ", ".join(f"{lr:g}: {r['final_acc']:.2f}%" for lr, r in constant_sweep.items()))
results = {
    "one cycle": full,
    f"constant {MAX_LR:g} (the peak)": runs("constant"),
    f"constant {best_constant:g} (best of the sweep)": runs("constant", None if best_constant == MAX_LR else best_constant),
    "step (/10 after epochs 4, 8)": runs("step", options=("--step_size", "4")),
    "warm-up + cosine": runs("warmup_cosine"),
}
print(f"{'schedule':34s} {'mean':>7s} {'sd':>5s}  every run (with test-time augmentation)")
for name, records in results.items():
    mean_, spread_, _ = experiments.summary(records)
    print(f"{name:34s} {mean_:6.2f}% {spread_:5.2f}  " + ", ".join(f"{r['final_acc']:.2f}" for r in records))"""),
code("""def lrs_of(scheduler, max_lr, **settings):  # every step's LR: the recipe with another schedule
    return schedule_lrs(replace(recipe, scheduler=scheduler, max_lr=max_lr, **settings), len(train_loader))


shapes = {"one cycle": lrs_of("onecycle", MAX_LR), f"constant {MAX_LR:g} (the peak)": lrs_of("constant", MAX_LR),
          f"constant {best_constant:g} (best of the sweep)": lrs_of("constant", best_constant),
          "step (/10 after epochs 4, 8)": lrs_of("step", MAX_LR, step_size=4),
          "warm-up + cosine": lrs_of("warmup_cosine", MAX_LR)}
visualize.plot_schedule_comparison(shapes, {name: [r["test_acc"] for r in records] for name, records in results.items()},
                                   save_path=f"{FIGURES}/speedrun_schedules.png")"""),
md("""## What the runs showed
Every number below is computed from the runs above. Beside each schedule: its difference to one cycle
and that difference in standard errors (Welch's, from both schedules' spreads over their seeds, as if
the runs were unrelated). A standard error measures the seeds' noise only: it says nothing of the
peaks having been chosen on this test set, and with three runs an arm's spread is itself rough."""),
code("""ranked = sorted(results, key=lambda name: -experiments.summary(results[name])[0])
print(f"* The recipe: {mean:.2f}% mean over {n} seeds in {EPOCHS} epochs "
      f"({'at least' if mean >= 94 else 'below'} 94%), about {full_seconds:.0f} s per run on "
      f"{full[0]['machine'].split(',')[0]}.")
print(f"* Range test: min_loss at {RANGE_TEST_LR:.3g}; of the one-cycle peaks tried, {best_lr:g} did best "
      f"({sweep[best_lr]['final_acc']:.2f}%).")
for place, name in enumerate(ranked, 1):
    m, s, k = experiments.summary(results[name])
    difference, error = experiments.compare(results[name], results["one cycle"])
    against = "" if name == "one cycle" else f"; {difference:+.2f} points against one cycle" + (
        f" ({abs(difference) / error:.1f} standard errors)" if error else "")
    print(f"* {place}. {name}: {m:.2f}% (sd {s:.2f}, {k} runs){against}")"""),
code("""def mean_of(records, pick):
    return float(np.mean([pick(record) for record in records]))


print(f"{'schedule':34s} {'largest fall':>12s} {'epoch ' + str(EPOCHS - 1):>9s} {'last':>7s} {'+ TTA':>7s} {'train':>7s}")
for name, records in results.items():
    fall = max(max((a - b for a, b in zip(r["test_acc"], r["test_acc"][1:])), default=0.0) for r in records)
    print(f"{name:34s} {fall:11.2f}  {mean_of(records, lambda r: r['test_acc'][-2]):8.2f}% "
          f"{mean_of(records, lambda r: r['test_acc'][-1]):6.2f}% {mean_of(records, lambda r: r['final_acc']):6.2f}% "
          f"{mean_of(records, lambda r: r['train_acc'][-1]):6.2f}%")
print("largest fall: the most test accuracy any of its runs lost from one epoch to the next (points); then the mean "
      "test accuracy after the last epoch but one, after the last (the lookahead average in place), with test-time "
      "augmentation, and the training accuracy of the last epoch")
peak_runs, step_runs = results[f"constant {MAX_LR:g} (the peak)"], results["step (/10 after epochs 4, 8)"]
same = [r["spec"]["seed"] for r in step_runs for c in peak_runs
        if c["spec"]["seed"] == r["spec"]["seed"] and c["test_acc"][:4] == r["test_acc"][:4]]
print(f"step runs whose first {min(4, EPOCHS)} epochs repeat the constant-{MAX_LR:g} run of their seed to the digit: "
      f"{len(same)} of {len(step_runs)}")"""),
md("""What the schedule experiment shows, in the committed runs (a store of your own gives your own). Paired
by seed on the shared seeds 0-2 (each arm minus one cycle, seed by seed, with a 95% t-interval;
`experiments.paired`, README "CIFAR-10 speedrun"): warm-up + cosine -0.12 [-0.35, +0.11], step -1.09
[-1.29, -0.89], constant 0.75 -1.17 [-2.20, -0.14], constant 1.5 -2.94 [-4.16, -1.73] points.
* **One cycle came first**, but the comparison is not fair: its peak and the constant LR were picked
  on this test set, the others' were not tuned at all. Step and both constant LRs finished behind it
  on every shared seed; warm-up + cosine is not told apart from it.
* **In these runs, most of what one cycle buys is the annealing.** The two schedules that anneal smoothly to a small
  LR (one cycle, warm-up + cosine) beat both constant LRs; step, at the untuned peak, ended level with
  the best constant LR (+0.08 on average over seeds 0-2). One cycle's test accuracy falls too while its
  LR is near the peak (the right panel, and the largest falls above); at a constant LR that goes on to
  the last epoch, so a run ends wherever the noise leaves it. The lookahead average, which holds more
  of the past the later the step and which the run ends with, does part of the annealing's work (the
  jump from the last epoch but one to the last, largest for the constant LRs), not all of it.
* **A large LR pays only with the annealing after it.** Held constant, half the peak beat the peak by
  1.6 to 2.0 points on each of the three seeds (seed 0 picked it; seeds 1 and 2 agree); inside one
  cycle, the peak itself did best of the peaks tried (one run each, seed 0: the sweep above).
* **The shape of the annealing is not measured here.** Warm-up + cosine is one cycle with a cosine
  anneal to zero instead of a linear one to 0.07x: it fits the training set a little more closely, and
  its paired difference to one cycle, -0.12 points with an interval from -0.35 to +0.11, does not tell
  the two apart. The step schedule anneals in two jumps of ten: its accuracy leaps after epoch 4, then
  stalls, and it ends about a point behind; with its LR untuned and no warm-up, that gap is not the
  step shape's alone.
* The step runs repeat the constant-peak runs of the same seeds to the digit for their first four
  epochs (the same LR, the same seed): the runs are deterministic, so everything that differs after
  epoch 4 is the schedule's doing.
* A fair re-run is under way (README, "CIFAR-10 speedrun"): every schedule's LR chosen on the same grid
  on 5,000 held-out training images, then five seeds each at its pick, measured on the test set."""),
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
md("""## What to try next
* `python experiments.py --data_dir <cifar10> --seeds 0 1 2 -- --epochs 8`: fewer epochs, and how much
  accuracy each one costs.
* `python main.py --recipe speedrun --anneal_strategy cos`: the cosine-shaped one cycle.
* A GPU: the cells are written to run there unchanged (bf16 on compute capability 8.0 and up, fp16
  with a GradScaler below), though no GPU has run this lesson yet; airbench94 itself trains in 3.8 s on
  an A100."""),
]
write_notebook(cells, sys.argv[1] if len(sys.argv) > 1 else "CIFAR10_Speedrun.ipynb")
