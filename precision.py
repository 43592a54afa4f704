"""The device and how a model computes on it: ``get_device`` picks the device, ``Precision`` decides once
the autocast dtype (bf16, fp16 with a GradScaler, or fp32) and the memory format (channels_last).

    device = get_device()                              # CUDA when there is one, else the CPU
    precision = Precision.resolve(device)              # "auto": the fastest safe choice for the device
    model = precision.prepare(CustomResNet())          # on the device, channels_last
    print(f"precision: {precision}")                   # precision: bf16

``train``, ``test``, ``fit``, ``find_lr`` and ``get_predictions`` take ``precision=`` as a name
(``"auto"``, ``"bf16"``, ``"fp16"``, ``"fp32"``) or as a ``Precision``; ``Precision.resolve(device, "fp32",
channels_last=False)`` is a plain fp32 run.
"""
from dataclasses import dataclass

import torch

PRECISIONS = ("auto", "bf16", "fp16", "fp32")


def get_device(name="auto"):
    """``"auto"``: ``cuda`` when available, else ``cpu``; any other name is taken as it is."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def cpu_has_bf16():
    """True when this CPU has native bf16 units (AMX or AVX-512 BF16), where bf16 autocast pays off."""
    return bool(getattr(torch.cpu, "_is_amx_tile_supported", lambda: False)()
                or getattr(torch.cpu, "_is_avx512_bf16_supported", lambda: False)())


def cuda_has_bf16(device=None):
    """True when the GPU computes in bf16 natively: compute capability 8.0 (Ampere) and up.

    ``torch.cuda.is_bf16_supported()`` also counts emulation, so it is true on a T4 (7.5) or a V100
    (7.0), which have no bf16 tensor cores; there fp16 with a GradScaler is the fast choice."""
    return torch.cuda.get_device_capability(device)[0] >= 8


def precision_reason(device, name):
    """Why ``Precision.resolve(device, "auto")`` chose ``name``, in words for a log line: the GPU's compute
    capability, or whether the CPU has bf16 units."""
    device = torch.device(device)
    if device.type == "cuda":
        major, minor = torch.cuda.get_device_capability(device)
        fast = "bf16 tensor cores" if major >= 8 else "no bf16 tensor cores: fp16 with a GradScaler"
        return f"{torch.cuda.get_device_name(device)}, compute capability {major}.{minor}: {fast}"
    return ("this CPU has bf16 units (AMX or AVX-512 BF16)" if cpu_has_bf16()
            else "this CPU has no bf16 units (bf16 would be emulated, slower than fp32)")


@dataclass(frozen=True)
class Precision:
    """How tensors are computed, decided once: the device, the autocast dtype (``name``: bf16, fp16 or
    fp32) and the memory format. ``train``, ``test``, ``fit`` and ``find_lr`` share it. ``str()`` and
    f-strings give its name (``f"{precision}"`` is ``"bf16"``)."""
    device: torch.device
    name: str
    channels_last: bool = True

    @classmethod
    def resolve(cls, device, name="auto", channels_last=True):
        """A ``Precision`` for ``device`` from ``"auto"``, ``"bf16"``, ``"fp16"`` or ``"fp32"`` (a ``Precision``
        is returned as it is). ``"auto"`` is the fastest safe choice: on CUDA bf16 from compute capability
        8.0 and fp16 (with a GradScaler) below it; on the CPU bf16 where it has bf16 units, fp32 elsewhere."""
        if isinstance(name, Precision):
            return name
        if name not in PRECISIONS:
            raise ValueError(f"precision must be one of {PRECISIONS}, got {name!r}")
        device = torch.device(device)
        if name == "fp16" and device.type != "cuda":
            raise ValueError("fp16 autocast needs CUDA; use precision='bf16' or 'fp32' on the CPU")
        if name == "auto":
            if device.type == "cuda":
                name = "bf16" if cuda_has_bf16(device) else "fp16"
            else:
                name = "bf16" if device.type == "cpu" and cpu_has_bf16() else "fp32"
        return cls(device, name, channels_last)

    def __str__(self):
        return self.name

    def __format__(self, spec):
        return format(self.name, spec)

    @property
    def dtype(self):
        """The autocast dtype, or None for fp32."""
        return {"bf16": torch.bfloat16, "fp16": torch.float16}.get(self.name)

    def autocast(self):
        """The autocast context (disabled for fp32)."""
        return torch.autocast(self.device.type, dtype=self.dtype or torch.float32, enabled=self.dtype is not None)

    @property
    def scales_gradients(self):
        """fp16 needs loss scaling (a GradScaler); bf16 and fp32 do not."""
        return self.name == "fp16"

    def grad_scaler(self):
        """A GradScaler that is enabled only for fp16 (a pass-through otherwise)."""
        return torch.amp.GradScaler(self.device.type, enabled=self.scales_gradients)

    def prepare(self, model):
        """Move the model to the device, in channels_last memory format when asked."""
        model = model.to(self.device)
        return model.to(memory_format=torch.channels_last) if self.channels_last else model

    def batch(self, x, y):
        """A batch on the device (non-blocking), inputs in the chosen memory format."""
        x = x.to(self.device, non_blocking=True)
        if self.channels_last and x.dim() == 4:
            x = x.contiguous(memory_format=torch.channels_last)
        return x, y.to(self.device, non_blocking=True)
