"""A site's own labelled echo frames, for fine-tuning the segmenter (``echo4d train-segmenter --data DIR``).

Pairs are found under ``DIR`` (recursively) by name: a label file ``<stem>_gt``, ``_label``,
``_seg`` or ``_mask`` next to its image ``<stem>``, in any of the formats

* MetaImage ``.mhd`` (+ its ``.raw``/``.zraw``) — read here, no SimpleITK needed;
* NIfTI ``.nii`` / ``.nii.gz`` (nibabel; arrays (x, y[, t]) → (t, y, x), row 0 = probe, as ingest);
* PNG (one frame, grey or RGB → grey);

which covers the per-patient folder layout of the public echo challenges
(``patient0001/patient0001_4CH_ED.mhd`` + ``patient0001_4CH_ED_gt.mhd``, label 1 = LV cavity,
2 = myocardium, 3 = left atrium), and an ``images/`` + ``labels/`` pair of folders with the same
file names. A 3-D pair (a labelled sequence) gives one pair per frame. Images are scaled to
uint8 (min–max when not already uint8); labels become {0, 1} masks of ``lv_label``. The data
stays at the site: nothing here is copied anywhere but into the arrays returned.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Final

import numpy as np
from numpy.typing import NDArray

from models.errors import ErrorCode, InputError
from models.segment.letterbox import letterbox

LABEL_SUFFIXES: Final = ("_gt", "_label", "_seg", "_mask")
IMAGE_EXTS: Final = (".mhd", ".nii.gz", ".nii", ".png")
MHD_TYPES: Final = {"MET_UCHAR": np.uint8, "MET_CHAR": np.int8, "MET_USHORT": np.uint16, "MET_SHORT": np.int16,
                    "MET_UINT": np.uint32, "MET_INT": np.int32, "MET_FLOAT": np.float32, "MET_DOUBLE": np.float64}


def _bad(detail: str, code: ErrorCode = ErrorCode.CORRUPT_FILE) -> InputError:
    return InputError(detail, code=code, field="data")


def _split_ext(path: Path) -> tuple[str, str]:
    name = path.name
    for ext in IMAGE_EXTS:
        if name.lower().endswith(ext):
            return name[: -len(ext)], ext
    return name, ""


def read_mhd(path: Path) -> NDArray[np.generic]:
    """A MetaImage (.mhd header + data file, raw or zlib-compressed) → array (z, y, x) or (y, x)."""
    header: dict[str, str] = {}
    for line in path.read_text(errors="replace").splitlines():
        if "=" in line:
            key, value = line.split("=", 1)
            header[key.strip()] = value.strip()
    try:
        dims = [int(v) for v in header["DimSize"].split()]
        dtype = np.dtype(MHD_TYPES[header["ElementType"]])
        data_file = header["ElementDataFile"]
    except (KeyError, ValueError):
        raise _bad(f"{path.name}: not a MetaImage header (DimSize, ElementType, ElementDataFile)") from None
    if data_file == "LOCAL":
        raise _bad(f"{path.name}: MetaImage with inline data is not supported; keep the data in a .raw file")
    raw = (path.parent / data_file).read_bytes()
    if header.get("CompressedData", "False").lower() == "true":
        raw = zlib.decompress(raw)
    big = header.get("BinaryDataByteOrderMSB", header.get("ElementByteOrderMSB", "False")).lower() == "true"
    n = int(np.prod(dims))
    if len(raw) < n * dtype.itemsize:
        raise _bad(f"{path.name}: data file holds {len(raw)} bytes, the header needs {n * dtype.itemsize}")
    arr = np.frombuffer(raw[: n * dtype.itemsize], dtype=dtype.newbyteorder(">" if big else "<"))
    return arr.reshape(dims[::-1])


def read_array(path: Path) -> NDArray[np.generic]:
    """Any supported file → (T, H, W) array (T = 1 for a single frame), row 0 = probe."""
    _, ext = _split_ext(path)
    if ext == ".mhd":
        arr = read_mhd(path)
    elif ext in (".nii", ".nii.gz"):
        import nibabel as nib

        arr = np.asarray(nib.load(str(path)).dataobj)  # type: ignore[attr-defined]
        arr = arr.T if arr.ndim in (2, 3) else arr
    elif ext == ".png":
        from PIL import Image

        with Image.open(path) as im:
            arr = np.asarray(im.convert("L") if im.mode not in ("L", "I", "I;16") else im)
    else:
        raise _bad(f"{path.name}: unsupported file type", ErrorCode.UNSUPPORTED_FORMAT)
    arr = np.squeeze(arr)
    if arr.ndim == 2:
        arr = arr[None]
    if arr.ndim != 3:
        raise _bad(f"{path.name}: expected a 2-D frame or a (frames, H, W) sequence, got shape {arr.shape}",
                   ErrorCode.BAD_DIMENSIONS)
    return arr


def _to_uint8(arr: NDArray[np.generic]) -> NDArray[np.uint8]:
    if arr.dtype == np.uint8:
        return np.asarray(arr, dtype=np.uint8)
    a = np.asarray(arr, dtype=np.float64)
    lo, hi = float(a.min()), float(a.max())
    out: NDArray[np.uint8] = np.rint((a - lo) / max(hi - lo, 1e-9) * 255.0).astype(np.uint8)
    return out


def find_pairs(root: Path) -> list[tuple[Path, Path]]:
    """(image, label) file pairs under ``root``, sorted by path."""
    if not root.is_dir():
        raise _bad(f"--data {root}: not a folder", ErrorCode.INVALID_STUDY)
    files = {p for p in root.rglob("*") if p.is_file() and _split_ext(p)[1]}
    pairs: list[tuple[Path, Path]] = []
    for label in sorted(files):
        stem, ext = _split_ext(label)
        if label.parent.name == "labels":
            image = label.parent.parent / "images" / label.name
            if image in files:
                pairs.append((image, label))
            continue
        for suffix in LABEL_SUFFIXES:
            if stem.endswith(suffix):
                image = label.with_name(stem[: -len(suffix)] + ext)
                if image in files:
                    pairs.append((image, label))
                break
    return pairs


@dataclass
class SiteData:
    """Letterboxed arrays (N, S, S) uint8 of the training and validation frames, and their sources."""

    train_x: NDArray[np.uint8]
    train_y: NDArray[np.uint8]
    val_x: NDArray[np.uint8]
    val_y: NDArray[np.uint8]
    n_files: int


def load_site_data(root: Path, size: int, lv_label: int = 1, val_every: int = 10) -> SiteData:
    """All pairs under ``root`` letterboxed to ``size``; every ``val_every``-th file pair (by sorted
    path; at least one when there are two or more) is held out for validation."""
    pairs = find_pairs(root)
    if not pairs:
        raise _bad(f"--data {root}: no image/label pairs found (expected e.g. X.mhd + X_gt.mhd, X.nii.gz + "
                   "X_label.nii.gz, X.png + X_mask.png, or images/ + labels/ folders)", ErrorCode.INVALID_STUDY)
    held_out = {k for k in range(len(pairs)) if k % val_every == val_every - 1}
    if len(pairs) >= 2 and not held_out:
        held_out = {len(pairs) - 1}
    xs: list[list[NDArray[np.uint8]]] = [[], []]
    ys: list[list[NDArray[np.uint8]]] = [[], []]
    for k, (img_path, lab_path) in enumerate(pairs):
        image, label = read_array(img_path), read_array(lab_path)
        if image.shape != label.shape:
            raise _bad(f"{lab_path.name}: label shape {label.shape} differs from its image's {image.shape}",
                       ErrorCode.BAD_DIMENSIONS)
        split = 1 if k in held_out else 0
        for frame, lab in zip(_to_uint8(image), np.asarray(label), strict=True):
            xs[split].append(letterbox(np.ascontiguousarray(frame), size)[0])
            ys[split].append(letterbox((lab == lv_label).astype(np.uint8), size, nearest=True)[0])
    if not any(int(y.sum()) for y in ys[0] + ys[1]):
        raise _bad(f"--data {root}: no pixel carries the LV label {lv_label}", ErrorCode.NO_LV_LABEL)
    return SiteData(_stack(xs[0], size), _stack(ys[0], size), _stack(xs[1], size), _stack(ys[1], size), len(pairs))


def _stack(frames: list[NDArray[np.uint8]], size: int) -> NDArray[np.uint8]:
    return np.stack(frames) if frames else np.zeros((0, size, size), np.uint8)
