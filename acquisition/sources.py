"""Object image sources: scikit-image's embedded faces, a folder, or an archive read directly.

``open_source(protocol's faces.source, protocol folder)`` picks one:

- **embedded**: ``skimage.data.lfw_subset()`` holds 200 images of 25×25 px; its first 100 are
  faces (the rest are not), named ``lfw_subset_000`` … ``lfw_subset_099``.
- **folder**: images directly in it (a lab's own objects: ``digit_3.png``, ``A.tif`` ...), or LFW's
  layout ``Name/Name_0001.jpg`` (also with one wrapping folder, ``lfw/Name/...``): the first of
  these three depths that holds any image is used. An image's name is its file stem, e.g.
  ``George_W_Bush_0001``; when two files share a stem the first in sorted path order is kept.
  Only regular files are read (a link, a FIFO or a device is skipped with its reason), each at most
  ``MAX_IMAGE_BYTES``.
- **archive** (``.tgz``, ``.tar.gz``, ``.tar``, ``.tar.bz2``, ``.tar.xz``, ``.zip``): images at any
  depth, streamed member by member (tar) or read member by member (zip), never extracted to disk. A
  member with an absolute path, a ``..`` component, or that is a link or a device is refused: the
  whole archive is rejected with one line naming that member. A truncated archive is an error too.

Image files: PNG, JPEG, TIFF (also PGM and BMP), any size up to ``MAX_IMAGE_PIXELS`` and any bit
depth. Every image becomes gray float32 in [0, 1] (``decode_gray``): 8-bit and colour images
through PIL's ``convert("L")`` (ITU-R 601-2 luma, L = 0.299 R + 0.587 G + 0.114 B) divided by 255;
16-bit images (PNG, TIFF: PIL mode ``I;16``) divided by 65535; 32-bit integer images by 65535 when
every value fits in 16 bits (PIL opens some 16-bit files so), else by 2³¹ − 1; floating-point
TIFFs are taken as [0, 1] and clipped. A multi-page TIFF gives its first page. Otsu's threshold,
the default binarisation, does not depend on this scale; a fixed ``binarise.threshold`` is a
fraction of it. An image that cannot be decoded (corrupt, truncated, not an image, absurdly large)
is reported and skipped; the caller stores the skips ("name: reason") in the dataset.
"""

from __future__ import annotations

import io
import stat
import tarfile
import zipfile
import zlib
from collections.abc import Iterable, Iterator
from pathlib import Path, PurePosixPath

import numpy as np

from speckle_core.errors import UserError
from speckle_core.text import one_line

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".pgm", ".bmp", ".tif", ".tiff")
ARCHIVE_SUFFIXES = (".tgz", ".tar.gz", ".tar", ".tar.bz2", ".tar.xz", ".zip")
EMBEDDED_FACES = 100  # skimage.data.lfw_subset(): images 0..99 are faces, 100..199 are not
MAX_IMAGE_BYTES = 200_000_000  # a 16-bit 8k×8k TIFF is 128 MB; more is not an object image
MAX_IMAGE_PIXELS = 100_000_000  # refuse decompression bombs (LFW: 250×250; a 16 MP camera: 16 M)


def is_archive(path: Path) -> bool:
    return path.name.lower().endswith(ARCHIVE_SUFFIXES)


class FaceSource:
    """Names every image it holds (sorted) and reads a chosen few as gray arrays."""

    label = "faces"
    origin = ""  # the protocol file, prefixed to error messages ("protocols/x.toml: faces.count: ...")

    def names(self) -> list[str]:
        raise NotImplementedError

    def read(self, wanted: Iterable[str]) -> Iterator[tuple[str, np.ndarray | None, str]]:
        """Yields (name, gray image or None, reason when None) for each wanted name, any order."""
        raise NotImplementedError


class EmbeddedSource(FaceSource):
    """The 100 faces of ``skimage.data.lfw_subset()`` (25×25 px, gray, already cropped)."""

    label = "embedded (skimage lfw_subset)"

    def __init__(self) -> None:
        self._images: np.ndarray | None = None

    def _all(self) -> np.ndarray:
        if self._images is None:
            from skimage.data import lfw_subset

            self._images = np.asarray(lfw_subset()[:EMBEDDED_FACES], dtype=np.float32)
        return self._images

    def names(self) -> list[str]:
        return [f"lfw_subset_{i:03d}" for i in range(EMBEDDED_FACES)]

    def read(self, wanted):
        images = self._all()
        for name in wanted:
            yield name, np.clip(images[int(name.rsplit("_", 1)[1])], 0.0, 1.0), ""


# -- decoding ------------------------------------------------------------------------------------------

