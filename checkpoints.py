"""Checkpoints: written atomically, read with ``weights_only=True``, and checked to belong to the run that
resumes from them (``fit`` writes and reads them; ``main.py --resume`` continues from one)."""
import os
from pathlib import Path

import torch


class CheckpointError(RuntimeError):
    """A checkpoint cannot be read or does not belong to this run."""


def save_checkpoint(state, path):
    """Write ``state`` atomically: a temp file in the same folder, flushed and fsynced, then renamed over
    ``path``. A crash part way leaves the previous checkpoint intact. Ctrl-C (or SIGTERM) inside
    ``torch.save`` makes its zip writer fail with a RuntimeError on the way out; that comes out as the
    KeyboardInterrupt it is, so the run stops with its resume message rather than a traceback."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    try:
        with open(tmp, "wb") as file:
            torch.save(state, file)
            file.flush()
            os.fsync(file.fileno())
        os.replace(tmp, path)
    except Exception as error:
        if isinstance(error.__context__, KeyboardInterrupt):
            raise KeyboardInterrupt from error
        raise
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


def saved_epoch(path):
    """The epoch a checkpoint holds, read without loading its tensors (memory-mapped); None without one."""
    try:
        return torch.load(path, map_location="cpu", weights_only=True, mmap=True)["epoch"]
    except Exception:  # missing or unreadable: there is nothing to resume from
        return None


def check_compatible(state, model, epochs, steps_per_epoch, path):
    """Raise ``CheckpointError`` unless the checkpoint ``state`` (read from ``path``) fits ``model`` (the same
    entries and shapes) and a run of ``epochs`` x ``steps_per_epoch`` (a one-cycle schedule cannot continue
    with another length)."""
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


def scheduler_state(scheduler):
    """``scheduler.state_dict()`` without the functions in it, which ``torch.load(weights_only=True)``
    refuses. torch 2.3 keeps OneCycleLR's anneal function there (``anneal_func``; torch 2.4 its name,
    pytorch/pytorch#123775); the scheduler built again to resume has its own, which loading keeps."""
    return {key: value for key, value in scheduler.state_dict().items() if not callable(value)}
