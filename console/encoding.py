"""Binary websocket messages carrying images to the page (frames, and the pattern on the SLM).

One message = a 32-byte little-endian header + the pixels. The page (``static/app.js``) reads the
same layout with a DataView.

    offset  type     field
    0       4 bytes  magic: b"SPKF" (a camera frame) or b"SPKS" (the SLM pattern)
    4       uint32   seq: the frame's number (the SLM pattern's version for SPKS)
    8       uint16   width (columns)
    10      uint16   height (rows)
    12      float64  capture time, unix seconds (host clock at the end of the capture)
    20      uint8    encoding: 0 raw 8-bit gray, row-major; 1 JPEG; 2 PNG
    21      uint8    shift: the bits dropped to make 8-bit gray (2 for a 10-bit camera)
    22      uint16   reserved (0)
    24      float64  exposure in µs (NaN when unknown)

The page asks for JPEG (quality 90) by default: 126 kB for an 800×800 speckle frame against 640 kB
raw, 5 ms to encode, and on this 2-core machine headless chromium drew 20 JPEG frames/s against 6-9
raw ones (the browser's network path, not the drawing, limits raw: bench/bench_live.py). Raw gives
the exact pixels (the page's "link" menu; the tests use it). PNG compresses speckle poorly and costs
the most (54 ms).
Frames deeper than 8 bits are shifted down to their top 8 bits for display (the statistics are
computed on the full-depth frame).
"""

from __future__ import annotations

import io
import math
import struct
from dataclasses import dataclass

import numpy as np

HEADER = struct.Struct("<4sIHHdBBHd")
assert HEADER.size == 32
FRAME_MAGIC, SLM_MAGIC = b"SPKF", b"SPKS"
ENCODINGS = {"raw": 0, "jpeg": 1, "png": 2}
JPEG_QUALITY = 90


@dataclass(frozen=True)
class Header:
    magic: bytes
    seq: int
    width: int
    height: int
    time_s: float
    encoding: str
    shift: int
    exposure_us: float


def to_gray8(image: np.ndarray, max_value: int) -> tuple[np.ndarray, int]:
    """(8-bit view for display, the bits dropped): uint8 frames as they are, deeper ones shifted."""
    image = np.asarray(image)
    if image.ndim != 2:
        raise ValueError(f"expected a 2-D frame, got shape {image.shape}")
    if image.dtype == np.uint8:
        return np.ascontiguousarray(image), 0
    if image.dtype.kind not in "ui":
        raise ValueError(f"expected an integer frame, got {image.dtype}")
    shift = max(int(max_value).bit_length() - 8, 0)
    return np.ascontiguousarray((np.clip(image, 0, max_value) >> shift).astype(np.uint8)), shift


def bin_down(image: np.ndarray, max_px: int | None) -> np.ndarray:
    """``image`` binned by the smallest whole factor k that brings both sides to at most ``max_px``:
    each output pixel is the rounded mean of a k×k block (rows and columns past the last whole block
    are dropped). The image itself when it already fits (or ``max_px`` is None)."""
    image = np.asarray(image)
    if not max_px or max(image.shape) <= max_px:
        return image
    k = math.ceil(max(image.shape) / max_px)
    h, w = (image.shape[0] // k) * k, (image.shape[1] // k) * k
    exact = image.dtype.kind == "u" and image.dtype.itemsize <= 2  # sums fit in uint32
    acc = image[0:h:k, 0:w:k].astype(np.uint32 if exact else np.float64)
    for i in range(k):
        for j in range(k):
            if i or j:
                acc += image[i:h:k, j:w:k]
    if not exact:
        return (acc / (k * k)).astype(image.dtype)
    acc += (k * k) // 2
    acc //= k * k
    return acc.astype(image.dtype)


def encode_image(image: np.ndarray, *, seq: int, time_s: float, max_value: int = 255,
                 encoding: str = "raw", magic: bytes = FRAME_MAGIC,
                 exposure_us: float | None = None) -> bytes:
    """One binary message: the header and the frame's pixels (raw 8-bit, JPEG or PNG)."""
    if encoding not in ENCODINGS:
        raise ValueError(f"unknown encoding {encoding!r} (one of {', '.join(ENCODINGS)})")
    gray, shift = to_gray8(image, max_value)
    h, w = gray.shape
    if not (0 < h < 65536 and 0 < w < 65536):
        raise ValueError(f"frame of {h}×{w} pixels cannot be sent")
    if encoding == "raw":
        payload = gray.tobytes()
    else:
        from PIL import Image

        buf = io.BytesIO()
        if encoding == "jpeg":
            Image.fromarray(gray).save(buf, format="JPEG", quality=JPEG_QUALITY)
        else:
            Image.fromarray(gray).save(buf, format="PNG", compress_level=1)
        payload = buf.getvalue()
    exp = float("nan") if exposure_us is None else float(exposure_us)
    head = HEADER.pack(magic, seq & 0xFFFFFFFF, w, h, float(time_s), ENCODINGS[encoding], shift, 0, exp)
    return head + payload


def decode_header(message: bytes) -> Header:
    magic, seq, w, h, t, enc, shift, _, exp = HEADER.unpack_from(message, 0)
    name = {v: k for k, v in ENCODINGS.items()}[enc]
    return Header(magic, seq, w, h, t, name, shift, exp)


def decode_image(message: bytes) -> tuple[Header, np.ndarray]:
    """The header and 8-bit pixels of a message (what the page draws): the inverse of encode_image."""
    head = decode_header(message)
    payload = message[HEADER.size:]
    if head.encoding == "raw":
        image = np.frombuffer(payload, np.uint8).reshape(head.height, head.width)
    else:
        from PIL import Image

        image = np.asarray(Image.open(io.BytesIO(payload)).convert("L"))
    return head, image
