"""Training: ``train`` and ``test`` for one epoch, ``fit`` for the epoch loop with history and checkpoints.

The default path is the fast one: autocast (bf16 on a CPU that has bf16 units, bf16 or fp16 with a
GradScaler on CUDA), channels_last, ``zero_grad(set_to_none=True)``, non-blocking copies. Each can be
turned off (``precision="fp32"``, ``channels_last=False``) for a plain fp32 run.
"""
import os
import random
import time
from contextlib import nullcontext
from pathlib import Path

import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm

PRECISIONS = ("auto", "bf16", "fp16", "fp32")


class NonFiniteLossError(RuntimeError):
    """The loss became NaN or infinite; training stopped."""


class CheckpointError(RuntimeError):
    """A checkpoint cannot be read or does not belong to this run."""


def get_lr(optimizer):
    """The learning rate of the first parameter group."""
    return optimizer.param_groups[0]["lr"]


def get_momentum(optimizer):
    """Momentum of the first parameter group (SGD momentum or Adam's beta1), or None."""
    group = optimizer.param_groups[0]
    return group["betas"][0] if "betas" in group else group.get("momentum")


def cpu_has_bf16():
    """True when this CPU has native bf16 units (AMX or AVX-512 BF16), where bf16 autocast pays off."""
    return bool(getattr(torch.cpu, "_is_amx_tile_supported", lambda: False)()
                or getattr(torch.cpu, "_is_avx512_bf16_supported", lambda: False)())


def resolve_precision(device, precision="auto"):
    """Turn ``"auto"`` into the fastest safe choice: bf16 on CUDA with bf16 support (fp16 otherwise), bf16
    on a CPU with bf16 units, fp32 elsewhere."""
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {PRECISIONS}, got {precision!r}")
    device = torch.device(device)
    if precision != "auto":
        if precision == "fp16" and device.type != "cuda":
            raise ValueError("fp16 autocast needs CUDA; use precision='bf16' or 'fp32' on the CPU")
        return precision
    if device.type == "cuda":
        return "bf16" if torch.cuda.is_bf16_supported() else "fp16"
    return "bf16" if device.type == "cpu" and cpu_has_bf16() else "fp32"


def autocast(device, precision):
    """The autocast context for a resolved precision (a no-op for fp32)."""
    device = torch.device(device)
    if precision == "fp32":
        return nullcontext()
    return torch.autocast(device.type, dtype=torch.bfloat16 if precision == "bf16" else torch.float16)


def make_grad_scaler(device, precision):
    """A GradScaler for fp16 on CUDA; None otherwise (bf16 and fp32 need none)."""
    return torch.amp.GradScaler("cuda") if precision == "fp16" and torch.device(device).type == "cuda" else None


def prepare_model(model, device, channels_last=True):
    """Move the model to the device, in channels_last memory format when asked."""
    model = model.to(device)
    return model.to(memory_format=torch.channels_last) if channels_last else model


def _to_device(x, y, device, channels_last):
    x = x.to(device, non_blocking=True)
    if channels_last and x.dim() == 4:
        x = x.contiguous(memory_format=torch.channels_last)
    return x, y.to(device, non_blocking=True)


def _check_finite(losses, count, epoch):
    if not torch.isfinite(losses[:count]).all():
        step = int((~torch.isfinite(losses[:count])).nonzero()[0])
        raise NonFiniteLossError(
            f"the loss became {losses[step].item()} at epoch {epoch}, step {step}; training stopped. Lower the "
            "(max) learning rate, add gradient clipping, or use precision='bf16'/'fp32' instead of fp16.")


def _sum_over_processes(values, device):
    """Sum a list of numbers over the processes of a distributed run (returned unchanged otherwise)."""
    if not (torch.distributed.is_available() and torch.distributed.is_initialized()):
        return values
    totals = torch.tensor(values, dtype=torch.float64, device=device)
    torch.distributed.all_reduce(totals)
    return totals.tolist()


