"""Face sources: scikit-image's embedded LFW subset, an LFW folder, or ``lfw.tgz`` read directly.

- **embedded**: ``skimage.data.lfw_subset()`` holds 200 images of 25×25 px; its first 100 are
  faces (the rest are not), named ``lfw_subset_000`` … ``lfw_subset_099``.
- **folder**: LFW's layout ``Name/Name_0001.jpg`` (also with one wrapping folder, ``lfw/Name/...``);
  an image's name is its file stem, e.g. ``George_W_Bush_0001``.
- **archive** (``.tgz``, ``.tar.gz``, ``.tar``): streamed with ``tarfile`` member by member, never
  extracted to disk. A member with an absolute path, a ``..`` component, or that is a link or a
  device is refused: the whole archive is rejected with one line naming that member. A truncated
  archive is an error too.

Every image becomes gray in [0, 1]: colour through PIL's ``convert("L")`` (ITU-R 601-2 luma,
L = 0.299 R + 0.587 G + 0.114 B), then divided by 255. An image that cannot be decoded (corrupt,
truncated, not an image, absurdly large) is reported and skipped; the caller stores the skips
("name: reason") in the dataset.

Selection is deterministic: the names are sorted, permuted by ``numpy.random.default_rng(seed)``,
and the first ``count`` readable ones in that order are taken (a skipped image is replaced by the
next candidate, so ``count`` holds). Of those, the last ``holdout`` in selection order form the
split "holdout" (never trained on); the objects are then sorted by name.
"""

from __future__ import annotations

import io
import logging
import tarfile
import zlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

import numpy as np

from speckle_core.errors import UserError

log = logging.getLogger("speckle_lab.faces")

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".pgm", ".bmp", ".tif", ".tiff")
ARCHIVE_SUFFIXES = (".tgz", ".tar.gz", ".tar", ".tar.bz2", ".tar.xz")
EMBEDDED_FACES = 100  # skimage.data.lfw_subset(): images 0..99 are faces, 100..199 are not
MAX_IMAGE_BYTES = 20_000_000  # an LFW JPEG is ~15 kB; a huge member is not a face image
MAX_IMAGE_PIXELS = 25_000_000  # refuse decompression bombs (LFW: 250×250)


@dataclass(frozen=True)
class LoadedFaces:
    """Faces selected and read: gray images in [0, 1] (float32), sorted by name."""

    names: list[str]
    images: list[np.ndarray]
    splits: list[str]  # "train" | "holdout"
    skipped: list[str] = field(default_factory=list)  # "name: reason", for the dataset


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


def decode_gray(data: bytes) -> np.ndarray:
    """Decodes image bytes to gray float32 in [0, 1]; raises ValueError with a short reason."""
    from PIL import Image, UnidentifiedImageError

    if len(data) == 0:
        raise ValueError("empty file")
    try:
        with Image.open(io.BytesIO(data)) as im:
            if im.width * im.height > MAX_IMAGE_PIXELS:
                raise ValueError(f"{im.width}x{im.height} px is too large for a face image")
            im.load()  # decodes now: a truncated or corrupt JPEG fails here
            gray = im.convert("L")  # ITU-R 601-2 luma
            arr = np.asarray(gray, dtype=np.float32) / 255.0
    except UnidentifiedImageError:
        raise ValueError("not an image") from None
    except (OSError, SyntaxError, Image.DecompressionBombError, zlib.error) as e:
        raise ValueError(f"unreadable image ({e})") from None
    if arr.ndim != 2 or min(arr.shape) < 2:
        raise ValueError(f"unexpected image shape {arr.shape}")
    return arr


class FolderSource(FaceSource):
    """An LFW folder: ``Name/Name_0001.jpg`` (one wrapping folder, e.g. ``lfw/``, is allowed)."""

    def __init__(self, path: Path):
        self.path = path
        self.label = f"folder {path}"
        self._files: dict[str, Path] | None = None

    def _index(self) -> dict[str, Path]:
        if self._files is None:
            files: dict[str, Path] = {}
            for pattern in ("*/*", "*/*/*"):
                for p in sorted(self.path.glob(pattern)):
                    if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file():
                        files.setdefault(p.stem, p)  # a duplicate name keeps the first in sorted order
                if files:
                    break
            self._files = files
        return self._files

    def names(self) -> list[str]:
        return sorted(self._index())

    def read(self, wanted):
        files = self._index()
        for name in wanted:
            try:
                data = files[name].read_bytes()
                yield name, decode_gray(data), ""
            except (OSError, ValueError) as e:
                yield name, None, str(e) if isinstance(e, ValueError) else f"cannot read ({e.strerror or e})"


def _member_name(member: tarfile.TarInfo) -> str:
    return PurePosixPath(member.name).stem


def check_member(archive: Path, member: tarfile.TarInfo) -> None:
    """Refuses members that could escape a folder or point elsewhere: absolute, ``..``, links, devices."""
    raw = member.name
    parts = PurePosixPath(raw.replace("\\", "/")).parts
    if raw.startswith(("/", "\\")) or (len(raw) > 1 and raw[1] == ":"):
        raise UserError(f"{archive}: refusing archive member {raw!r}: absolute path")
    if ".." in parts:
        raise UserError(f"{archive}: refusing archive member {raw!r}: '..' in its path")
    if member.issym() or member.islnk():
        raise UserError(f"{archive}: refusing archive member {raw!r}: a link (to {member.linkname!r})")
    if not (member.isfile() or member.isdir()):
        raise UserError(f"{archive}: refusing archive member {raw!r}: not a regular file or folder")


