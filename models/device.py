"""The one place a device name becomes a ``torch.device`` (worker, command line, benchmarks).

Names: ``auto`` (the first CUDA device if there is one, else the CPU), ``cpu``, ``cuda``, ``cuda:N``.
Everything under ``models/`` takes the resulting device as a required argument; nothing defaults to one.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Final

from models.errors import ErrorCode, InputError

if TYPE_CHECKING:
    import torch

DEVICE_PATTERN: Final = re.compile(r"^(auto|cpu|cuda(:\d+)?)$")
"""The device names a setting or option may hold (torch-free: the settings check them at start-up)."""


def resolve_device(name: str, field: str = "device") -> torch.device:
    """``name`` → a usable ``torch.device``; an unknown name or an absent CUDA device is an :class:`InputError`
    naming ``field``."""
    if not DEVICE_PATTERN.match(name):
        raise InputError(f"{field} must be auto, cpu, cuda or cuda:N, got {name!r}", code=ErrorCode.VALIDATION_FAILED,
                         field=field)
    import torch

    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda"):
        index = int(name.split(":")[1]) if ":" in name else 0
        if not torch.cuda.is_available() or index >= torch.cuda.device_count():
            raise InputError(f"{field} {name} requested but no such CUDA device is available",
                             code=ErrorCode.VALIDATION_FAILED, field=field)
    return torch.device(name)
