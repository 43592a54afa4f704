"""Training: ``train`` and ``test`` for one epoch, ``fit`` for the epoch loop with history, checkpoints and
exact resume, and ``LookaheadAverage`` (airbench's weight averaging).

The default path is the fast one: autocast (bf16 on a CPU that has bf16 units, on CUDA bf16 from
compute capability 8.0 and fp16 with a GradScaler below), channels_last, ``zero_grad(set_to_none=True)``,
non-blocking copies. ``precision.Precision`` decides all of it once; ``precision="fp32"`` (or
``Precision.resolve(device, "fp32", channels_last=False)``) gives a plain fp32 run. The checkpoints
``fit`` writes are ``checkpoints.py``'s, the per-epoch seeds ``seeding.py``'s, and what a run of several
processes adds ``distributed.py``'s.
"""
import contextlib
import time
import warnings
from collections import namedtuple
from pathlib import Path

import torch
from torch import nn

from checkpoints import (CheckpointError, check_compatible, load_checkpoint, save_checkpoint, saved_epoch,
                         scheduler_state)
from dataset import SKIPPED_LABEL
from distributed import is_distributed, process_rank, share_buffers_from_rank0, sum_over_processes
from precision import Precision
from progress import postfix_due, progress_bar
from seeding import start_epoch_randomness
from specification import evaluate, train_epoch  # noqa: F401 (the specification's names for train and test)


class NonFiniteLossError(RuntimeError):
    """The loss became NaN or infinite; training stopped."""


def get_lr(optimizer):
    """The learning rate of the first parameter group."""
    return optimizer.param_groups[0]["lr"]


def get_momentum(optimizer):
    """Momentum of the first parameter group (SGD momentum or Adam's beta1), or None."""
    group = optimizer.param_groups[0]
    return group["betas"][0] if "betas" in group else group.get("momentum")


def unwrap(model):
    """The plain module inside ``DistributedDataParallel`` and ``torch.compile`` wrappers, in any order:
    its ``state_dict`` has no ``module.`` or ``_orig_mod.`` prefixes, so checkpoints load anywhere."""
    while True:
        if isinstance(model, nn.parallel.DistributedDataParallel):
            model = model.module
        elif isinstance(getattr(model, "_orig_mod", None), nn.Module):
            model = model._orig_mod
        else:
            return model


def compile_model(model, **options):
    """``torch.compile(model, dynamic=False, **options)``: one static graph per input shape. Training drops
    its last partial batch but evaluation keeps it; with torch.compile's default (``dynamic=None``) that
    one odd shape makes it recompile a dynamic-shape graph, which every later batch then runs. Static
    graphs compile the odd shape once more and keep the fast graph for all full batches."""
    return torch.compile(model, dynamic=False, **options)


def _check_finite(losses, count, epoch):
    """Raise ``NonFiniteLossError`` when a loss among the first ``count`` is NaN or infinite. In a
    distributed run every process checks at the same steps and learns whether any process failed, so all
    of them stop together (instead of the others waiting in the next gradient all-reduce until a timeout)."""
    bad = ~torch.isfinite(losses[:count])
    failed = bad.any()
    if is_distributed():
        anywhere = failed.to(torch.int32)
        torch.distributed.all_reduce(anywhere)
        if anywhere.item() and not failed.item():
            raise NonFiniteLossError(
                f"the loss became NaN or infinite in another process at epoch {epoch} (its message names the "
                "step); training stopped in every process. Lower the (max) learning rate, add gradient "
                "clipping, or use precision='bf16'/'fp32' instead of fp16.")
    if failed.item():
        step = int(bad.nonzero()[0])
        raise NonFiniteLossError(
            f"the loss became {losses[step].item()} at epoch {epoch}, step {step}; training stopped. Lower the "
            "(max) learning rate, add gradient clipping, or use precision='bf16'/'fp32' instead of fp16.")


@contextlib.contextmanager
def skipped_steps_allowed(scaler):
    """Inside it, PyTorch's warning that a scheduler stepped before the optimizer is silenced when
    ``scaler`` is an enabled GradScaler: it skips the optimizer step whenever the gradients overflow (fp16
    runs do on their first steps, while the scale settles), and the schedule is meant to advance with the
    batches all the same. Every other warning still reaches the user. Without an enabled scaler it leaves
    the warning filters alone."""
    if scaler is None or not scaler.is_enabled():
        yield
        return
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=r"Detected call of `lr_scheduler\.step\(\)` before")
        yield