class ArchiveSource(FaceSource):
    """``lfw.tgz`` (or any tar) read in streaming mode: one sequential pass per call, nothing extracted."""

    def __init__(self, path: Path):
        self.path = path
        self.label = f"archive {path}"
        self._names: list[str] | None = None

    def _members(self) -> Iterator[tuple[tarfile.TarFile, tarfile.TarInfo]]:
        """Every image member, checked; raises UserError on hostile members or a damaged archive."""
        last = "(start)"
        try:
            with tarfile.open(self.path, mode="r|*") as tf:
                for member in tf:
                    check_member(self.path, member)
                    last = member.name
                    if member.isfile() and PurePosixPath(member.name).suffix.lower() in IMAGE_SUFFIXES:
                        yield tf, member
        except FileNotFoundError:
            raise UserError(f"{self.path}: no such faces archive") from None
        except PermissionError:
            raise UserError(f"{self.path}: permission denied") from None
        except (tarfile.TarError, EOFError, zlib.error, OSError) as e:
            raise UserError(f"{self.path}: truncated or corrupt archive after member {last!r} ({e})"
                            ) from None

    def names(self) -> list[str]:
        if self._names is None:
            seen: set[str] = set()
            for _, m in self._members():
                seen.add(_member_name(m))
            self._names = sorted(seen)
        return self._names

    def read(self, wanted):
        todo = set(wanted)
        for tf, m in self._members():
            name = _member_name(m)
            if name not in todo:
                continue
            todo.discard(name)  # a duplicate name: the first member wins
            if m.size > MAX_IMAGE_BYTES:
                yield name, None, f"{m.size} bytes is too large for a face image"
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


def open_source(source: str, protocol_dir: Path, origin: str = "") -> FaceSource:
    """The protocol's ``faces.source`` ("embedded", a folder or an archive, relative to the protocol).

    ``origin`` (the protocol file) prefixes error messages."""
    pre = f"{origin}: " if origin else ""
    if source == "embedded":
        src: FaceSource = EmbeddedSource()
    else:
        p = Path(source).expanduser()
        if not p.is_absolute():
            p = protocol_dir / p
        if p.is_dir():
            src = FolderSource(p)
        elif not p.exists():
            raise UserError(f"{pre}faces.source: {p} does not exist (expected \"embedded\", an LFW folder "
                            "or lfw.tgz; download lfw.tgz from http://vis-www.cs.umass.edu/lfw/)")
        elif is_archive(p):
            src = ArchiveSource(p)
        else:
            raise UserError(f"{pre}faces.source: {p} is neither a folder nor a .tgz/.tar archive")
    src.origin = origin
    return src


def selection_order(names: list[str], seed: int) -> list[str]:
    """The candidates in selection order: sorted names permuted by ``default_rng(seed)``."""
    ordered = sorted(names)
    perm = np.random.default_rng(seed).permutation(len(ordered))
    return [ordered[i] for i in perm]


def check_count(source: FaceSource, names: list[str], count: int) -> None:
    if count > len(names):
        pre = f"{source.origin}: " if source.origin else ""
        raise UserError(f"{pre}faces.count: {count} faces requested but {source.label} holds only "
                        f"{len(names)} images")


def load_faces(source: FaceSource, count: int, holdout: int, seed: int,
               names: list[str] | None = None) -> LoadedFaces:
    """Selects and reads ``count`` faces (see the module docstring); unreadable ones are skipped."""
    names = source.names() if names is None else names
    check_count(source, names, count)
    order = selection_order(names, seed)
    chosen: list[tuple[str, np.ndarray]] = []
    skipped: list[str] = []
    k = 0
    while len(chosen) < count and k < len(order):
        need = count - len(chosen)
        batch = order[k:k + need + max(8, need // 10)]  # a few spares: one pass usually suffices
        k += len(batch)
        got = {name: (img, why) for name, img, why in source.read(batch)}
        for name in batch:  # selection order, whatever order the source yielded them in
            if len(chosen) == count:
                break
            img, why = got.get(name, (None, "not read"))
            if img is None:
                log.warning("skipping face %s: %s", name, why)
                skipped.append(f"{name}: {why}")
            else:
                chosen.append((name, img))
    if len(chosen) < count:
        first = f"; first: {skipped[0]}" if skipped else ""
        pre = f"{source.origin}: " if source.origin else ""
        raise UserError(f"{pre}faces.count: {count} faces requested but only {len(chosen)} of the "
                        f"{len(names)} images in {source.label} are readable ({len(skipped)} skipped{first})")
    split = {name: ("holdout" if i >= count - holdout else "train") for i, (name, _) in enumerate(chosen)}
    chosen.sort(key=lambda t: t[0])
    return LoadedFaces([n for n, _ in chosen], [im for _, im in chosen], [split[n] for n, _ in chosen],
                       skipped)
