"""Inverse-CDF sampling: the same indices and generator state as ``torch.multinomial`` (replacement)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from models.recon.rendering import PixelBank
from models.recon.sampling import cumulative_rows, sample_rows


def _probs(seed: int, rows: int, cats: int, zero_fraction: float) -> torch.Tensor:
    rng = np.random.default_rng(seed)
    p = rng.random((rows, cats)).astype(np.float32) ** 4
    p[rng.random((rows, cats)) < zero_fraction] = 0.0
    p[:, 0] = 0.0
    p[:, -1] = 0.0  # zero mass at the end: the kernel's "last entry is 1" must not pick it
    p[np.arange(rows), rng.integers(1, cats - 1, rows)] = 0.5
    return torch.from_numpy(p / p.sum(1, keepdims=True, dtype=np.float32))


@pytest.mark.parametrize(("seed", "rows", "cats", "n", "zeros"), [
    (0, 1, 3, 2, 0.0), (1, 3, 97, 500, 0.5), (2, 60, 20_000, 85, 0.8), (3, 6, 65_536, 682, 0.95),
    (4, 2, 10, 7, 0.0),
])
def test_sample_rows_equals_torch_multinomial(seed: int, rows: int, cats: int, n: int, zeros: float) -> None:
    probs = _probs(seed, rows, cats, zeros)
    cdf, valid = cumulative_rows(probs)
    assert bool(valid.all())
    g_ref, g_new = torch.Generator().manual_seed(seed), torch.Generator().manual_seed(seed)
    for _ in range(3):  # the generator must advance identically too
        want = torch.multinomial(probs, n, replacement=True, generator=g_ref)
        got = sample_rows(probs, cdf, valid, n, g_new)
        assert torch.equal(got, want)
    assert torch.equal(g_new.get_state(), g_ref.get_state())


@pytest.mark.parametrize("n", [1, 5])
def test_invalid_rows_are_refused_as_torch_refuses_them(n: int) -> None:
    probs = torch.tensor([[0.2, 0.8], [0.0, 0.0]])
    cdf, valid = cumulative_rows(probs)
    assert valid.tolist() == [True, False]
    with pytest.raises(RuntimeError):
        sample_rows(probs, cdf, valid, n, torch.Generator().manual_seed(0))


@pytest.mark.parametrize("frames", [[0, 1], [1], [1, 0, 1]])
def test_pixel_bank_draws_what_multinomial_draws(frames: list[int]) -> None:
    rng = np.random.default_rng(7)
    masks = [(rng.random((2, 30, 40)) < 0.4).astype(np.uint8), (rng.random((2, 36, 28)) < 0.3).astype(np.uint8)]
    bank = PixelBank.build(masks, [(0.5, 0.6), (0.4, 0.4)], torch.device("cpu"))
    f = torch.tensor(frames)
    g_ref, g_new = torch.Generator().manual_seed(3), torch.Generator().manual_seed(3)
    rows = (f[:, None] * bank.n_views + torch.arange(bank.n_views)[None]).reshape(-1)
    want = torch.multinomial(bank.probs[rows], 50, replacement=True, generator=g_ref).reshape(len(f), 2, 50)
    rc, target = bank.sample(f, 50, g_new)
    assert torch.equal(rc[..., 0] * bank.shape[1] + rc[..., 1], want.to(torch.float32))
    assert torch.equal(target, torch.gather(bank.targets[f], 2, want))
    sub = bank.select([1, 1, 0])
    g_ref, g_new = torch.Generator().manual_seed(4), torch.Generator().manual_seed(4)
    want = torch.multinomial(sub.probs[:3], 20, replacement=True, generator=g_ref)
    rc, _ = sub.sample(torch.tensor([0]), 20, g_new)
    assert torch.equal((rc[0, ..., 0] * sub.shape[1] + rc[0, ..., 1]).long(), want)