def train(model, device, loader, optimizer, criterion, scheduler=None, precision="auto", scaler=None,
          channels_last=True, grad_clip=None, epoch=None, progress=True, lrs=None, momentums=None):
    """Train for one epoch; returns ``{"loss", "acc"}`` (mean loss, accuracy in %, over all processes
    of a distributed run).

    ``scheduler``, when given, is stepped after every batch (OneCycleLR). ``lrs`` and ``momentums``,
    lists, receive the learning rate and momentum used at every step. A NaN or infinite loss raises
    ``NonFiniteLossError`` naming the epoch and step (checked every few steps on CUDA to avoid a sync per
    step).
    """
    precision = resolve_precision(device, precision)
    model.train()
    num_steps = len(loader)
    losses = torch.zeros(num_steps, device=device)
    correct = torch.zeros((), device=device, dtype=torch.long)
    seen = 0
    check_every = 20 if torch.device(device).type == "cuda" else 1
    bar = tqdm(loader, desc=f"epoch {epoch}" if epoch is not None else "train", disable=not progress,
               leave=False, dynamic_ncols=True)
    for step, (x, y) in enumerate(bar):
        x, y = _to_device(x, y, device, channels_last)
        if lrs is not None:
            lrs.append(get_lr(optimizer))
        if momentums is not None:
            momentums.append(get_momentum(optimizer))
        optimizer.zero_grad(set_to_none=True)
        with autocast(device, precision):
            output = model(x)
            loss = criterion(output, y)
        losses[step] = loss.detach().float()
        if (step + 1) % check_every == 0 or step + 1 == num_steps:
            _check_finite(losses, step + 1, epoch)
        if scaler is not None:
            scaler.scale(loss).backward()
            if grad_clip:
                scaler.unscale_(optimizer)
                nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
            scaler.step(optimizer)
            scaler.update()
        else:
            loss.backward()
            if grad_clip:
                nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
            optimizer.step()
        if scheduler is not None:
            scheduler.step()
        correct += (output.argmax(1) == y).sum()
        seen += len(y)
        if progress and (step % 10 == 0 or step + 1 == num_steps):
            bar.set_postfix(loss=f"{losses[step].item():.3f}", acc=f"{100 * correct.item() / seen:.2f}%",
                            lr=f"{get_lr(optimizer):.2e}")
    _check_finite(losses, num_steps, epoch)
    totals = [losses.sum().item(), correct.item(), seen, num_steps]
    loss_sum, hits, seen, steps = _sum_over_processes(totals, device)
    return {"loss": loss_sum / max(steps, 1), "acc": 100 * hits / max(seen, 1)}


@torch.inference_mode()
def test(model, device, loader, criterion, precision="auto", channels_last=True, topk=1):
    """Evaluate; returns ``{"loss", "acc"}`` and, with ``topk=5``, ``"top5"`` (accuracies in %; over all
    processes of a distributed run, each of which evaluates its share of the loader)."""
    precision = resolve_precision(device, precision)
    model.eval()
    total_loss = torch.zeros((), device=device)
    correct = torch.zeros(topk, device=device)
    seen = 0
    for x, y in loader:
        x, y = _to_device(x, y, device, channels_last)
        with autocast(device, precision):
            output = model(x)
            total_loss += criterion(output, y).float() * len(y)
        top = output.topk(min(topk, output.shape[1]), dim=1).indices
        hits = (top == y[:, None]).cumsum(1).clamp(max=1).sum(0).float()
        correct[:len(hits)] += hits
        seen += len(y)
    loss_sum, seen, *hits = _sum_over_processes([total_loss.item(), seen, *correct.tolist()], device)
    result = {"loss": loss_sum / max(seen, 1), "acc": 100 * hits[0] / max(seen, 1)}
    if topk >= 5:
        result["top5"] = 100 * hits[min(4, len(hits) - 1)] / max(seen, 1)
    return result


# ------------------------------------------------------------------------------------------ checkpoints
def _seeded(loaders):
    return [loader for loader in loaders if isinstance(getattr(loader, "generator", None), torch.Generator)]


