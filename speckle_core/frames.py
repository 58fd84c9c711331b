"""Reading one camera frame from a user's file (PNG, TIFF, ``.npy``), bounded before it is loaded.

A frame file is sized from its header before a pixel is read: a ``.npy`` header or an image
header claiming more than :data:`MAX_FRAME_PIXELS` pixels, more bytes than the file holds, or more
memory than the machine can spare (``speckle_core.fileio.check_memory``) is refused with one line
naming the file. Only regular files are read (a FIFO or a device is refused without blocking).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from speckle_core.errors import UserError
from speckle_core.fileio import check_memory, open_regular
from speckle_core.text import one_line

IMAGE_SUFFIXES = (".png", ".tif", ".tiff")
NPY_SUFFIXES = (".npy",)
# The largest sensor a speckle rig uses is a few tens of megapixels (DCC1645C: 1.3 Mpx; scientific
# CMOS up to ~25 Mpx); 64 Mpx (8192²) leaves room and refuses a header that claims gigapixels.
MAX_FRAME_PIXELS = 8192 * 8192
_MAX_FRAME_BYTES = MAX_FRAME_PIXELS * 8 + 2**20  # float64 pixels + a header
_PIXEL_KINDS = "biuf"  # bool, signed, unsigned, float: no objects, strings, complex or structured


def _check_size(path: Path, shape: tuple[int, ...], itemsize: int) -> None:
    pixels = 1
    for s in shape:
        if s < 0:
            raise UserError(f"{path}: negative size in the header {shape}")
        pixels *= int(s)
    if pixels > MAX_FRAME_PIXELS:
        raise UserError(f"{path}: {' x '.join(str(s) for s in shape)} = {pixels} pixels is too large "
                        f"for a camera frame (at most {MAX_FRAME_PIXELS})")
    # the frame is converted to float32 afterwards: count that copy too
    check_memory(pixels * (itemsize + 4), "the frame", path)


def read_npy_header(path: Path, fh) -> tuple[tuple[int, ...], np.dtype, bool, int]:
    """(shape, dtype, fortran_order, data offset) of an open .npy, from its header alone."""
    from numpy.lib import format as npformat

    try:
        version = npformat.read_magic(fh)
        if version == (1, 0):
            shape, fortran, dtype = npformat.read_array_header_1_0(fh, max_header_size=10000)
        elif version in ((2, 0), (3, 0)):
            shape, fortran, dtype = npformat.read_array_header_2_0(fh, max_header_size=10000)
        else:
            raise ValueError(f"unknown .npy version {version}")
    except (ValueError, OSError, EOFError, SyntaxError) as e:
        raise UserError(f"{path}: not a readable .npy array ({one_line(e, 120)})") from None
    return tuple(int(s) for s in shape), np.dtype(dtype), bool(fortran), fh.tell()


def _read_npy(path: Path) -> np.ndarray:
    with open_regular(path, "frame file", _MAX_FRAME_BYTES) as fh:
        shape, dtype, fortran, offset = read_npy_header(path, fh)
        if dtype.kind not in _PIXEL_KINDS or dtype.hasobject or dtype.fields is not None:
            raise UserError(f"{path}: unsupported pixel type {dtype} (expected integers or floats)")
        _check_size(path, shape, dtype.itemsize)
        count = int(np.prod(shape, dtype=np.int64))
        size = fh.seek(0, 2)
        if size - offset < count * dtype.itemsize:
            raise UserError(f"{path}: truncated .npy: the header claims {shape} {dtype} "
                            f"({count * dtype.itemsize} bytes) but the file holds {size - offset}")
        fh.seek(offset)
        data = np.frombuffer(fh.read(count * dtype.itemsize), dtype=dtype, count=count)
    return data.reshape(shape, order="F" if fortran else "C")


def _read_image(path: Path) -> np.ndarray:
    from PIL import Image, UnidentifiedImageError
    from PIL.Image import DecompressionBombError

    with open_regular(path, "frame file", _MAX_FRAME_BYTES) as fh:
        try:
            with Image.open(fh) as im:
                # the header gives the size: bound it before decoding a pixel
                _check_size(path, (im.height, im.width), 8 if im.mode in ("F", "I") else 2)
                im.load()
                if im.mode in ("RGB", "RGBA", "P", "CMYK", "YCbCr", "LA", "PA", "1"):
                    im = im.convert("L")
                return np.array(im)
        except DecompressionBombError:
            raise UserError(f"{path}: image too large to be a camera frame (decompression bomb?)") from None
        except (UnidentifiedImageError, OSError, ValueError, SyntaxError, EOFError) as e:
            raise UserError(f"{path}: not a readable image ({one_line(e, 120)})") from None


def read_frame_file(path: str | Path) -> np.ndarray:
    """The pixels of a frame file (.png, .tif, .tiff, .npy), bounded by its header before loading.

    The array is returned as stored (any shape: the caller checks it is 2-D); every failure is a
    one-line UserError naming the file.
    """
    p = Path(path)
    suffix = p.suffix.lower()
    if suffix in NPY_SUFFIXES:
        return _read_npy(p)
    if suffix in IMAGE_SUFFIXES:
        return _read_image(p)
    raise UserError(f"{p}: unsupported frame file type {suffix or '(none)'} (PNG, TIFF or .npy)")