def _step_scheduler(scheduler, scaler):
    """Step a per-batch scheduler; its first step with ``skipped_steps_allowed(scaler)``, the only one at
    which PyTorch checks the order. Not every step: leaving ``warnings.catch_warnings`` resets Python's
    record of the warnings already shown, so a warning that recurs at every step (from the model, the loss
    or the data) would print at every step instead of once."""
    if getattr(scheduler, "_step_count", 1) > 1:
        scheduler.step()
        return
    with skipped_steps_allowed(scaler):
        scheduler.step()


class TrainResult(namedtuple("TrainResult", "correct processed loss_sum")):
    """One training epoch, as the specification's S10 loop reads it: ``correct, processed, train_loss =
    train(...)`` with ``train_loss`` the sum of the per-step losses, so that ``train_loss /
    len(train_loader)`` is the mean. ``.loss`` is that mean, ``.acc`` the accuracy in %, and ``.steps``
    the LR, momentum and loss at every step."""

    @property
    def loss(self):
        return self.loss_sum / max(self.num_steps, 1)

    @property
    def acc(self):
        return 100 * self.correct / max(self.processed, 1)


class TestResult(namedtuple("TestResult", "correct loss")):
    """One evaluation: ``correct, loss = test(...)`` (loss: the mean over the images); ``.processed``,
    ``.acc`` and ``.top5`` (None unless asked for) in %."""
    __test__ = False  # not a pytest class

    @property
    def acc(self):
        return 100 * self.correct / max(self.processed, 1)

    @property
    def top5(self):
        return None if self.correct5 is None else 100 * self.correct5 / max(self.processed, 1)


def train(model, device, loader, optimizer, criterion, scheduler=None, *, precision="auto", scaler=None,
          grad_clip=None, epoch=None, progress=None, after_step=None):
    """Train for one epoch; returns a ``TrainResult`` (``correct, processed, loss_sum``, over all processes
    of a distributed run; ``.loss`` the mean loss) whose ``.steps`` holds the LR, momentum and loss of
    every step.

    ``scheduler``, when given, is stepped after every batch (OneCycleLR); ``after_step``, when given, is
    called after every step (``LookaheadAverage.after_step``). ``precision`` is a string or a
    ``Precision``; ``scaler`` a GradScaler to keep across epochs (made from the precision when None).
    A NaN or infinite loss raises ``NonFiniteLossError`` naming the epoch and step (checked every few
    steps on CUDA to avoid a sync per step). ``progress``: a live bar with loss, accuracy and LR (True),
    none (False), or as ``progress.show_bar`` decides (None: a bar for a person watching, none in logs).
    """
    precision = Precision.resolve(device, precision)
    scaler = scaler or precision.grad_scaler()
    model.train()
    num_steps = len(loader)
    losses = torch.zeros(num_steps, device=precision.device)
    correct, seen, skipped = (torch.zeros((), device=precision.device, dtype=torch.long) for _ in range(3))
    lrs, momentums = [], []
    # a finite-loss check reads the loss back (a device sync on CUDA, an all-reduce when distributed)
    check_every = 20 if precision.device.type == "cuda" or is_distributed() else 1
    bar = progress_bar(loader, progress, desc=f"epoch {epoch}" if epoch is not None else "train", leave=False,
                       unit="batch")
    for step, batch in enumerate(bar):
        labels = batch[1]  # a batch of unreadable images only (labels on the CPU, so no device sync) adds nothing
        nothing_to_learn = labels.device.type == "cpu" and bool((labels == SKIPPED_LABEL).all())
        x, y = precision.batch(*batch)
        lrs.append(get_lr(optimizer))
        momentums.append(get_momentum(optimizer))
        optimizer.zero_grad(set_to_none=True)
        with precision.autocast():
            output = model(x)
            loss = output.sum() * 0 if nothing_to_learn else criterion(output, y)
        losses[step] = loss.detach().float()
        if (step + 1) % check_every == 0 or step + 1 == num_steps:
            _check_finite(losses, step + 1, epoch)
        scaler.scale(loss).backward()
        if grad_clip:
            scaler.unscale_(optimizer)
            nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
        scaler.step(optimizer)
        scaler.update()
        if scheduler is not None:
            _step_scheduler(scheduler, scaler)
        if after_step is not None:
            after_step()
        valid = y != SKIPPED_LABEL
        correct += ((output.argmax(1) == y) & valid).sum()
        seen += valid.sum()
        skipped += len(y) - valid.sum()
        if postfix_due(bar, last=step + 1 == num_steps):
            bar.set_postfix(loss=f"{losses[step].item():.3f}", acc=f"{100 * correct.item() / max(seen.item(), 1):.2f}%",
                            lr=f"{get_lr(optimizer):.2e}")
    _check_finite(losses, num_steps, epoch)
    loss_sum, hits, seen, skipped, steps = sum_over_processes(
        [losses.sum().item(), correct.item(), seen.item(), skipped.item(), num_steps], precision.device)
    mean = loss_sum / max(steps, 1)  # over the steps of every process
    result = TrainResult(int(hits), int(seen), mean * num_steps)
    result.num_steps = num_steps
    result.skipped = int(skipped)
    result.steps = {"lr": lrs, "momentum": momentums, "loss": losses.tolist()}
    return result