def _rng_state(loaders):
    numpy_state = np.random.get_state()
    state = {"torch": torch.get_rng_state(), "python": random.getstate(),
             "numpy": (numpy_state[0], torch.from_numpy(numpy_state[1].astype(np.int64)), *numpy_state[2:]),
             "loaders": [loader.generator.get_state() for loader in _seeded(loaders)]}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def _set_rng_state(state, loaders):
    torch.set_rng_state(state["torch"])
    random.setstate(state["python"])
    kind, keys, *rest = state["numpy"]
    np.random.set_state((kind, keys.numpy().astype(np.uint32), *rest))
    for loader, loader_state in zip(_seeded(loaders), state["loaders"]):
        loader.generator.set_state(loader_state)
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def save_checkpoint(state, path):
    """Write ``state`` atomically: a temp file in the same folder, flushed and fsynced, then renamed over
    ``path``. A crash part way leaves the previous checkpoint intact."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    try:
        with open(tmp, "wb") as file:
            torch.save(state, file)
            file.flush()
            os.fsync(file.fileno())
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


def load_checkpoint(path, map_location="cpu"):
    """Load a checkpoint with ``weights_only=True`` (no code in a file can run); clear errors for a
    missing, truncated, or unsafe file."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint {path} does not exist")
    try:
        state = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as error:
        if "weights_only" in str(error) or "Unsupported global" in str(error):
            raise CheckpointError(f"{path} holds objects other than tensors and plain data; it was refused "
                                  "because loading it could run code. Only load checkpoints you trust.") from None
        raise CheckpointError(f"cannot read checkpoint {path} ({type(error).__name__}: {error}); the file is "
                              "truncated or not a checkpoint: use another one (best.pt, epoch_*.pt)") from None
    if not isinstance(state, dict) or "model" not in state or "epoch" not in state:
        raise CheckpointError(f"{path} is not a checkpoint of this repository (no 'model'/'epoch' entries)")
    return state


def _check_compatible(state, model, epochs, steps_per_epoch, path):
    own = model.state_dict()
    theirs = state["model"]
    mismatched = [k for k in own if k not in theirs or theirs[k].shape != own[k].shape]
    if mismatched or set(theirs) - set(own):
        detail = mismatched[0] if mismatched else sorted(set(theirs) - set(own))[0]
        shape = f" (checkpoint {tuple(theirs[detail].shape)}, model {tuple(own[detail].shape)})" \
            if detail in theirs and detail in own else ""
        raise CheckpointError(f"{path} belongs to another model or class count: '{detail}' differs{shape}")
    saved = (state.get("epochs"), state.get("steps_per_epoch"))
    if saved != (epochs, steps_per_epoch):
        raise CheckpointError(f"{path} is from a run of {saved[0]} epochs x {saved[1]} steps; this run has "
                              f"{epochs} x {steps_per_epoch}. A one-cycle schedule cannot continue with another "
                              "length: use the same --epochs and --batch_size, or start a new run.")


# ---------------------------------------------------------------------------------------------- fit
def new_history():
    """An empty history: per-epoch metrics and time, and the LR and momentum at every step."""
    return {"train_loss": [], "train_acc": [], "test_loss": [], "test_acc": [], "test_top5": [],
            "epoch_time": [], "lr": [], "momentum": []}


