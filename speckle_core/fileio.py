"""Safe file handling shared by every command that reads or writes files (issue #12).

The rules (docs/design.md, "Files"): a command never opens an existing file for writing unless it
is that command's own output; every output is written to a temporary file in the same folder,
fsync'ed and renamed into place (the temporary file is removed on every failure path); an output
that is one of the command's inputs, or that holds a run file, a checkpoint or a protocol, is
refused; two processes never write one output (an exclusive lock beside it); a file or cache is
laid out only when the disk has room for it; and inputs are read only when they are regular files
of a bounded size. Each refusal is a one-line :class:`UserError` naming the path.

Public API:

- :func:`check_output_file`, :func:`check_output_dir`: the output-path guard;
- :func:`sniff_kind`: "run file" / "checkpoint" / "protocol" / None, by content;
- :func:`atomic_write` (a file object) and :func:`atomic_path` (a temporary path, for libraries
  that write by name: PIL, h5py, torch.save): write, fsync, rename;
- :func:`output_lock` / :class:`OutputLock`: ``OUT.lock`` holding ``PID host``, ``fcntl.flock``;
- :func:`check_free_space`, :func:`free_bytes`, :func:`describe_os_error`, :func:`is_disk_full`;
- :func:`open_regular`, :func:`read_bytes_capped`, :func:`check_regular_file`: bounded reads;
- :func:`available_memory_bytes`, :func:`check_memory`: size bombs, estimated before allocating.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import secrets
import socket
import stat
import threading
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import IO

from speckle_core.errors import UserError
from speckle_core.text import one_line

HDF5_SIGNATURE = b"\x89HDF\r\n\x1a\n"
DISK_MARGIN_BYTES = 16 * 2**20  # left free after a layout: HDF5 metadata, the log, other writers
MEMORY_FRACTION = 0.5  # one allocation may take at most this share of the memory available now
SNIFF_BYTES = 65536


def human_bytes(n: float) -> str:
    """``1536`` → ``"1.5 KiB"``."""
    n = float(n)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(n) < 1024 or unit == "TiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    raise AssertionError("unreachable")


# -- errors ----------------------------------------------------------------------------------------

def is_disk_full(e: BaseException) -> bool:
    return isinstance(e, OSError) and e.errno in (errno.ENOSPC, errno.EDQUOT)


def describe_os_error(e: BaseException) -> str:
    """A short plain reason for an OSError (h5py buries errno 28 in HDF5's own long text)."""
    code = getattr(e, "errno", None)
    if code == errno.ENOSPC:
        return "the disk is full (No space left on device)"
    if code == errno.EDQUOT:
        return "the disk quota is exceeded (Disk quota exceeded)"
    if code == errno.EROFS:
        return "the folder is on a read-only file system"
    if code in (errno.EACCES, errno.EPERM):
        return "permission denied"
    if code:
        return f"{os.strerror(code)} ({errno.errorcode.get(code, code)})"
    return one_line(e, 160)


# -- what a file is ------------------------------------------------------------------------------------

def _looks_like_hdf5(head: bytes, fh) -> bool:
    if head.startswith(HDF5_SIGNATURE):
        return True
    offset = 512  # an HDF5 superblock may follow a user block of 512, 1024, 2048, ... bytes
    while offset < 2**24:
        fh.seek(offset)
        if fh.read(8) == HDF5_SIGNATURE:
            return True
        offset *= 2
    return False


def _looks_like_protocol(head: bytes) -> bool:
    import tomllib

    try:
        doc = tomllib.loads(head.decode("utf-8"))
    except (UnicodeDecodeError, tomllib.TOMLDecodeError, RecursionError):
        return False
    return any(isinstance(v, dict) for v in doc.values())


def sniff_kind(path: str | Path) -> str | None:
    """What a precious file holds, by content: "run file" (HDF5), "checkpoint" (a torch zip or a
    pickle), "protocol" (a TOML document with tables: a protocol or a rig), or None."""
    try:
        st = os.stat(path)
        if not stat.S_ISREG(st.st_mode) or st.st_size == 0:
            return None
        with open(path, "rb") as fh:
            head = fh.read(SNIFF_BYTES)
            if _looks_like_hdf5(head, fh):
                return "run file"
    except OSError:
        return None
    if head.startswith(b"PK\x03\x04") or (len(head) > 1 and head[0] == 0x80 and 2 <= head[1] <= 5):
        return "checkpoint"  # torch.save writes a zip; older torch and plain pickles start 0x80 proto
    if st.st_size <= SNIFF_BYTES and _looks_like_protocol(head):
        return "protocol"
    return None


# -- the output-path guard ----------------------------------------------------------------------------

def _same_file(a: Path, b: Path) -> bool:
    try:
        return os.path.samefile(a, b)
    except OSError:
        return os.path.abspath(a) == os.path.abspath(b)


def nearest_existing(path: Path) -> Path:
    """``path`` itself if it exists, else its nearest existing ancestor (the root when none does)."""
    probe = path
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    return probe


def check_output_parent(path: str | Path, what: str = "output", make_parents: bool = False) -> None:
    """The folder that will hold ``path``: not under a file, existing (or created when
    ``make_parents``), writable."""
    path = Path(path)
    parent = path.parent if str(path.parent) else Path(".")
    # the nearest existing ancestor must be a folder (an --out whose parent is a file)
    probe = nearest_existing(parent)
    if probe.exists() and not probe.is_dir():
        raise UserError(f"{path}: cannot write the {what}: {probe} is a file, not a folder")
    if not parent.exists():
        if not make_parents:
            raise UserError(f"{path}: cannot write the {what}: folder {parent} does not exist")
        try:
            parent.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise UserError(f"{path}: cannot create folder {parent} ({describe_os_error(e)})") from None
    if not os.access(parent, os.W_OK | os.X_OK):
        raise UserError(f"{path}: cannot write the {what}: folder {parent} is read-only")


def check_not_input(path: str | Path, inputs: Iterable[str | Path], what: str = "output") -> None:
    """Refuses an output that is one of the command's inputs (same file, by inode or by path)."""
    p = Path(path)
    for src in inputs:
        if src is not None and _same_file(p, Path(src)):
            raise UserError(f"{p}: the {what} would overwrite the input {src}; choose another output")


def check_output_file(path: str | Path, *, inputs: Iterable[str | Path] = (), what: str = "output",
                      suffixes: Iterable[str] | None = None, make_parents: bool = True) -> Path:
    """The guard for an output file; returns it as a Path or raises a one-line UserError.

    Refused: a suffix not in ``suffixes`` (checked before anything is opened), an existing
    directory, an input, an existing run file / checkpoint / protocol (by content), a parent that
    is a file, a folder that cannot be written. ``make_parents`` creates missing folders.
    """
    p = Path(path)
    if p.is_dir():
        raise UserError(f"{p}: is a directory, expected a file for the {what}")
    if suffixes is not None:
        allowed = tuple(s.lower() for s in suffixes)
        if p.suffix.lower() not in allowed:
            raise UserError(f"{p}: the {what} must end in {' or '.join(allowed)} "
                            f"(got {p.suffix or 'no suffix'})")
    check_not_input(p, inputs, what)
    if p.exists() or p.is_symlink():
        kind = sniff_kind(p)
        if kind is not None:
            raise UserError(f"{p}: holds a {kind}; refusing to overwrite it with the {what} "
                            "(choose another output)")
        if p.exists() and not stat.S_ISREG(p.stat().st_mode):
            raise UserError(f"{p}: not a regular file; refusing to write the {what} there")
        _check_same_format(p, what)
    check_output_parent(p, what, make_parents)
    return p


# An output whose format has a signature replaces only a file with that signature (an earlier output
# of the same kind): notes.txt renamed sheet.png is the user's, not a contact sheet to overwrite.
OUTPUT_SIGNATURES = {".png": (b"\x89PNG\r\n\x1a\n", "PNG image")}


def _check_same_format(p: Path, what: str) -> None:
    signature = OUTPUT_SIGNATURES.get(p.suffix.lower())
    if signature is None or not p.exists() or p.stat().st_size == 0:
        return
    magic, name = signature
    try:
        with open(p, "rb") as fh:
            head = fh.read(len(magic))
    except OSError as e:
        raise UserError(f"{p}: cannot check what it holds before writing the {what} "
                        f"({describe_os_error(e)})") from None
    if head != magic:
        raise UserError(f"{p}: exists and is not a {name}, so not an earlier {what}; refusing to "
                        "overwrite it (choose another output)")


def check_output_dir(path: str | Path, *, inputs: Iterable[str | Path] = (), what: str = "output folder",
                     create: bool = True) -> Path:
    """The guard for an output folder: refuses a file, an input, a parent that is a file, a
    read-only folder; creates it (and its parents) when ``create``."""
    p = Path(path)
    if p.exists() and not p.is_dir():
        raise UserError(f"{p}: is a file, expected a folder for the {what}")
    check_not_input(p, inputs, what)
    check_output_parent(p, what, make_parents=True)
    if not p.exists():
        if not create:
            return p
        try:
            p.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise UserError(f"{p}: cannot create the {what} ({describe_os_error(e)})") from None
    if not os.access(p, os.W_OK | os.X_OK):
        raise UserError(f"{p}: the {what} is read-only")
    return p


# -- atomic writes ------------------------------------------------------------------------------

def temp_path_for(path: str | Path) -> Path:
    """A fresh hidden name in the same folder, with the same suffix (PIL picks the format by it)."""
    p = Path(path)
    return p.with_name(f".{p.stem}.tmp{os.getpid()}-{secrets.token_hex(3)}{p.suffix}")


def fsync_dir(folder: str | Path) -> None:
    with contextlib.suppress(OSError):  # not every filesystem lets a directory be fsync'ed
        fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def fsync_file(path: str | Path) -> None:
    """Flushes a file's data and metadata to the disk."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _write_error(path: Path, what: str, e: OSError) -> UserError | OSError:
    """Disk full / read-only / permission errors become one line naming the path."""
    if e.errno in (errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES, errno.EPERM):
        return UserError(f"{path}: cannot write the {what}: {describe_os_error(e)}")
    return e


@contextlib.contextmanager
def atomic_path(path: str | Path, what: str = "output") -> Iterator[Path]:
    """Yields a temporary path beside ``path``; on success it is fsync'ed and renamed onto ``path``.

    On any failure (an exception, a full disk during fsync or rename) the temporary file is removed
    and ``path`` is untouched. Disk full, read-only and permission errors become a one-line
    UserError naming ``path``.
    """
    p = Path(path)
    tmp = temp_path_for(p)
    try:
        yield tmp
        fsync_file(tmp)
        os.replace(tmp, p)
    except BaseException as e:
        with contextlib.suppress(OSError):
            tmp.unlink()
        if isinstance(e, OSError):
            err = _write_error(p, what, e)
            if err is not e:
                raise err from None
        raise
    fsync_dir(p.parent if str(p.parent) else ".")


@contextlib.contextmanager
def atomic_write(path: str | Path, mode: str = "wb", what: str = "output",
                 encoding: str | None = None) -> Iterator[IO]:
    """Yields an open temporary file; it replaces ``path`` (fsync, rename) only on success."""
    if "b" not in mode and encoding is None:
        encoding = "utf-8"
    with atomic_path(path, what) as tmp:
        try:
            fh = open(tmp, mode, encoding=encoding)  # noqa: SIM115 - closed below, before the rename
        except OSError as e:
            raise _write_error(Path(path), what, e) from None
        with fh:
            yield fh
            fh.flush()


def write_bytes_atomic(path: str | Path, data: bytes, what: str = "output") -> None:
    with atomic_write(path, "wb", what) as fh:
        fh.write(data)


def write_text_atomic(path: str | Path, text: str, what: str = "output") -> None:
    with atomic_write(path, "w", what) as fh:
        fh.write(text)


# -- the output lock ---------------------------------------------------------------------------------

def lock_path_for(path: str | Path) -> Path:
    p = Path(os.path.abspath(path))
    return p.with_name(p.name + ".lock")


class OutputLock:
    """An exclusive lock on an output, independent of HDF5's own locking (which NFS setups turn off
    with ``HDF5_USE_FILE_LOCKING=FALSE``): ``OUT.lock`` beside it, held with ``fcntl.flock`` (so a
    holder that dies releases it), holding ``PID host`` for the message the next process prints.
    The file is removed on release.

    Re-entrant within one thread: ``acquire`` by the thread that already holds the lock on the same
    output (``run_acquisition`` around the ``RunWriter`` it opens) counts a level instead of taking a
    second flock, which would collide with the first. Another thread, or another process, is
    refused.
    """

    def __init__(self, path: str | Path, what: str = "output"):
        self.path = Path(path)
        self.lock_file = lock_path_for(path)
        self.what = what
        self._fd: int | None = None
        self._nested = False
        self._key: tuple[str, int] | None = None

    def _holder(self) -> str:
        try:
            text = self.lock_file.read_text(encoding="utf-8", errors="replace")[:200].split()
        except OSError:
            text = []
        if len(text) >= 2:
            return f"PID {text[0]} on {text[1]}"
        return "another process"

    def acquire(self) -> OutputLock:
        key = self._key = (str(self.lock_file), threading.get_ident())
        with _HELD_GUARD:
            held = _HELD.get(key)
            if held is not None:  # this thread holds it already: one more level
                held[1] += 1
                self._fd, self._nested = held[0], True
                return self
        self._take()
        with _HELD_GUARD:
            _HELD[key] = [self._fd, 1]
        return self

    def _take(self) -> None:
        for _ in range(10):  # the holder may remove the file between our open and our flock
            try:
                fd = os.open(self.lock_file, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
            except OSError as e:
                raise UserError(f"{self.path}: cannot create the lock file {self.lock_file} "
                                f"({describe_os_error(e)})") from None
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError as e:
                os.close(fd)
                if e.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                    raise UserError(f"{self.path}: in use by another speckle-lab process "
                                    f"({self._holder()}, lock file {self.lock_file}); wait for it "
                                    f"to finish, or choose another output") from None
                raise UserError(f"{self.path}: cannot lock {self.lock_file} "
                                f"({describe_os_error(e)})") from None
            try:
                same = os.fstat(fd).st_ino == os.stat(self.lock_file).st_ino
            except FileNotFoundError:
                same = False
            if not same:  # we locked a file its holder just removed: try again
                os.close(fd)
                continue
            self._fd = fd
            with contextlib.suppress(OSError):
                os.ftruncate(fd, 0)
                os.write(fd, f"{os.getpid()} {socket.gethostname()}\n".encode())
            return
        raise UserError(f"{self.path}: could not take the lock {self.lock_file}")

    def release(self) -> None:
        if self._fd is None:
            return
        key = self._key  # the acquiring thread's (a writer thread may close what it was handed)
        with _HELD_GUARD:
            held = _HELD.get(key)
            if held is not None:
                held[1] -= 1
                if held[1] > 0:
                    self._fd = None
                    return
                del _HELD[key]
        with contextlib.suppress(OSError):
            self.lock_file.unlink()
        with contextlib.suppress(OSError):
            os.close(self._fd)  # closing releases the flock
        self._fd = None

    @property
    def held(self) -> bool:
        return self._fd is not None

    def __enter__(self) -> OutputLock:
        return self.acquire()

    def __exit__(self, *exc) -> None:
        self.release()


_HELD: dict[tuple[str, int], list] = {}  # (lock file, thread) -> [fd, levels]
_HELD_GUARD = threading.Lock()


def output_lock(path: str | Path, what: str = "output") -> OutputLock:
    """``with output_lock(out): ...`` — see :class:`OutputLock`."""
    return OutputLock(path, what)


def other_openers(path: str | Path, limit: int = 5) -> list[str]:
    """Other processes that hold ``path`` open ("PID name"), found in /proc (Linux; elsewhere, or
    without permission to look, an empty list). This sees a notebook holding a run file open even
    when HDF5's own locking is off (``HDF5_USE_FILE_LOCKING=FALSE``, the usual NFS setting)."""
    try:
        target = os.stat(path)
    except OSError:
        return []
    found: list[str] = []
    me = os.getpid()
    try:
        pids = [int(d) for d in os.listdir("/proc") if d.isdigit()]
    except OSError:
        return []
    for pid in pids:
        if pid == me:
            continue
        if descriptors_on(target, pid):
            found.append(f"PID {pid} {_process_name(pid)}".strip())
            if len(found) >= limit:
                break
    return found