@torch.inference_mode()
def test(model, device, loader, criterion, *, precision="auto", topk=1, progress=None, desc="test"):
    """Evaluate; returns a ``TestResult`` (``correct, loss``; ``.acc``, and ``.top5`` with ``topk=5``),
    over all processes of a distributed run, each of which evaluates its share of the loader.
    ``progress`` as in ``train`` (a bar named ``desc``)."""
    precision = Precision.resolve(device, precision)
    model.eval()
    total_loss = torch.zeros((), device=precision.device)
    correct = torch.zeros(topk, device=precision.device)
    seen, skipped = (torch.zeros((), device=precision.device, dtype=torch.long) for _ in range(2))
    for batch in progress_bar(loader, progress, desc=desc, leave=False, unit="batch"):
        x, y = precision.batch(*batch)
        valid = y != SKIPPED_LABEL
        with precision.autocast():
            output = model(x)
            total_loss += torch.where(valid.any(), criterion(output, y).float() * valid.sum(), 0.0)
        top = output.topk(min(topk, output.shape[1]), dim=1).indices
        hits = ((top == y[:, None]).cumsum(1).clamp(max=1) * valid[:, None]).sum(0).float()
        correct[:len(hits)] += hits
        seen += valid.sum()
        skipped += len(y) - valid.sum()
    loss_sum, seen, skipped, *hits = sum_over_processes([total_loss.item(), seen.item(), skipped.item(),
                                                          *correct.tolist()], precision.device)
    result = TestResult(int(hits[0]), loss_sum / max(seen, 1))
    result.processed, result.skipped = int(seen), int(skipped)
    result.correct5 = int(hits[min(4, len(hits) - 1)]) if topk >= 5 else None
    return result


class LookaheadAverage:
    """Weight averaging as Keller Jordan's airbench94 does it ("lookahead"): every ``every`` training
    steps the running average moves towards the weights with ``decay = base_decay ** every * (step /
    total_steps) ** power`` and the weights jump back to the average; ``finish()`` (after the last step)
    leaves the average in the model. Early on the decay is near 0 (the average follows the weights); at the
    last step it is ``base_decay ** every`` (0.95 ** 5 = 0.77 with the defaults), a memory of about 4 updates,
    the last 20 or so steps: a cheap ensemble.

    It averages every floating-point entry of the model's state (batch-norm statistics too). ``fit(...,
    weight_average=LookaheadAverage(model, epochs * len(train_loader)))`` calls it and keeps it in the
    checkpoints, so a resumed run stays exact."""

    def __init__(self, model, total_steps, every=5, base_decay=0.95, power=3):
        self.model, self.total_steps = unwrap(model), total_steps
        self.every, self.base_decay, self.power, self.step = every, base_decay, power, 0
        self.average = {name: tensor.detach().clone() for name, tensor in self.model.state_dict().items()
                        if tensor.is_floating_point()}

    def after_step(self):
        """Count one training step; every ``every`` steps, average and jump back."""
        self.step += 1
        if self.step % self.every == 0:
            self._update(self.base_decay ** self.every * (self.step / self.total_steps) ** self.power)

    def finish(self):
        """Put the average into the model (the weights the run ends with)."""
        self._update(1.0)

    @torch.no_grad()
    def _update(self, decay):
        for name, tensor in self.model.state_dict().items():
            if name in self.average:
                self.average[name].lerp_(tensor, 1 - decay)
                tensor.copy_(self.average[name])

    def state_dict(self):
        """The step count and the average, for a checkpoint."""
        return {"step": self.step, "average": self.average}

    def load_state_dict(self, state):
        """Continue from a checkpoint's ``state_dict()``."""
        self.step = state["step"]
        for name, tensor in state["average"].items():
            self.average[name].copy_(tensor)


# ---------------------------------------------------------------------------------------------- fit
def new_history():
    """An empty history: per-epoch metrics and time, and the LR and momentum at every step."""
    return {"train_loss": [], "train_acc": [], "test_loss": [], "test_acc": [], "test_top5": [],
            "epoch_time": [], "lr": [], "momentum": []}