def _gray01(im) -> np.ndarray:
    """A PIL image (any mode) as gray float32 in [0, 1]; see the module docstring for the scales."""
    mode = im.mode
    if mode.startswith("I;16"):
        return np.asarray(im, dtype=np.float32) / 65535.0
    if mode == "I":
        a = np.asarray(im, dtype=np.float64)
        full = 65535.0 if a.size and a.min() >= 0 and a.max() <= 65535 else float(2**31 - 1)
        return np.clip(a / full, 0.0, 1.0).astype(np.float32)
    if mode == "F":
        a = np.asarray(im, dtype=np.float32)
        if not np.isfinite(a).all():
            raise ValueError("floating-point image holds NaN or infinity")
        return np.clip(a, 0.0, 1.0)
    return np.asarray(im.convert("L"), dtype=np.float32) / 255.0  # ITU-R 601-2 luma


def decode_gray(data: bytes) -> np.ndarray:
    """Decodes image bytes to gray float32 in [0, 1]; raises ValueError with a short reason."""
    from PIL import Image, UnidentifiedImageError

    if len(data) == 0:
        raise ValueError("empty file")
    try:
        with Image.open(io.BytesIO(data)) as im:
            if im.width * im.height > MAX_IMAGE_PIXELS:
                raise ValueError(f"{im.width}x{im.height} px is too large for an object image")
            im.load()  # decodes now (the first page of a multi-page TIFF): a truncated JPEG fails here
            arr = _gray01(im)
    except UnidentifiedImageError:
        raise ValueError("not an image") from None
    except (OSError, SyntaxError, Image.DecompressionBombError, zlib.error, TypeError) as e:
        raise ValueError(f"unreadable image ({one_line(e, 120)})") from None
    if arr.ndim != 2 or min(arr.shape) < 2:
        raise ValueError(f"unexpected image shape {arr.shape}")
    return arr


# -- a folder ------------------------------------------------------------------------------------------

class FolderSource(FaceSource):
    """A folder of images: flat (``digit_3.png``), or LFW's ``Name/Name_0001.jpg`` (one wrapping
    folder, e.g. ``lfw/``, allowed)."""

    def __init__(self, path: Path):
        self.path = path
        self.label = f"folder {path}"
        self._files: dict[str, Path] | None = None

    def _index(self) -> dict[str, Path]:
        if self._files is None:
            files: dict[str, Path] = {}
            for pattern in ("*", "*/*", "*/*/*"):
                for p in sorted(self.path.glob(pattern)):
                    if p.suffix.lower() in IMAGE_SUFFIXES and not p.is_dir():
                        files.setdefault(p.stem, p)  # a duplicate name keeps the first in sorted order
                if files:
                    break
            self._files = files
        return self._files

    def names(self) -> list[str]:
        return sorted(self._index())

    def read(self, wanted):
        from speckle_core.fileio import read_bytes_capped

        files = self._index()
        for name in wanted:
            path = files[name]
            try:
                if path.is_symlink() or not stat.S_ISREG(path.lstat().st_mode):
                    raise UserError("not a regular file (a link, FIFO or device is not read)")
                data = read_bytes_capped(path, "image", MAX_IMAGE_BYTES)
                yield name, decode_gray(data), ""
            except UserError as e:
                yield name, None, str(e).removeprefix(f"{path}: ")
            except (OSError, ValueError) as e:
                yield name, None, str(e) if isinstance(e, ValueError) else f"cannot read ({e.strerror or e})"


# -- archives ------------------------------------------------------------------------------------------

def _member_name(member_path: str) -> str:
    return PurePosixPath(member_path).stem


def _check_member_path(archive: Path, raw: str) -> None:
    parts = PurePosixPath(raw.replace("\\", "/")).parts
    if raw.startswith(("/", "\\")) or (len(raw) > 1 and raw[1] == ":"):
        raise UserError(f"{archive}: refusing archive member {raw!r}: absolute path")
    if ".." in parts:
        raise UserError(f"{archive}: refusing archive member {raw!r}: '..' in its path")


def check_member(archive: Path, member: tarfile.TarInfo) -> None:
    """Refuses members that could escape a folder or point elsewhere: absolute, ``..``, links, devices."""
    raw = member.name
    _check_member_path(archive, raw)
    if member.issym() or member.islnk():
        raise UserError(f"{archive}: refusing archive member {raw!r}: a link (to {member.linkname!r})")
    if not (member.isfile() or member.isdir()):
        raise UserError(f"{archive}: refusing archive member {raw!r}: not a regular file or folder")


def _is_image(member_path: str) -> bool:
    return PurePosixPath(member_path).suffix.lower() in IMAGE_SUFFIXES


