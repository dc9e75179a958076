"""No patient-module value reaches the study bundle, its report, messages or logs; identifiers are salted."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
from ingest_builders import FAKE_PHI, FAKE_UIDS, base_masks, dicom_dataset, write_dicom

from models.errors import InputError
from models.ingest import load_any
from models.ingest.privacy import derived_id
from models.study import save_study

SECRETS = [*FAKE_PHI.values(), *FAKE_UIDS.values(), "Doe", "Janet", "99887766", "19450317", "5551234"]


def _scan(text: str) -> list[str]:
    return [s for s in SECRETS if s.lower() in text.lower()]


def test_dicom_phi_never_reaches_outputs_or_logs(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    ds = dicom_dataset(base_masks() * 255, series_description="A4C")
    path = write_dicom(tmp_path / "phi.dcm", ds)
    assert _scan(path.read_bytes().decode("latin-1"))  # the input does hold the values
    caplog.set_level(logging.DEBUG)
    study = load_any([path], salt=b"site-secret")
    manifest = save_study(study, tmp_path / "out")
    assert _scan(manifest.read_text()) == []
    assert _scan(repr(study.meta)) == []
    assert _scan(caplog.text) == []
    series_id = study.meta["ingest"]["sources"][0]["series_id"]
    assert series_id == derived_id(FAKE_UIDS["SeriesInstanceUID"], b"site-secret", "series")


def test_error_messages_carry_no_phi(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    ds = dicom_dataset(base_masks() * 255, frame_time_ms=None)  # no view, no timing: an error
    caplog.set_level(logging.DEBUG)
    with pytest.raises(InputError) as err:
        load_any([write_dicom(tmp_path / "phi.dcm", ds)])
    assert _scan(str(err.value)) == [] and _scan(caplog.text) == []


def test_derived_ids_depend_on_the_salt_and_need_one() -> None:
    a = derived_id("1.2.3", b"salt-a")
    assert a != derived_id("1.2.3", b"salt-b") and a == derived_id("1.2.3", "salt-a")
    assert "1.2.3" not in a
    with pytest.raises(ValueError):
        derived_id("1.2.3", b"")


def test_no_identifier_without_a_salt(tmp_path: Path) -> None:
    ds = dicom_dataset(base_masks() * 255, series_description="A4C")
    study = load_any([write_dicom(tmp_path / "phi.dcm", ds)])
    assert "series_id" not in study.meta["ingest"]["sources"][0]