def fit(model, device, train_loader, test_loader, optimizer, criterion, epochs, scheduler=None, *,
        scheduler_per_batch=None, precision="auto", grad_clip=None, topk=1, checkpoint_dir=None, save_every=0,
        resume=None, seed=0, progress=None, log=print, test_name="test", weight_average=None):
    """Train for ``epochs`` epochs, evaluating after each; returns the history dict and logs one line
    per epoch.

    ``scheduler`` is stepped per batch for OneCycleLR (or when ``scheduler_per_batch``), else per epoch.
    With ``checkpoint_dir``, ``last.pt`` is written after every epoch, ``best.pt`` when the test accuracy
    improves and ``epoch_<k>.pt`` every ``save_every`` epochs, each atomically, ``last.pt`` after the
    others: an interrupt between two of them leaves ``last.pt`` at the epoch before, whose resumed run
    writes them all again, never a ``best.pt`` that misses the epoch ``last.pt`` holds. ``resume`` (a
    checkpoint path) restores model, optimizer, scheduler, scaler and history and continues the same schedule;
    because each epoch's randomness is derived from ``(seed, epoch, rank)`` (``start_epoch_randomness``),
    the resumed run is the straight run, bit for bit. Ctrl-C (or SIGTERM, turned into it by ``main.py``)
    stops after saying which checkpoint holds the last finished epoch.

    A ``torch.compile``d model trains as it is; checkpoints hold the plain module's weights (``unwrap``).
    Distributed runs: pass the DistributedDataParallel model (checkpoints hold the inner model's
    weights, and evaluation runs on it) and a loader whose sampler shards by rank; give
    ``checkpoint_dir`` and ``log`` only on rank 0. ``test_name`` names the evaluation split in the log
    ("test" for CIFAR, "val" for an ImageNet validation folder). ``weight_average`` (a
    ``LookaheadAverage``) is updated after every step and finished before the last evaluation.
    ``progress``: live bars for training and evaluation (True), none (False), or as ``progress.show_bar``
    decides (None: for a person watching a terminal or a live notebook, not in logs, CI or executed
    notebooks); the per-epoch line is logged either way.
    """
    precision = Precision.resolve(device, precision)
    scaler = precision.grad_scaler()
    if scheduler_per_batch is None:
        scheduler_per_batch = isinstance(scheduler, torch.optim.lr_scheduler.OneCycleLR)
    raw_model = unwrap(model)  # what checkpoints hold
    eval_model = model.module if isinstance(model, nn.parallel.DistributedDataParallel) else model
    history, start_epoch, best_acc = new_history(), 1, -1.0
    if checkpoint_dir is not None:
        checkpoint_dir = Path(checkpoint_dir)
        checkpoint_dir.mkdir(parents=True, exist_ok=True)
    parts = {"model": raw_model, "optimizer": optimizer, "scheduler": scheduler, "scaler": scaler,
             "weight_average": weight_average}
    if resume:
        history, start_epoch, seed = restore(resume, parts, epochs, len(train_loader), seed, log)
        best_acc = max(history["test_acc"], default=-1.0)
    epoch = start_epoch
    try:
        for epoch in range(start_epoch, epochs + 1):
            start = time.perf_counter()
            start_epoch_randomness(train_loader, seed, epoch, process_rank())
            trained = train(model, device, train_loader, optimizer, criterion,
                            scheduler if scheduler_per_batch else None, precision=precision, scaler=scaler,
                            grad_clip=grad_clip, epoch=epoch, progress=progress,
                            after_step=weight_average.after_step if weight_average is not None else None)
            if scheduler is not None and not scheduler_per_batch:
                scheduler.step()
            if weight_average is not None and epoch == epochs:
                weight_average.finish()
            share_buffers_from_rank0(raw_model)
            tested = test(eval_model, device, test_loader, criterion, precision=precision, topk=topk,
                          progress=progress, desc=f"epoch {epoch} {test_name}")
            record_epoch(history, trained, tested, time.perf_counter() - start)
            log(epoch_line(epoch, epochs, trained, tested, test_name, history["epoch_time"][-1]))
            if checkpoint_dir is not None:  # last.pt last: an epoch it holds is in best.pt and epoch_<k>.pt too
                state = checkpoint_state(parts, epoch, epochs, len(train_loader), history, seed)
                if tested.acc > best_acc:
                    best_acc = tested.acc
                    save_checkpoint(state, checkpoint_dir / "best.pt")
                if save_every and epoch % save_every == 0:
                    save_checkpoint(state, checkpoint_dir / f"epoch_{epoch}.pt")
                save_checkpoint(state, checkpoint_dir / "last.pt")
    except KeyboardInterrupt:  # it can land anywhere, even between writing last.pt and noting it: ask the file
        log(interrupted_line(epoch, checkpoint_dir, resume, start_epoch))
        raise
    return history


