"""The one device resolver and the one profile list."""

from __future__ import annotations

import pytest
import torch

from models.device import resolve_device
from models.errors import ErrorCode, InputError
from models.profiles import DEFAULT_PROFILE, PROFILES
from models.recon.config import ReconConfig

AUTO = "cuda" if torch.cuda.is_available() else "cpu"


@pytest.mark.parametrize(("name", "expected"), [("cpu", "cpu"), ("auto", AUTO)])
def test_known_names_resolve(name: str, expected: str):
    assert resolve_device(name).type == expected


@pytest.mark.parametrize("name", ["gpu", "cuda:", "CPU", "cuda:x", ""])
def test_unknown_names_are_typed_input_errors(name: str):
    with pytest.raises(InputError) as err:
        resolve_device(name, field="--device")
    assert err.value.code is ErrorCode.VALIDATION_FAILED and err.value.field == "--device"


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the refusal where no CUDA device exists")
def test_cuda_without_a_device_is_refused():
    with pytest.raises(InputError, match="no such CUDA device"):
        resolve_device("cuda:0")


def test_every_profile_builds_a_config():
    assert DEFAULT_PROFILE in PROFILES
    assert [ReconConfig.from_profile(p).profile for p in PROFILES] == list(PROFILES)
