"""The reconstruction profiles by name: the one list every edge (API, worker, command line) validates against.

Torch-free, so the API can import it. What each profile sets is in :mod:`models.recon.config`.
"""

from __future__ import annotations

from typing import Final, Literal, get_args

ProfileName = Literal["default", "paper", "smoke"]
PROFILES: Final[tuple[ProfileName, ...]] = get_args(ProfileName)
DEFAULT_PROFILE: Final[ProfileName] = "default"
