"""Several processes (``torchrun``): joining the process group, this process's rank, sums over the
processes, rank 0's buffers shared with the others, the check that every replica holds the same weights,
and work done in turn. With one process each of them does what a single run needs (mostly nothing)."""
import os
import sys

import torch

from precision import get_device


def is_distributed():
    """True inside an initialised process group (a ``torchrun`` run)."""
    return torch.distributed.is_available() and torch.distributed.is_initialized()


def process_rank():
    """This process's rank; 0 outside a distributed run."""
    return torch.distributed.get_rank() if is_distributed() else 0


def setup_distributed(device_name):
    """``(rank, world_size, device)``; under torchrun, joins the process group (NCCL on CUDA, gloo on CPU)."""
    device = get_device(device_name)
    world = int(os.environ.get("WORLD_SIZE", 1))
    if world == 1:
        return 0, 1, device
    local_rank = int(os.environ["LOCAL_RANK"])
    if device.type == "cuda":
        if local_rank >= torch.cuda.device_count():
            sys.exit(f"main.py: error: torchrun started process {local_rank} on a machine with "
                     f"{torch.cuda.device_count()} GPU(s): use --nproc_per_node {torch.cuda.device_count()} "
                     "(one process per GPU), or --no_cuda for CPU processes")
        torch.cuda.set_device(local_rank)
    torch.distributed.init_process_group("nccl" if device.type == "cuda" else "gloo")
    return torch.distributed.get_rank(), world, torch.device(f"cuda:{local_rank}" if device.type == "cuda" else "cpu")


def in_turn(work):
    """``work()`` in every process, but never two at once on the same files: rank 0 first (it downloads
    CIFAR when it is missing), then the first process of each other machine, then all the rest, with a
    barrier between the waves. One process: just ``work()``."""
    if not is_distributed():
        return work()
    rank, local_rank = torch.distributed.get_rank(), int(os.environ.get("LOCAL_RANK", 0))
    result = None
    for turn in (rank == 0, rank != 0 and local_rank == 0, local_rank != 0):
        if turn:
            result = work()
        torch.distributed.barrier()
    return result


def sum_over_processes(values, device):
    """Sum a list of numbers over the processes of a distributed run (returned unchanged otherwise)."""
    if not is_distributed():
        return values
    totals = torch.tensor(values, dtype=torch.float64, device=device)
    torch.distributed.all_reduce(totals)
    return totals.tolist()


def share_buffers_from_rank0(model):
    """Give every process rank 0's buffers (batch-norm running statistics). DDP broadcasts them at the
    start of each training forward, but the last step leaves each process with statistics from its own
    batches; after this, every process evaluates the very model that rank 0 saves in the checkpoint."""
    if is_distributed():
        for buffer in model.buffers():
            torch.distributed.broadcast(buffer, 0)


def _plain_name(name):
    """A state-dict entry's name without the prefixes of the DDP and ``torch.compile`` wrappers."""
    while name.startswith(("module.", "_orig_mod.")):
        name = name.split(".", 1)[1]
    return name


def replicas_agree(model):
    """In a distributed run, check that every process holds exactly rank 0's weights and buffers (what
    DistributedDataParallel guarantees and the checkpoint holds); returns a line for the log, or raises
    ``RuntimeError`` naming the first tensor that differs (a model trained without the DDP wrapper, say).
    ``model`` may be wrapped (DDP, ``torch.compile``): a wrapper's state holds the same tensors."""
    if not is_distributed():
        return "one process: nothing to compare"
    for name, tensor in model.state_dict().items():
        reference = tensor.detach().clone()
        torch.distributed.broadcast(reference, 0)
        same = torch.tensor(int(torch.equal(reference, tensor)), device=tensor.device)
        torch.distributed.all_reduce(same, op=torch.distributed.ReduceOp.MIN)
        if not same.item():
            raise RuntimeError(f"the processes hold different weights: '{_plain_name(name)}' differs from rank "
                               "0's; was the model wrapped in DistributedDataParallel?")
    return f"weights and buffers identical in all {torch.distributed.get_world_size()} processes"