def restore(resume, parts, epochs, steps_per_epoch, seed, log):
    """Load the checkpoint ``resume`` into ``parts`` (model, optimizer, scheduler, scaler, weight average);
    returns its history, the epoch to continue at and the seed to continue with (the checkpoint's)."""
    state = load_checkpoint(resume)
    check_compatible(state, parts["model"], epochs, steps_per_epoch, resume)
    parts["model"].load_state_dict(state["model"])
    parts["optimizer"].load_state_dict(state["optimizer"])
    if parts["scheduler"] is not None and state.get("scheduler"):
        parts["scheduler"].load_state_dict(state["scheduler"])
    if state.get("scaler"):
        parts["scaler"].load_state_dict(state["scaler"])
    if parts["weight_average"] is not None:
        if not state.get("weight_average"):
            raise CheckpointError(f"{resume} holds no weight average; resume it without weight_average")
        parts["weight_average"].load_state_dict(state["weight_average"])
    if state.get("seed", seed) != seed:
        log(f"note: {resume} was made with seed {state['seed']}, not {seed}: the epochs' global RNG continues "
            f"with {state['seed']}; build the loaders with seed {state['seed']} too (main.py --resume does) "
            "for an exact continuation")
        seed = state["seed"]
    log(f"resumed from {resume}: epoch {state['epoch']} done, continuing at epoch {state['epoch'] + 1}")
    return state["history"], state["epoch"] + 1, seed


def checkpoint_state(parts, epoch, epochs, steps_per_epoch, history, seed):
    """What a checkpoint holds after ``epoch``: every part's state, the history and the seed."""
    scheduler, scaler, average = parts["scheduler"], parts["scaler"], parts["weight_average"]
    return {"model": parts["model"].state_dict(), "optimizer": parts["optimizer"].state_dict(),
            "scheduler": scheduler_state(scheduler) if scheduler is not None else None,
            "scaler": scaler.state_dict() if scaler.is_enabled() else None, "epoch": epoch,
            "epochs": epochs, "steps_per_epoch": steps_per_epoch, "history": history, "seed": seed,
            "weight_average": average.state_dict() if average is not None else None}


def record_epoch(history, trained, tested, seconds):
    """Append an epoch's results (and its steps' LRs and momentums) to ``history``."""
    history["epoch_time"].append(seconds)
    history["lr"] += trained.steps["lr"]
    history["momentum"] += trained.steps["momentum"]
    history["train_loss"].append(trained.loss)
    history["train_acc"].append(trained.acc)
    history["test_loss"].append(tested.loss)
    history["test_acc"].append(tested.acc)
    history["test_top5"].append(tested.top5)


def epoch_line(epoch, epochs, trained, tested, test_name, seconds):
    """The log line of an epoch: LR, training and evaluation loss and accuracy, time, skipped images."""
    top5 = f"  top-5 {tested.top5:.2f}%" if tested.top5 is not None else ""
    skips = trained.skipped + tested.skipped
    skips = f"  skipped {skips} unreadable image(s), named in the warnings above" if skips else ""
    return (f"epoch {epoch:2d}/{epochs}  lr {trained.steps['lr'][-1]:.3g}  train loss {trained.loss:.4f} "
            f"acc {trained.acc:.2f}%  {test_name} loss {tested.loss:.4f} acc {tested.acc:.2f}%"
            f"{top5}  {seconds:.1f}s{skips}")


def interrupted_line(epoch, checkpoint_dir, resume, start_epoch):
    """What an interrupt says: where it landed and which checkpoint continues the run."""
    last = checkpoint_dir / "last.pt" if checkpoint_dir is not None else None
    saved = saved_epoch(last) if last is not None else None
    stage = f"after epoch {epoch} was saved" if saved == epoch else f"during epoch {epoch}"
    if saved is not None:
        where = f"; {last} holds epoch {saved}, continue with resume='{last}' (main.py --resume)"
    elif resume:
        where = f"; nothing new was saved: {resume} holds epoch {start_epoch - 1}, continue with resume='{resume}'"
    elif checkpoint_dir is not None:
        where = "; no epoch finished, nothing to resume"
    else:
        where = ""
    return f"interrupted {stage}{where}"
