"""A site's labelled frames: MHD / NIfTI / PNG pairs, the echo-challenge per-patient layout, and
`echo4d train-segmenter --data DIR` fine-tuning a checkpoint on them."""

from __future__ import annotations

import json
import zlib
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from cli import app
from models.errors import ErrorCode, InputError
from models.segment.checkpoint import save_checkpoint
from models.segment.network import SegmenterConfig, UNet
from models.segment.runtime import load_segmenter
from models.segment.site_data import find_pairs, load_site_data, read_array, read_mhd

SIZE = 32


def _frame(k: int, h: int = 60, w: int = 48) -> tuple[np.ndarray, np.ndarray]:
    """A dark LV-like ellipse (label 1) above a 'left atrium' (label 3) in a bright wall (label 2)."""
    rr, cc = np.mgrid[0:h, 0:w]
    lv = ((rr - 22 - k % 3) / 14.0) ** 2 + ((cc - 24) / 9.0) ** 2 <= 1
    la = ((rr - 46) / 7.0) ** 2 + ((cc - 24) / 8.0) ** 2 <= 1
    wall = (((rr - 22) / 19.0) ** 2 + ((cc - 24) / 14.0) ** 2 <= 1) & ~lv
    label = np.where(lv, 1, np.where(la & ~lv, 3, np.where(wall, 2, 0))).astype(np.uint8)
    image = np.where(label == 2, 200, np.where(label == 0, 90, 25)).astype(np.uint16) * 3  # 16-bit export
    return image, label


def write_mhd(path: Path, array: np.ndarray, compressed: bool = False) -> None:
    """A MetaImage pair written by hand: header + .raw (or zlib .zraw), x fastest."""
    types = {np.dtype(np.uint8): "MET_UCHAR", np.dtype(np.uint16): "MET_USHORT"}
    raw = np.ascontiguousarray(array).tobytes()
    data = path.with_suffix(".zraw" if compressed else ".raw")
    data.write_bytes(zlib.compress(raw) if compressed else raw)
    dims = " ".join(str(d) for d in array.shape[::-1])
    path.write_text(f"ObjectType = Image\nNDims = {array.ndim}\nDimSize = {dims}\nElementType = "
                    f"{types[array.dtype]}\nElementSpacing = 0.3 0.3\nCompressedData = {compressed}\n"
                    f"BinaryDataByteOrderMSB = False\nElementDataFile = {data.name}\n")


def _camus_like(root: Path, n_patients: int = 3) -> None:
    for p in range(1, n_patients + 1):
        folder = root / f"patient{p:04d}"
        folder.mkdir(parents=True)
        for k, (view, phase) in enumerate([("4CH", "ED"), ("4CH", "ES"), ("2CH", "ED")]):
            image, label = _frame(p + k)
            write_mhd(folder / f"patient{p:04d}_{view}_{phase}.mhd", image, compressed=k == 1)
            write_mhd(folder / f"patient{p:04d}_{view}_{phase}_gt.mhd", label)
        # A sequence without labels is not a pair and is ignored.
        write_mhd(folder / f"patient{p:04d}_4CH_sequence.mhd", np.stack([_frame(0)[0]] * 3))


def test_mhd_reader_round_trip(tmp_path: Path) -> None:
    image, label = _frame(0)
    for compressed in (False, True):
        write_mhd(tmp_path / "x.mhd", image, compressed)
        np.testing.assert_array_equal(read_mhd(tmp_path / "x.mhd"), image)
    write_mhd(tmp_path / "seq.mhd", np.stack([label, label]))
    assert read_array(tmp_path / "seq.mhd").shape == (2, 60, 48)


def test_echo_challenge_layout_is_found_and_loaded(tmp_path: Path) -> None:
    _camus_like(tmp_path, 4)
    pairs = find_pairs(tmp_path)
    assert len(pairs) == 12 and all(lab.stem == img.stem + "_gt" for img, lab in pairs)
    data = load_site_data(tmp_path, SIZE, lv_label=1)
    assert data.n_files == 12 and len(data.train_x) + len(data.val_x) == 12 and len(data.val_x) >= 1
    assert data.train_x.dtype == np.uint8 and data.train_x.shape[1:] == (SIZE, SIZE)
    assert set(np.unique(data.train_y)) == {0, 1}  # only the LV label; myocardium and atrium are background
    assert data.train_x.max() == 255  # 16-bit exports are scaled to uint8