def fit(model, device, train_loader, test_loader, optimizer, criterion, epochs, scheduler=None,
        scheduler_per_batch=None, precision="auto", channels_last=True, grad_clip=None, topk=1,
        checkpoint_dir=None, save_every=0, resume=None, progress=True, log=print):
    """Train for ``epochs`` epochs, evaluating after each; returns the history dict.

    ``scheduler`` is stepped per batch for OneCycleLR (or when ``scheduler_per_batch``), else per epoch.
    With ``checkpoint_dir``, ``last.pt`` is written after every epoch, ``best.pt`` when the test accuracy
    improves and ``epoch_<k>.pt`` every ``save_every`` epochs, each atomically. ``resume`` (a checkpoint
    path) restores model, optimizer, scheduler, scaler, history and RNG states and continues the same
    schedule. Ctrl-C stops after saying which checkpoint holds the last finished epoch.

    Distributed runs: pass the DistributedDataParallel model (checkpoints hold the inner model's
    weights, and evaluation runs on it) and a loader whose sampler has ``set_epoch`` (called each epoch);
    give ``checkpoint_dir`` and ``log`` only on rank 0.
    """
    precision = resolve_precision(device, precision)
    scaler = make_grad_scaler(device, precision)
    if scheduler_per_batch is None:
        scheduler_per_batch = isinstance(scheduler, torch.optim.lr_scheduler.OneCycleLR)
    loaders = [train_loader, test_loader]
    raw_model = model.module if isinstance(model, nn.parallel.DistributedDataParallel) else model
    history, start_epoch, best_acc = new_history(), 1, -1.0
    if checkpoint_dir is not None:
        checkpoint_dir = Path(checkpoint_dir)
        checkpoint_dir.mkdir(parents=True, exist_ok=True)
    if resume:
        state = load_checkpoint(resume)  # on the CPU: RNG states must stay CPU tensors
        _check_compatible(state, raw_model, epochs, len(train_loader), resume)
        raw_model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        if scheduler is not None and state.get("scheduler"):
            scheduler.load_state_dict(state["scheduler"])
        if scaler is not None and state.get("scaler"):
            scaler.load_state_dict(state["scaler"])
        _set_rng_state(state["rng"], loaders)
        history, start_epoch = state["history"], state["epoch"] + 1
        best_acc = max(history["test_acc"], default=-1.0)
        log(f"resumed from {resume}: epoch {state['epoch']} done, continuing at epoch {start_epoch}")

    def checkpoint(epoch):
        return {"model": raw_model.state_dict(), "optimizer": optimizer.state_dict(),
                "scheduler": scheduler.state_dict() if scheduler is not None else None,
                "scaler": scaler.state_dict() if scaler is not None else None, "epoch": epoch,
                "epochs": epochs, "steps_per_epoch": len(train_loader), "history": history,
                "rng": _rng_state(loaders)}

    epoch = start_epoch
    try:
        for epoch in range(start_epoch, epochs + 1):
            start = time.perf_counter()
            if hasattr(getattr(train_loader, "sampler", None), "set_epoch"):
                train_loader.sampler.set_epoch(epoch)  # DistributedSampler: a new shuffle each epoch
            train_metrics = train(model, device, train_loader, optimizer, criterion,
                                  scheduler if scheduler_per_batch else None, precision, scaler, channels_last,
                                  grad_clip, epoch, progress, history["lr"], history["momentum"])
            if scheduler is not None and not scheduler_per_batch:
                scheduler.step()
            test_metrics = test(raw_model, device, test_loader, criterion, precision, channels_last, topk)
            history["epoch_time"].append(time.perf_counter() - start)
            history["train_loss"].append(train_metrics["loss"])
            history["train_acc"].append(train_metrics["acc"])
            history["test_loss"].append(test_metrics["loss"])
            history["test_acc"].append(test_metrics["acc"])
            history["test_top5"].append(test_metrics.get("top5"))
            top5 = f"  top-5 {test_metrics['top5']:.2f}%" if "top5" in test_metrics else ""
            log(f"epoch {epoch:2d}/{epochs}  lr {history['lr'][-1]:.4f}  train loss {train_metrics['loss']:.4f} "
                f"acc {train_metrics['acc']:.2f}%  test loss {test_metrics['loss']:.4f} acc {test_metrics['acc']:.2f}%"
                f"{top5}  {history['epoch_time'][-1]:.1f}s")
            if checkpoint_dir is not None:
                state = checkpoint(epoch)
                save_checkpoint(state, checkpoint_dir / "last.pt")
                if test_metrics["acc"] > best_acc:
                    best_acc = test_metrics["acc"]
                    save_checkpoint(state, checkpoint_dir / "best.pt")
                if save_every and epoch % save_every == 0:
                    save_checkpoint(state, checkpoint_dir / f"epoch_{epoch}.pt")
    except KeyboardInterrupt:
        done = epoch - 1
        where = f"; {checkpoint_dir / 'last.pt'} holds epoch {done}, continue with resume=" \
                f"'{checkpoint_dir / 'last.pt'}' (main.py --resume)" if checkpoint_dir is not None and done >= 1 else ""
        log(f"interrupted during epoch {epoch}{where}")
        raise
    return history
