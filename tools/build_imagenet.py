"""Writes ImageNet_LR_Finder.ipynb's cells (sources only; outputs come from executing it)."""
import nbformat
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook
from notebook_common import badge, setup_cell_source

md, code = new_markdown_cell, new_code_cell
CHECK_OUTPUT = {"tags": ["nbval-check-output"]}  # nbval compares this cell's output (a tag: the source stays the lesson's)
IMAGENET_CPU_NOTE = ("No GPU in this runtime: ResNet-50 trains at a few images per second on a CPU, so the "
                     "lesson's run takes hours here. Runtime > Change runtime type > T4 GPU, then Runtime > Run all.")
cells = [
md(badge("ImageNet_LR_Finder.ipynb") + """

# ResNet-50 on an ImageNet-style folder: the LR range test, then one-cycle training

The S10 lesson found the maximum learning rate for a small net on CIFAR-10. Here the same method meets
the classic large model: **ResNet-50 v1.5** (torchvision's; the stride-2 sits in the 3x3 convolution of
each bottleneck) on any folder in the ImageNet layout, `train/<class>/*.JPEG` and `val/<class>/*.JPEG`.

1. look at the data (classes, images, the augmentations);
2. read the model summary;
3. run the **LR range test** and read its report: a plot, a detailed log and `suggested_lr.json`;
4. see what the test misses in a ResNet-50 trained from scratch, and check its max LR with short runs;
5. train with `OneCycleLR` at the suggested maximum LR and look at the curves.

The same steps run headless from the command line (also on several GPUs under `torchrun`):
```
python main.py --data_dir $IMAGENET_DIR --find_lr --lr_iter 100 --batch_size 32 --image_size 128 --output_dir runs/imagenet_lr
python main.py --data_dir $IMAGENET_DIR --epochs 20 --batch_size 32 --image_size 128 --max_lr runs/imagenet_lr/suggested_lr.json --output_dir runs/imagenet
```"""),
code(setup_cell_source(IMAGENET_CPU_NOTE)),
md("""## Settings
The recipe (`recipes.IMAGENET`, the one `main.py` uses for image folders) holds the training settings;
this cell reads what a run may change from the environment: `IMAGENET_DIR`, `IMAGE_SIZE`,
`BATCH_SIZE`, `LR_ITERS`, `EPOCHS`, `MAX_SAMPLES` (a class-balanced subset of each split; 0 for all).
`SMOKE=1` (CI and `nbval`) swaps in a tiny CPU run on a generated folder of JPEGs (coloured shapes,
32 pixels) and writes figures and reports to temporary folders, so `Data/` keeps the real run's.

**The committed outputs** come from `IMAGENET_DIR=<imagenette>` with the defaults below (128 pixels,
batch 32, a 100-iteration range test, 20 epochs) on a 2-core CPU with AVX-512 BF16 units (bf16
autocast): the 10-class Imagenette subset of ImageNet, 3,000 training and 1,000 validation images.
36 minutes there (the range test 2.6, the training 32.6); on a GPU, minutes."""),
code("""import os
import tempfile

import dataset
import recipes

recipe = recipes.IMAGENET
SMOKE = os.environ.get("SMOKE") == "1"
IMAGENET_DIR = os.environ.get("IMAGENET_DIR", "data/imagenet")
if SMOKE:  # a generated folder of JPEGs in the ImageNet layout
    IMAGENET_DIR = tempfile.mkdtemp()
    for split, seed, count in (("train", 0, 128), ("val", 1, 64)):
        shapes = dataset.SyntheticImages(n=count, size=32, seed=seed)
        dataset.write_image_folder(shapes.images, shapes.labels, shapes.classes, IMAGENET_DIR, split)
DEVICE = "cpu" if SMOKE else "auto"
IMAGE_SIZE = int(os.environ.get("IMAGE_SIZE", 32 if SMOKE else 128))
BATCH_SIZE = int(os.environ.get("BATCH_SIZE", 16 if SMOKE else 32))
LR_ITERS = int(os.environ.get("LR_ITERS", 40 if SMOKE else recipe.lr_iter))
EPOCHS = int(os.environ.get("EPOCHS", 2 if SMOKE else 20))
MAX_SAMPLES = int(os.environ.get("MAX_SAMPLES", 0)) or None
WORKERS = 0 if SMOKE else None  # None: min(4, cores - 1) DataLoader workers
THREADS = 1 if SMOKE else os.cpu_count() or 1  # SMOKE shares CI machines: one thread
SEED = 1
FIGURES = tempfile.mkdtemp() if SMOKE else "Data"
REPORT_DIR = tempfile.mkdtemp() if SMOKE else "runs/imagenet_lr_finder"
CHECKPOINTS = tempfile.mkdtemp() if SMOKE else "checkpoints/imagenet"
print(f"IMAGE_SIZE={IMAGE_SIZE} BATCH_SIZE={BATCH_SIZE} LR_ITERS={LR_ITERS} EPOCHS={EPOCHS} MAX_SAMPLES={MAX_SAMPLES}")"""),
code("""%matplotlib inline
import json
import time

import albumentations as A
import numpy as np
import torch
from IPython.display import Image, display

import visualize
from custom_resnet import resnet50
from lr_finder import find_lr, write_report
from recipes import build_criterion, build_one_cycle, build_optimizer
from training_utils import fit, prepare_model, resolve_precision
from imagenet_classes import readable_class_names
from utils import block_summary, count_parameters, describe_machine, get_device, seed_everything

device = get_device(DEVICE)
precision = resolve_precision(device)
torch.set_num_threads(THREADS)
torch.backends.cudnn.benchmark = device.type == "cuda"
print(f"device: {device}, precision: {precision}")
print(f"machine: {describe_machine(device)}")"""),
md("""## The data
`dataset.image_folder_datasets` lists both splits (the classes, and so their number, come from the
folder names under `train/`) and pairs them with the ImageNet transforms. ImageNet's folders are
WordNet ids (`n01440764`); `imagenet_classes.readable_class_names` turns them into the class names
(`tench`) from the ImageNet-1K table in the repository."""),
code("""train_set, val_set, folders = dataset.image_folder_datasets(IMAGENET_DIR, IMAGE_SIZE, MAX_SAMPLES, seed=SEED,
                                                            color_jitter=recipe.color_jitter)
classes = readable_class_names(folders)  # ImageNet wnids -> names; other folder names stay as they are
print(f"{len(classes)} classes: " + ", ".join(f"{name} ({folder})" if name != folder else name
                                             for name, folder in list(zip(classes, folders))[:10])
      + (" ..." if len(classes) > 10 else ""))
print(f"{len(train_set)} training images, {len(val_set)} validation images")"""),
code("""shown = np.random.default_rng(SEED).choice(len(train_set), size=min(20, len(train_set)), replace=False)
samples = [train_set.source[int(i)] for i in shown]
visualize.plot_samples([image for image, _ in samples], [label for _, label in samples], classes,
                       save_path=f"{FIGURES}/imagenet_samples.png")"""),
md("""## Augmentation
The standard ImageNet recipe, with Albumentations:
* training: a **random-resized crop** (a random 8-100% of the area at a random aspect ratio, resized to
  `IMAGE_SIZE`; 35-100% below 160 pixels, where tiny crops hold too little) and a **horizontal flip**,
  then the ImageNet mean/std normalisation; `main.py` adds cutout (`--cutout`) and rotation
  (`--rotate_degrees`) on request, and `dataset.imagenet_augmentations(color_jitter=0.4)` a colour
  jitter. The recipe leaves the jitter off, as NVIDIA's and torchvision's ResNet-50 recipes do: with
  it (and crops from 25% of the area), an earlier 20-epoch run of this notebook ended with the
  training accuracy below the validation accuracy (53.2% against 54.8%), a net held back by its
  augmentation rather than one that overfits;
* validation: resize the short side to `IMAGE_SIZE / 0.875` (256 for 224), then a **center crop**.

Each row below applies one pipeline (without the normalisation) to the same images."""),
code("""augmentations = {
    "train": A.Compose(dataset.imagenet_augmentations(IMAGE_SIZE, color_jitter=recipe.color_jitter)),
    "val": A.Compose(dataset.imagenet_val_crop(IMAGE_SIZE)),
}
visualize.plot_augmentations([image for image, _ in samples[:6]], augmentations,
                             save_path=f"{FIGURES}/imagenet_augmentations.png")"""),
md("""## The model
torchvision's ResNet-50 v1.5: a 7x7 stem, then 3, 4, 6 and 3 bottleneck blocks (1x1 -> 3x3 -> 1x1
convolutions) at 256, 512, 1024 and 2048 channels, global average pooling and one linear layer.
`custom_resnet.resnet50` starts the last batch-norm scale of every block at zero
(`zero_init_residual=True`, Goyal et al. 2017): each block starts as its shortcut, so the untrained
net is a shallow one; the next section shows why that matters for a net trained from scratch. The
summary below shows it block by block for the ImageNet-1K configuration (1000 classes, 3x224x224),
checked by `nbval`; torchsummary's full table of all 185 layers is one call away:
`model_summary(resnet50(num_classes=1000), input_size=(3, 224, 224))`. The training below uses the
same net with one output per class of the folder."""),
code("""print(block_summary(resnet50(num_classes=1000), input_size=(3, 224, 224)))
print(f"trainable parameters: {count_parameters(resnet50(num_classes=1000)):,}")""", metadata=CHECK_OUTPUT),
md("""## The LR range test
The learning rate grows exponentially from `1e-5` to `10` over `LR_ITERS` batches while the smoothed
training loss is recorded (torch-lr-finder). Of the four suggestions, **the one-cycle maximum LR is
`min_loss`**, the LR at the lowest smoothed loss, the same rule as in `S10.ipynb` (Smith's upper bound:
one-cycle visits its peak only briefly, so it can use the largest LR at which the loss still falls).
The suggestions only look at the curve before the loss blows up (past twice its lowest value): a
wrecked net's loss can drift down again, and that fall must not attract a suggestion.

The test uses the recipe's optimizer and loss (SGD with Nesterov momentum, weight decay and label
smoothing as `recipes.IMAGENET` sets them) at the training batch size, and restores the model, the
optimizer and every random state afterwards. `write_report` keeps the result beside the run: the plot,
a log (configuration, the call, results, warnings, next steps) and `suggested_lr.json`, exactly what
`main.py --find_lr` writes."""),
code("""train_loader = dataset.make_loader(train_set, BATCH_SIZE, train=True, device=device, workers=WORKERS, seed=SEED)
val_loader = dataset.make_loader(val_set, BATCH_SIZE, train=False, device=device, workers=WORKERS)
criterion = build_criterion(recipe)
seed_everything(SEED)
model = prepare_model(resnet50(num_classes=len(classes)), device)
optimizer = build_optimizer(recipe, model.parameters(), lr=recipe.lr_start)
lr_result = find_lr(model, optimizer, criterion, train_loader, device=device, start_lr=recipe.lr_start,
                    end_lr=recipe.lr_end, num_iter=LR_ITERS, precision=precision, progress=False)
call = (f"find_lr(resnet50({len(classes)}), recipes.IMAGENET optimizer and loss, train_loader, start_lr={recipe.lr_start:g}, "
        f"end_lr={recipe.lr_end:g}, num_iter={LR_ITERS}) in ImageNet_LR_Finder.ipynb")
report = write_report(lr_result, REPORT_DIR, f"{os.path.basename(os.path.normpath(IMAGENET_DIR))} ({len(classes)} classes, "
                      f"{len(train_set)} training images at {IMAGE_SIZE}px)", BATCH_SIZE, call,
                      config={"model": "ResNet-50 v1.5", "recipe": recipe.name}, plot_file=f"{FIGURES}/imagenet_lr_finder.png")
print(f"range test: {len(lr_result.all_lrs)} iterations in {lr_result.seconds:.0f}s")
print(report["log"].read_text().split("\\nCurve")[0])"""),
md("""The plot (each suggestion marked) and `suggested_lr.json`:"""),
code("""display(Image(filename=str(report["plot"])))
print(report["json"].read_text())
MAX_LR = json.loads(report["json"].read_text())["suggested_lr"]
print(f"one-cycle max LR (min_loss): {MAX_LR:.3g}")"""),
md("""## What the range test misses in a from-scratch ResNet-50, and a check of its max LR
`lr_sweep.py` runs this notebook's range test on the same folder, at 100 and at 300 iterations, then
trains a fresh ResNet-50 for 3 one-cycle epochs at each of several max LRs (the grid plus the
`min_loss` and `valley` suggestions; same seed, so the runs differ only in max LR) and measures the
final validation top-1 on the 1,000 images. It ran twice, with this lesson's zero-initialised residual
branches and with torchvision's initialisation:
```
python lr_sweep.py --dataset imagefolder --data_dir <imagenette> --image_size 128 --epochs 3 \\
    --lr_iter 100 300 --grid 0.03 0.1 0.3 --output Data/imagenet_lr_sweep
python lr_sweep.py --dataset imagefolder --data_dir <imagenette> --image_size 128 --epochs 3 --init default \\
    --lr_iter 100 300 --grid 0.03 --suggestion_runs min_loss --output Data/imagenet_lr_sweep_default_init
python lr_sweep.py --plot_only --output Data/imagenet_lr_sweep --compare Data/imagenet_lr_sweep_default_init.json
```
The JSON files in `Data/` hold every number (the machine and the times too); the cell below prints them
and shows the two figures.

What the two figures show:
* **With torchvision's initialisation the test has nothing to find.** Every block adds its residual
  branch from the first step, so the untrained net's loss starts above chance (2.62; chance, a uniform
  guess over the 10 classes, is ln 10 = 2.30). It comes down towards chance (to 2.43 at 100
  iterations, 2.33 at 300) and takes off at 4e-3 to 9e-3, never going below chance. That early "fall"
  is the net learning to guess evenly, drawn out by the smoothing (torch-lr-finder's moving average
  starts at the first batch's loss and takes some 40 iterations to forget it), not the net learning
  features. `min_loss` lands on it (1.5e-3 at 100 iterations, 5.1e-4 at 300), and at 300 iterations
  `valley` lands on the wrecked net's recovery after the blow-up (0.31). Trained at its `min_loss`,
  3 epochs reach 20.9% top-1 (the earlier version of this notebook trained there); at 0.03, 29.2%.
* **With zero-initialised residual branches the net starts as a shallow one**, at chance, and the loss
  falls below chance before it rises: the test sees learning. Its 100-iteration `min_loss`, 0.0123, is
  the best max LR of the sweep: 42.8% after 3 epochs, against 42.2% at 0.03, 40.0% at 0.1, 34.0% at
  0.3 and 35.8% at the `valley` suggestion 1.5e-3. The top is flat between about 0.01 and 0.03.
* **The LR growth rate moves `min_loss`, not the blow-up.** At 300 iterations (the LR growing three
  times slower) the loss bottoms out lower and earlier, and its minimum is a broad floor from about
  3e-3 to 1e-2 where `min_loss` (3.5e-3) can land anywhere; the loss takes off at 3e-2 to 4e-2 in
  both tests. The 100-iteration test at batch 32 (3,200 images, about one epoch, 2 minutes here) picks
  the top of the sweep, so the lesson keeps it, and keeps `min_loss` as its rule.
* **Batch-norm statistics do not enter the test:** the range test records the training loss, which a
  net in training mode computes with each batch's own statistics; the running statistics that
  evaluation uses play no part in it.

The sweep checks 3-epoch runs, made with the earlier augmentation (colour jitter 0.4, crops from 25%
of the area); the 20-epoch run below trains at the LR its own range test picks, with the recipe's
augmentation: 0.0248 in the committed run, between the sweep's two best runs (0.0123 and 0.03)."""),
code("""sweeps = {}
for init, name in (("zero-init residuals (this lesson)", "imagenet_lr_sweep"),
                   ("torchvision's init", "imagenet_lr_sweep_default_init")):
    with open(f"Data/{name}.json") as file:
        sweeps[init] = json.load(file)
print(f"3 one-cycle epochs per run, {sweeps[init]['machine']}, {sweeps[init]['precision']}")
for init, sweep in sweeps.items():
    print(f"\\n{init}")
    for test in sweep["range_tests"]:
        print(f"  range test, {test['num_iter']} iterations ({test['seconds']:.0f} s): "
              + ", ".join(f"{k} {v:.3g}" for k, v in test["suggestions"].items()))
    for run in sweep["results"]:
        print(f"  max LR {run['max_lr']:7.4f}: validation top-1 {run['test_acc']:5.2f}%, top-5 {run['test_top5']:5.2f}%"
              f"  ({run['seconds']:.0f} s)")
display(Image(filename="Data/imagenet_lr_sweep_range_tests.png"))
display(Image(filename="Data/imagenet_lr_sweep.png"))"""),
md("""## One-cycle training
The recipe's `OneCycleLR`, stepped after every batch: the LR rises from `MAX_LR / 25` to `MAX_LR` over
the first 30% of the steps, then anneals (cosine) to `MAX_LR / 25 / 10^4`, while the momentum cycles
the other way, from 0.95 down to 0.85 at the peak and back (Smith's one-cycle policy). `fit` evaluates
top-1 and top-5 accuracy on the validation split after each epoch and keeps `last.pt` and `best.pt`;
`main.py --resume` continues such a run on the same schedule.

Trained from scratch on 300 images per class, ResNet-50 has far more parameters (23.5 million) than
the data can pin down, so the augmentations carry the run: the validation accuracy, not the training
loss, is the number to watch."""),
code("""seed_everything(SEED)
model = prepare_model(resnet50(num_classes=len(classes)), device)
optimizer = build_optimizer(recipe, model.parameters(), lr=MAX_LR)
scheduler = build_one_cycle(recipe, optimizer, MAX_LR, EPOCHS, len(train_loader))
start = time.perf_counter()
history = fit(model, device, train_loader, val_loader, optimizer, criterion, EPOCHS, scheduler, precision=precision,
              topk=5, checkpoint_dir=CHECKPOINTS, seed=SEED, test_name="val")
minutes = (time.perf_counter() - start) / 60
print(f"after {EPOCHS} epochs: validation top-1 {history['test_acc'][-1]:.2f}%, top-5 {history['test_top5'][-1]:.2f}% "
      f"(max LR {MAX_LR:.3g}, batch {BATCH_SIZE}, {IMAGE_SIZE}px, {precision} on {device}, {minutes:.1f} min)")"""),
md("""## Loss, accuracy and the schedule"""),
code("""visualize.plot_history(history, save_path=f"{FIGURES}/imagenet_curves.png", split="validation")"""),
code("""visualize.plot_lr_schedule(history["lr"], history["momentum"], steps_per_epoch=len(train_loader),
                           save_path=f"{FIGURES}/imagenet_lr_schedule.png")"""),
md("""## What this run showed
The first 20-epoch run of this notebook used colour jitter and crops from 25% of the area
(`Data/imagenet_run_with_jitter.json`): its range test chose 0.0123, and it ended at 54.80% top-1
and 92.10% top-5, with a training accuracy (53.2%, on augmented images) below the validation
accuracy. Without the jitter and with crops from 35% the same 20 epochs, in the same time, reach the
numbers below."""),
code("""best = max(range(EPOCHS), key=history["test_acc"].__getitem__)
print(f"* The range test ({len(lr_result.all_lrs)} iterations of {BATCH_SIZE}, {lr_result.seconds / 60:.1f} min) "
      f"suggested " + ", ".join(f"{name} {lr:.3g}" for name, lr in lr_result.suggestions.items())
      + f"; training used max LR {MAX_LR:.3g}.")
print(f"* {EPOCHS} one-cycle epochs of ResNet-50 from scratch on {len(train_set)} images at {IMAGE_SIZE}px "
      f"({minutes:.1f} min, {sum(history['epoch_time']) / EPOCHS:.0f} s per epoch on "
      f"{describe_machine(device).split(',')[0]}): validation top-1 {history['test_acc'][-1]:.2f}%, top-5 "
      f"{history['test_top5'][-1]:.2f}% on {len(val_set)} images (chance: {100 / len(classes):.0f}%; best epoch "
      f"{best + 1}: {history['test_acc'][best]:.2f}%).")"""),
md("""## With the real ImageNet and a GPU
The same two steps from the command line, on the 1000-class ImageNet folder (`train/<wnid>/`,
`val/<wnid>/`) at 224 pixels with mixed precision (`--amp`: bf16 from compute capability 8.0, fp16 with
a GradScaler below):
```
# 1. the range test, at the batch size you will train with (it depends on it)
python main.py --data_dir ~/imagenet --find_lr --amp --batch_size 256 --output_dir runs/r50_lr
# 2. one-cycle training at its suggestion (main.py checks the JSON's batch size), on 8 GPUs
torchrun --nproc_per_node=8 main.py --data_dir ~/imagenet --epochs 16 --batch_size 256 --amp \\
    --max_lr runs/r50_lr/suggested_lr.json --output_dir runs/r50
# after a crash or a preemption: the same command with --resume continues from the last epoch
```
* **Batch size and LR.** Under `torchrun` `--batch_size` is the global batch, split over the GPUs, so
  the suggestion made at batch 256 on one GPU applies unchanged. For a larger global batch, run the
  range test at that batch (with `--lr_accumulation_steps k` on one GPU: k x the batch), or scale the
  LR linearly with the batch (Goyal et al. 2017: 0.1 per 256 images, with a warm-up, which one-cycle's
  rising phase provides).
* **Expected time.** 16 epochs are 20.5 M images. NVIDIA reports 2,470 images/s for ResNet-50 v1.5
  training with mixed precision on one A100 80GB and 16,621 on eight (DeepLearningExamples,
  `PyTorch/Classification/ConvNets/resnet50v1.5`, with the DALI GPU data loader): about 2.3 hours on
  one A100 and 21 minutes on eight, if the data pipeline keeps up. This repository's loader decodes
  JPEGs with Albumentations on CPU workers (`--workers`), so plan several CPU cores per GPU and read the
  first epoch's time in the log."""),
]
notebook = new_notebook(cells=cells, metadata={
    "kernelspec": {"display_name": "Python 3", "language": "python", "name": "python3"},
    "language_info": {"name": "python"}})
nbformat.write(notebook, "ImageNet_LR_Finder.ipynb")
