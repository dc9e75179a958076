"""Sampling with replacement from fixed discrete distributions, drawn exactly as ``torch.multinomial`` draws.

``torch.multinomial(probs, n, replacement=True)`` (CPU, n > 1) rebuilds every row's cumulative
distribution on every call (a float32 running sum divided by the row's total, last entry set to 1)
and then, row after row, binary-searches one double-precision uniform draw per sample. The
reconstruction samples the same rows hundreds of times (:class:`models.recon.rendering.PixelBank`),
so :func:`cumulative_rows` builds those distributions once and :func:`sample_rows` searches them
with the same uniform draws (``torch.rand`` in float64 consumes the generator exactly as the kernel
does). The indices and the generator's state after the call are identical to ``torch.multinomial``'s
(``tests/models/recon/test_recon_sampling.py``); it avoids re-summing 10⁴–10⁵ categories per row per
step.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor


def cumulative_rows(probs: Tensor) -> tuple[Tensor, Tensor]:
    """The normalised cumulative distribution (R, C) float64 of each row of ``probs`` (R, C) float32,
    built as ``torch.multinomial`` builds it, and whether each row (R,) bool is a valid distribution
    (non-negative, finite, positive total; an invalid row is left to ``torch.multinomial`` to refuse)."""
    p = probs.detach().to("cpu", torch.float32).numpy()
    with np.errstate(divide="ignore", invalid="ignore"):
        cum = np.add.accumulate(p, axis=1, dtype=np.float32)  # sequential float32 sums, like the kernel
        total = cum[:, -1:].copy()
        cum = cum / total
    cum[:, -1] = 1.0
    valid = (p >= 0).all(axis=1) & np.isfinite(p).all(axis=1) & (total[:, 0] > 0)
    return (torch.from_numpy(cum.astype(np.float64)).to(probs.device),
            torch.from_numpy(valid).to(probs.device))


def sample_rows(probs: Tensor, cdf: Tensor, valid: Tensor, n: int, generator: torch.Generator) -> Tensor:
    """``torch.multinomial(probs, n, replacement=True, generator=generator)`` (R, n) long, computed from
    the row distributions ``cdf`` (R, C) of :func:`cumulative_rows` (``probs`` (R, C), ``valid`` (R,)).

    Falls back to ``torch.multinomial`` itself where its result is not drawn this way (off the CPU,
    ``n == 1``, or an invalid row, which it refuses)."""
    if probs.device.type != "cpu" or n <= 1 or not bool(valid.all()):
        return torch.multinomial(probs, n, replacement=True, generator=generator)
    u = torch.rand((int(cdf.shape[0]), n), generator=generator, dtype=torch.float64, device=cdf.device)
    return torch.searchsorted(cdf, u)
