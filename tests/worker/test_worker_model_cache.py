"""The worker's model cache: the device and torch's CPU threads are set once per process."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import torch

from worker.model_cache import ModelCache


@pytest.fixture
def restore_threads() -> Iterator[int]:
    before = torch.get_num_threads()
    yield before
    torch.set_num_threads(before)


@pytest.mark.parametrize("threads", [1, 3])
def test_threads_setting_sets_torch_threads_with_the_device(restore_threads: int, threads: int):
    cache = ModelCache("cpu", threads=threads)
    assert cache.device() == torch.device("cpu")
    assert torch.get_num_threads() == threads


def test_zero_threads_keeps_torch_default(restore_threads: int):
    ModelCache("cpu", threads=0).device()
    assert torch.get_num_threads() == restore_threads