def descriptors_on(target: os.stat_result, pid: int | str = "self") -> list[int]:
    """The file descriptors process ``pid`` (default: this one) holds open on the file ``target``
    (an ``os.stat`` result), from Linux's /proc; none where /proc cannot be read."""
    folder = f"/proc/{pid}/fd"
    try:
        fds = os.listdir(folder)
    except OSError:
        return []
    found = []
    for fd in fds:
        try:
            st = os.stat(f"{folder}/{fd}")
        except OSError:
            continue
        if st.st_ino == target.st_ino and st.st_dev == target.st_dev:
            found.append(int(fd))
    return found


def _process_name(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/comm").read_text().strip()[:40]
    except OSError:
        return ""


# -- free space -------------------------------------------------------------------------------------

def _existing_folder(path: Path) -> Path:
    p = Path(os.path.abspath(path))
    while not p.is_dir() and p != p.parent:
        p = p.parent
    return p


def free_bytes(path: str | Path) -> int:
    """Bytes an unprivileged writer may still use on the disk holding ``path`` (or its folder)."""
    st = os.statvfs(_existing_folder(Path(path)))
    return st.f_bavail * st.f_frsize


def check_free_space(path: str | Path, needed_bytes: int, what: str,
                     margin_bytes: int = DISK_MARGIN_BYTES) -> None:
    """Refuses (one line, naming the disk as full) when ``needed_bytes`` + a margin do not fit on
    the disk that will hold ``path``."""
    folder = _existing_folder(Path(path))
    try:
        free = free_bytes(folder)
    except OSError:
        return  # cannot tell: let the write itself report it
    if int(needed_bytes) + int(margin_bytes) > free:
        raise UserError(f"{path}: disk full: the {what} needs {human_bytes(needed_bytes)} "
                        f"(+{human_bytes(margin_bytes)} spare) but {folder} has only "
                        f"{human_bytes(free)} free")


def preallocate(fd: int, nbytes: int, path: str | Path, what: str) -> None:
    """Reserves real blocks for ``nbytes`` (not a sparse file: a later write through a memory map
    would die of SIGBUS on a full disk); one line naming the full disk when they are not there."""
    try:
        os.posix_fallocate(fd, 0, int(nbytes))
    except OSError as e:
        if e.errno in (errno.EOPNOTSUPP, errno.EINVAL, getattr(errno, "ENOTSUP", -1)):
            _write_zeros(fd, int(nbytes), path, what)
            return
        raise UserError(f"{path}: cannot lay out the {what} ({human_bytes(nbytes)}): "
                        f"{describe_os_error(e)}") from None


def _write_zeros(fd: int, nbytes: int, path, what: str) -> None:
    block = bytes(2**20)
    try:
        os.lseek(fd, 0, os.SEEK_SET)
        left = nbytes
        while left > 0:
            left -= os.write(fd, block[: min(left, len(block))])
        os.fsync(fd)
    except OSError as e:
        raise UserError(f"{path}: cannot lay out the {what} ({human_bytes(nbytes)}): "
                        f"{describe_os_error(e)}") from None


# -- reading: regular files only, bounded ------------------------------------------------------------

def check_regular_file(path: str | Path, what: str = "file", max_bytes: int | None = None) -> os.stat_result:
    """Stats ``path`` without opening it; refuses a missing file, a folder, a FIFO, a device or a
    socket, and a file larger than ``max_bytes``."""
    p = Path(path)
    try:
        st = p.stat()
    except FileNotFoundError:
        raise UserError(f"{p}: no such {what}") from None
    except OSError as e:
        raise UserError(f"{p}: cannot read the {what} ({describe_os_error(e)})") from None
    _check_stat(p, st, what, max_bytes)
    return st


def _check_stat(p: Path, st: os.stat_result, what: str, max_bytes: int | None) -> None:
    if stat.S_ISDIR(st.st_mode):
        raise UserError(f"{p}: is a directory, expected a {what}")
    if not stat.S_ISREG(st.st_mode):
        raise UserError(f"{p}: not a regular file (a FIFO, device or socket), expected a {what}")
    if max_bytes is not None and st.st_size > max_bytes:
        raise UserError(f"{p}: {human_bytes(st.st_size)} is too large for a {what} "
                        f"(at most {human_bytes(max_bytes)})")


def open_regular(path: str | Path, what: str = "file", max_bytes: int | None = None) -> IO[bytes]:
    """Opens a regular file for reading in binary; a FIFO is refused without blocking (O_NONBLOCK,
    then fstat of what was actually opened), and so are devices and files over ``max_bytes``."""
    p = Path(path)
    check_regular_file(p, what, max_bytes)
    try:
        fd = os.open(p, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError as e:
        raise UserError(f"{p}: cannot read the {what} ({describe_os_error(e)})") from None
    try:
        _check_stat(p, os.fstat(fd), what, max_bytes)  # the file may have been swapped meanwhile
        os.set_blocking(fd, True)
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise


def read_bytes_capped(path: str | Path, what: str = "file", max_bytes: int = 20_000_000) -> bytes:
    """Reads a whole regular file of at most ``max_bytes`` (a file still growing is cut off and
    refused at ``max_bytes`` + 1)."""
    with open_regular(path, what, max_bytes) as fh:
        try:
            data = fh.read(max_bytes + 1)
        except OSError as e:
            raise UserError(f"{path}: cannot read the {what} ({describe_os_error(e)})") from None
    if len(data) > max_bytes:
        raise UserError(f"{path}: too large for a {what} (more than {human_bytes(max_bytes)})")
    return data


# -- memory --------------------------------------------------------------------------------------

def _cgroup_available() -> int | None:
    """Memory left under a cgroup v2 limit (docker, SLURM, systemd-run -p MemoryMax), if any."""
    try:
        limit = Path("/sys/fs/cgroup/memory.max").read_text().strip()
        if limit == "max":
            return None
        used = int(Path("/sys/fs/cgroup/memory.current").read_text().strip())
        return max(int(limit) - used, 0)
    except (OSError, ValueError):
        return None


def available_memory_bytes() -> int:
    """Memory this process may still take: psutil's ``available``, or less under a cgroup limit."""
    import psutil

    avail = int(psutil.virtual_memory().available)
    cg = _cgroup_available()
    return min(avail, cg) if cg is not None else avail


def check_memory(nbytes: int, what: str, source: str | Path,
                 fraction: float = MEMORY_FRACTION) -> None:
    """Refuses, before allocating, an array of ``nbytes`` that the machine cannot hold: more than
    ``fraction`` of the memory available now. ``source`` names the file or option at fault."""
    avail = available_memory_bytes()
    if nbytes > fraction * avail:
        raise UserError(f"{source}: {what} needs {human_bytes(nbytes)} of memory, more than this "
                        f"machine can hold ({human_bytes(avail)} available)")
