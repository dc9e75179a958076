"""Video clips (MP4, AVI) via PyAV: grey frames; spacing and view must come from the manifest.

The container's frame size, frame count and duration are checked against the limits before
decoding; decoding then stops as soon as the frame or voxel caps are passed (a container
may lie about its length), and every decoded frame must have the declared size.
"""

from __future__ import annotations

import io
from fractions import Fraction
from typing import Any

import numpy as np
from numpy.typing import NDArray

from models.errors import ErrorCode, InputError
from models.ingest.decoded import Decoded, InputItem, check_cine_size, decide_kind
from models.ingest.options import FileOptions
from models.ingest.report import SourceReport
from models.study import StudyLimits


def _frame_rate(stream: Any) -> float | None:
    rate = stream.average_rate or stream.guessed_rate or stream.base_rate
    if rate is None:
        return None
    f = float(Fraction(rate))
    return f if 0 < f <= 2000 else None


def _declared_frames(container: Any, stream: Any, fps: float | None) -> int | None:
    if stream.frames:
        return int(stream.frames)
    if stream.duration is not None and stream.time_base is not None and fps:
        return max(1, round(float(stream.duration * stream.time_base) * fps))
    if container.duration is not None and fps:
        return max(1, round(float(container.duration) / 1_000_000 * fps))
    return None


def read_video(item: InputItem, options: FileOptions, source: SourceReport, limits: StudyLimits) -> Decoded:
    """Decode an MP4/AVI clip to (T, H, W) uint8 grey frames."""
    import av

    where = source.label
    try:
        container = av.open(io.BytesIO(item.data), mode="r")
    except Exception:
        raise InputError(f"{where} is not a readable video (truncated or corrupt)", code=ErrorCode.CORRUPT_FILE,
                         field=item.name) from None
    frames: list[NDArray[np.uint8]] = []
    with container:
        if not container.streams.video:
            raise InputError(f"{where} holds no video stream", code=ErrorCode.UNSUPPORTED_FORMAT, field=item.name)
        stream = container.streams.video[0]
        if stream.codec_context is None:
            raise InputError(f"{where} uses a video codec this build cannot decode; re-encode it as H.264 MP4",
                             code=ErrorCode.UNSUPPORTED_FORMAT, field=item.name)
        h, w = int(stream.codec_context.height or 0), int(stream.codec_context.width or 0)
        fps = _frame_rate(stream)
        declared = _declared_frames(container, stream, fps)
        if max(h, w) > limits.max_side or (declared or 0) > limits.max_frames or \
                (declared or 0) * h * w > limits.max_voxels_per_view:
            check_cine_size(max(declared or 2, 2), h, w, where, limits, field=item.name)
        try:
            for frame in container.decode(stream):
                if (frame.height, frame.width) != (h, w) and h and w:
                    raise InputError(f"{where}: a frame is {frame.width}×{frame.height}, not the declared {w}×{h}",
                                     code=ErrorCode.CORRUPT_FILE, field=item.name)
                frames.append(np.asarray(frame.to_ndarray(format="gray"), dtype=np.uint8))
                if len(frames) > limits.max_frames or len(frames) * frame.height * frame.width > \
                        limits.max_voxels_per_view:
                    check_cine_size(len(frames), frame.height, frame.width, where, limits, field=item.name)
        except InputError:
            raise
        except Exception:
            raise InputError(f"{where}: the video stream cannot be decoded after {len(frames)} frame(s) "
                             "(truncated or corrupt)", code=ErrorCode.CORRUPT_FILE, field=item.name) from None
    if len(frames) < 2:
        raise InputError(f"{where} holds {len(frames)} frame(s); a cine of at least 2 frames is needed",
                         code=ErrorCode.SINGLE_FRAME, field=item.name)
    arr = np.stack(frames)
    check_cine_size(arr.shape[0], arr.shape[1], arr.shape[2], where, limits, field=item.name)
    kind, lossy = decide_kind(arr, options, lossy_codec=True)
    out = Decoded(frames=arr, kind=kind, options=options, source=source, lossy_masks=lossy)
    if fps is not None:
        out.fps, out.fps_source = fps, "container"
    return out