class ArchiveSource(FaceSource):
    """``lfw.tgz`` (or any tar) read in streaming mode: one sequential pass per call, nothing extracted."""

    def __init__(self, path: Path):
        self.path = path
        self.label = f"archive {path}"
        self._names: list[str] | None = None

    def _members(self) -> Iterator[tuple[tarfile.TarFile, tarfile.TarInfo]]:
        """Every image member, checked; raises UserError on hostile members or a damaged archive."""
        from speckle_core.fileio import open_regular

        last = "(start)"
        try:
            with open_regular(self.path, "archive") as fh, tarfile.open(fileobj=fh, mode="r|*") as tf:
                for member in tf:
                    check_member(self.path, member)
                    last = member.name
                    if member.isfile() and _is_image(member.name):
                        yield tf, member
        except (tarfile.TarError, EOFError, zlib.error, OSError) as e:
            raise UserError(f"{self.path}: truncated or corrupt archive after member {last!r} ({e})"
                            ) from None

    def names(self) -> list[str]:
        if self._names is None:
            self._names = sorted({_member_name(m.name) for _, m in self._members()})
        return self._names

    def read(self, wanted):
        todo = set(wanted)
        for tf, m in self._members():
            name = _member_name(m.name)
            if name not in todo:
                continue
            todo.discard(name)  # a duplicate name: the first member wins
            if m.size > MAX_IMAGE_BYTES:
                yield name, None, f"{m.size} bytes is too large for an object image"
                continue
            try:
                f = tf.extractfile(m)  # reads the member's bytes from the stream; writes nothing
                data = f.read() if f is not None else b""
            except (tarfile.TarError, EOFError, zlib.error, OSError) as e:
                raise UserError(f"{self.path}: truncated or corrupt archive in member {m.name!r} ({e})"
                                ) from None
            try:
                yield name, decode_gray(data), ""
            except ValueError as e:
                yield name, None, str(e)
        for name in sorted(todo):
            yield name, None, "not found in the archive"


class ZipSource(FaceSource):
    """A ``.zip`` of images (any depth), read member by member from its central directory."""

    def __init__(self, path: Path):
        self.path = path
        self.label = f"archive {path}"
        self._index: dict[str, zipfile.ZipInfo] | None = None

    def _open(self):
        from speckle_core.fileio import open_regular

        fh = open_regular(self.path, "archive")
        try:
            return zipfile.ZipFile(fh)
        except (zipfile.BadZipFile, OSError, EOFError) as e:
            fh.close()
            raise UserError(f"{self.path}: truncated or corrupt zip archive ({e})") from None

    def _members(self) -> dict[str, zipfile.ZipInfo]:
        if self._index is None:
            index: dict[str, zipfile.ZipInfo] = {}
            with self._open() as zf:
                for info in sorted(zf.infolist(), key=lambda i: i.filename):
                    _check_member_path(self.path, info.filename)
                    if stat.S_ISLNK(info.external_attr >> 16):
                        raise UserError(f"{self.path}: refusing archive member {info.filename!r}: a link")
                    if not info.is_dir() and _is_image(info.filename):
                        index.setdefault(_member_name(info.filename), info)
            self._index = index
        return self._index

    def names(self) -> list[str]:
        return sorted(self._members())

    def read(self, wanted):
        index = self._members()
        with self._open() as zf:
            for name in wanted:
                info = index.get(name)
                if info is None:
                    yield name, None, "not found in the archive"
                    continue
                if info.file_size > MAX_IMAGE_BYTES:
                    yield name, None, f"{info.file_size} bytes is too large for an object image"
                    continue
                try:
                    with zf.open(info) as fh:
                        data = fh.read(MAX_IMAGE_BYTES + 1)  # the size in the directory may lie
                except (zipfile.BadZipFile, OSError, EOFError, zlib.error, NotImplementedError) as e:
                    yield name, None, f"unreadable archive member ({e})"
                    continue
                try:
                    if len(data) > MAX_IMAGE_BYTES:
                        raise ValueError("too large for an object image")
                    yield name, decode_gray(data), ""
                except ValueError as e:
                    yield name, None, str(e)


def missing_source_message(p: Path, pre: str) -> str:
    return (f"{pre}faces.source: {p} does not exist (expected \"embedded\", a folder of images, an LFW "
            "folder or an archive such as lfw.tgz; download lfw.tgz from http://vis-www.cs.umass.edu/lfw/)")


def resolve_source(source: str, protocol_dir: Path) -> Path:
    p = Path(source).expanduser()
    return p if p.is_absolute() else protocol_dir / p


def open_source(source: str, protocol_dir: Path, origin: str = "") -> FaceSource:
    """The protocol's ``faces.source`` ("embedded", a folder or an archive, relative to the protocol).

    ``origin`` (the protocol file) prefixes error messages."""
    pre = f"{origin}: " if origin else ""
    if source == "embedded":
        src: FaceSource = EmbeddedSource()
    else:
        p = resolve_source(source, protocol_dir)
        if p.is_dir():
            src = FolderSource(p)
        elif not p.exists():
            raise UserError(missing_source_message(p, pre))
        elif p.name.lower().endswith(".zip"):
            src = ZipSource(p)
        elif is_archive(p):
            src = ArchiveSource(p)
        else:
            raise UserError(f"{pre}faces.source: {p} is neither a folder nor an archive "
                            f"({', '.join(ARCHIVE_SUFFIXES)})")
    src.origin = origin
    return src