def test_nifti_png_and_folder_pairs(tmp_path: Path) -> None:
    image, label = _frame(1)
    nib.save(nib.Nifti1Image(np.stack([image, image]).T.astype(np.uint16), np.eye(4)), tmp_path / "a.nii.gz")
    nib.save(nib.Nifti1Image(np.stack([label, label]).T, np.eye(4)), tmp_path / "a_label.nii.gz")
    Image.fromarray((image // 3).astype(np.uint8)).save(tmp_path / "b.png")
    Image.fromarray(label * 50).save(tmp_path / "b_mask.png")  # label 1 → 50 in an 8-bit viewer export
    (tmp_path / "images").mkdir()
    (tmp_path / "labels").mkdir()
    Image.fromarray((image // 3).astype(np.uint8)).save(tmp_path / "images" / "c.png")
    Image.fromarray(label).save(tmp_path / "labels" / "c.png")
    assert {p[0].name for p in find_pairs(tmp_path)} == {"a.nii.gz", "b.png", "c.png"}
    assert read_array(tmp_path / "a.nii.gz").shape == (2, 60, 48)  # (x, y, t) on disk → (t, y, x)
    data = load_site_data(tmp_path, SIZE, lv_label=1)
    assert len(data.train_x) + len(data.val_x) == 4


@pytest.mark.parametrize(("setup", "code"), [
    ("empty", ErrorCode.INVALID_STUDY),
    ("shape_mismatch", ErrorCode.BAD_DIMENSIONS),
    ("no_lv", ErrorCode.NO_LV_LABEL),
    ("truncated_raw", ErrorCode.CORRUPT_FILE),
])
def test_bad_site_data_is_a_clear_input_error(tmp_path: Path, setup: str, code: ErrorCode) -> None:
    image, label = _frame(0)
    if setup == "shape_mismatch":
        write_mhd(tmp_path / "x.mhd", image)
        write_mhd(tmp_path / "x_gt.mhd", label[:50])
    elif setup == "no_lv":
        write_mhd(tmp_path / "x.mhd", image)
        write_mhd(tmp_path / "x_gt.mhd", np.where(label == 1, 0, label).astype(np.uint8))
    elif setup == "truncated_raw":
        write_mhd(tmp_path / "x.mhd", image)
        write_mhd(tmp_path / "x_gt.mhd", label)
        (tmp_path / "x.raw").write_bytes(b"\0" * 100)
    with pytest.raises(InputError) as err:
        load_site_data(tmp_path, SIZE)
    assert err.value.code == code


def test_train_segmenter_fine_tunes_on_site_data(tmp_path: Path) -> None:
    _camus_like(tmp_path / "site", 3)
    init = save_checkpoint(UNet(SegmenterConfig(size=SIZE, base_channels=4, depth=2)), tmp_path / "base.pt",
                           train_config={"profile": "test"}, metrics={}, curves={}, cohort_version="test")
    out = tmp_path / "site_segmenter.pt"
    res = CliRunner().invoke(app, ["train-segmenter", "--data", str(tmp_path / "site"), "--init", str(init),
                                   "--steps", "4", "--threads", "1", "--out", str(out)])
    assert res.exit_code == 0, res.output
    doc = json.loads(out.with_suffix(".json").read_text())
    assert doc["train_config"]["profile"] == "finetune" and doc["train_config"]["init"] == str(init)
    assert doc["train_config"]["data"]["source"] == "site" and doc["config"]["size"] == SIZE
    assert doc["metrics"]["n_train"] + doc["metrics"]["n_val"] == 9
    seg = load_segmenter(out, "cpu")  # what ECHO4D_SEGMENTER / --segmenter would point at
    assert seg.segment(np.zeros((2, 60, 48), np.uint8)).shape == (2, 60, 48)
    bad = CliRunner().invoke(app, ["train-segmenter", "--data", str(tmp_path / "nothing"), "--init", str(init)])
    assert bad.exit_code == 2 and "not a folder" in bad.output
