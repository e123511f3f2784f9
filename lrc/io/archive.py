"""Turn what a user hands over (files, folders, zip archives) into a flat list of files.

Zip archives are extracted into a caller-owned directory under limits that make zip bombs and
path tricks harmless: entry names are checked before anything is written (no escape from the
folder, no name longer than a file system takes, no file where another entry needs a folder),
sizes are counted on the bytes actually inflated (headers can lie), and links are refused.
Encrypted entries and compression methods Python cannot inflate are refused before extraction.
"""

from __future__ import annotations

import errno
import lzma
import os
import stat
import zipfile
import zlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from lrc.io.errors import UnsafeArchive, UnsupportedInput


@dataclass(frozen=True)
class ArchiveLimits:
    """Limits for zip extraction.

    Args:
        max_total_bytes: sum of inflated sizes of all entries.
        max_entries: number of entries.
        max_ratio: largest inflated/compressed ratio of one entry; real DICOM compresses
            10-20x at most (air-filled CT slices), zip bombs reach 1000x.
    """

    max_total_bytes: int = 8 * 1024**3
    max_entries: int = 100_000
    max_ratio: float = 200.0


@dataclass
class Collected:
    """Files found, and notes on what was skipped or unpacked."""

    files: list[Path] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


_CHUNK = 1 << 20
# File systems take names of at most 255 bytes (NAME_MAX); a whole entry name is bounded well below
# PATH_MAX (4096) so that the extraction folder's own path still fits in front of it.
MAX_NAME_BYTES = 255
MAX_PATH_BYTES = 1024
# What zipfile inflates: stored, deflate, bzip2, LZMA (not deflate64, not AES, not the rest).
INFLATABLE = {zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED, zipfile.ZIP_BZIP2, zipfile.ZIP_LZMA}
# Methods zip tools use that zipfile does not inflate (APPNOTE.TXT 4.4.5), for messages.
_METHODS = {6: "Implode", 9: "Deflate64", 93: "Zstandard", 95: "XZ", 98: "PPMd", 99: "AES encryption"}
# Errors of creating a file from an entry's name or layout; others (a full disk) are the service's.
_NAME_ERRNOS = {errno.ENAMETOOLONG, errno.ENOTDIR, errno.EISDIR, errno.EEXIST, errno.EINVAL, errno.EILSEQ}


def is_zip(path: Path) -> bool:
    """True when the file starts like a zip archive (by content, not by name)."""
    try:
        with path.open("rb") as handle:
            return handle.read(4) in (b"PK\x03\x04", b"PK\x05\x06")
    except OSError:
        return False


def collect_files(
    paths: Iterable[str | os.PathLike[str]], extract_dir: Path | None = None, limits: ArchiveLimits | None = None
) -> Collected:
    """Expand files, folders (recursive) and zip archives into a list of files.

    Args:
        paths: files, folders or zip archives.
        extract_dir: where zip archives are unpacked (required if any input is a zip).
        limits: zip extraction limits.

    Raises:
        UnsupportedInput: a path does not exist, nothing at all was found, or a zip entry is
            encrypted or compressed by a method that cannot be inflated.
        UnsafeArchive: a zip archive breaks a limit or holds unsafe entries.
    """
    limits = limits or ArchiveLimits()
    found = Collected()
    for index, raw in enumerate(paths):
        path = Path(raw)
        if path.is_symlink() and path.is_dir():
            found.notes.append(f"{path}: symbolic link to a folder skipped")
            continue
        if path.is_dir():
            found.files.extend(_walk(path, found.notes))
        elif path.is_file():
            if is_zip(path):
                if extract_dir is None:
                    raise UnsupportedInput(f"{path.name}: zip archives need an extraction directory")
                target = extract_dir / f"zip{index}"
                found.files.extend(extract_zip(path, target, limits))
                found.notes.append(f"{path.name}: zip archive unpacked")
            else:
                found.files.append(path)
        else:
            raise UnsupportedInput(f"{path}: no such file or folder")
    if not found.files:
        skipped = f" ({'; '.join(found.notes[:3])})" if found.notes else ""
        raise UnsupportedInput(f"no files found in the input (empty folder or empty archive){skipped}")
    return found


def _walk(folder: Path, notes: list[str]) -> Iterator[Path]:
    for root, dirs, files in os.walk(folder, followlinks=False):
        dirs.sort()
        for name in sorted(files):
            path = Path(root) / name
            if path.is_symlink():
                notes.append(f"{path}: symbolic link skipped")
            elif name.startswith("."):
                continue
            else:
                yield path


def _safe_member_path(name: str) -> PurePosixPath:
    """The relative path of a zip entry, or :class:`UnsafeArchive` when it could escape or no file system takes it."""
    normal = name.replace("\\", "/")
    posix = PurePosixPath(normal)
    shown = _shorten(name)
    if posix.is_absolute() or normal.startswith("/") or (len(normal) > 1 and normal[1] == ":"):
        raise UnsafeArchive(f"zip entry {shown} has an absolute path; refused")
    if any(part == ".." for part in posix.parts):
        raise UnsafeArchive(f"zip entry {shown} points outside the archive ('..'); refused")
    if _bytes(normal) > MAX_PATH_BYTES:
        raise UnsafeArchive(
            f"zip entry {shown}: a name of {_bytes(normal)} bytes, over the {MAX_PATH_BYTES} taken; refused"
        )
    if any(_bytes(part) > MAX_NAME_BYTES for part in posix.parts):
        raise UnsafeArchive(
            f"zip entry {shown}: a file or folder name over {MAX_NAME_BYTES} bytes, which no file system takes; refused"
        )
    return posix


def _bytes(name: str) -> int:
    return len(name.encode("utf-8", "surrogateescape"))


def _shorten(name: str, keep: int = 60) -> str:
    """An entry name for a message: long names are cut in the middle."""
    return repr(name) if len(name) <= keep else repr(f"{name[: keep // 2]}...{name[-keep // 2 :]}")


def _check_member(member: zipfile.ZipInfo, archive_name: str) -> None:
    """Refuse an entry zipfile cannot extract: encrypted, or compressed by a method it cannot inflate."""
    if member.flag_bits & 0x1:
        raise UnsupportedInput(
            f"{archive_name}: entry {_shorten(member.filename)} is encrypted (password-protected); "
            "send an archive without a password"
        )
    if member.compress_type not in INFLATABLE:
        method = _METHODS.get(member.compress_type, f"method {member.compress_type}")
        raise UnsupportedInput(
            f"{archive_name}: entry {_shorten(member.filename)} is compressed with {method}, which cannot be "
            "unpacked here; send an archive compressed with deflate (the usual zip) or stored"
        )


def _check_layout(checked: list[tuple[zipfile.ZipInfo, PurePosixPath]], archive_name: str) -> None:
    """Refuse entries whose paths cannot all exist: a name twice, a file where another entry needs a folder."""
    files: set[tuple[str, ...]] = set()
    folders: set[tuple[str, ...]] = set()
    for member, relative in checked:
        parts = relative.parts
        if not parts:
            if member.is_dir():
                continue
            raise UnsafeArchive(f"{archive_name}: entry {_shorten(member.filename)} has no file name; refused")
        folders.update(parts[:k] for k in range(1, len(parts)))
        if member.is_dir():
            folders.add(parts)
        elif parts in files:
            raise UnsafeArchive(f"{archive_name}: entry {_shorten(member.filename)} occurs twice; refused")
        else:
            files.add(parts)
    clash = files & folders
    if clash:
        name = "/".join(sorted(clash)[0])
        raise UnsafeArchive(f"{archive_name}: {_shorten(name)} is both a file and a folder in the archive; refused")


def extract_zip(archive: Path, target: Path, limits: ArchiveLimits) -> list[Path]:
    """Extract a zip archive into ``target`` under ``limits``; return the extracted files.

    Raises:
        UnsafeArchive: unsafe or impossible entry names, links, corrupt entries, or a limit exceeded
            (nothing is kept then).
        UnsupportedInput: an encrypted entry, or one compressed by a method that cannot be inflated.
    """
    try:
        with zipfile.ZipFile(archive) as zf:
            members = zf.infolist()
            if len(members) > limits.max_entries:
                raise UnsafeArchive(
                    f"{archive.name}: {len(members)} entries, more than the limit of {limits.max_entries}"
                )
            checked = []
            for member in members:
                relative = _safe_member_path(member.filename)
                mode = member.external_attr >> 16
                if stat.S_ISLNK(mode):
                    raise UnsafeArchive(f"zip entry {_shorten(member.filename)} is a symbolic link; refused")
                if not member.is_dir():
                    _check_member(member, archive.name)
                checked.append((member, relative))
            _check_layout(checked, archive.name)
            target.mkdir(parents=True, exist_ok=True)
            written: list[Path] = []
            total = 0
            try:
                for member, relative in checked:
                    if member.is_dir():
                        continue
                    out = target.joinpath(*relative.parts)
                    try:
                        out.parent.mkdir(parents=True, exist_ok=True)
                        total = _inflate(zf, member, out, total, limits, archive.name)
                    except OSError as exc:
                        if exc.errno not in _NAME_ERRNOS:
                            raise  # a full or failing disk: the service's fault, not the archive's
                        raise UnsafeArchive(
                            f"{archive.name}: entry {_shorten(member.filename)} cannot be written as a file "
                            f"({os.strerror(exc.errno)}); refused"
                        ) from exc
                    written.append(out)
            except BaseException:
                for path in written:
                    path.unlink(missing_ok=True)
                raise
            return written
    except zipfile.BadZipFile as exc:
        raise UnsafeArchive(f"{archive.name}: not a readable zip archive ({exc})") from exc


def _inflate(
    zf: zipfile.ZipFile, member: zipfile.ZipInfo, out: Path, total: int, limits: ArchiveLimits, archive_name: str
) -> int:
    """Copy one entry, counting real inflated bytes against the limits; return the new total."""
    compressed = max(member.compress_size, 1)
    size = 0
    try:
        with zf.open(member) as source, out.open("wb") as sink:
            while chunk := source.read(_CHUNK):
                size += len(chunk)
                total += len(chunk)
                if total > limits.max_total_bytes:
                    raise UnsafeArchive(f"{archive_name}: unpacks to more than {limits.max_total_bytes} bytes; refused")
                if size > 1_000_000 and size / compressed > limits.max_ratio:
                    raise UnsafeArchive(
                        f"{archive_name}: entry {_shorten(member.filename)} inflates more than "
                        f"{limits.max_ratio:.0f}x (zip bomb?); refused"
                    )
                sink.write(chunk)
    except UnsafeArchive:
        out.unlink(missing_ok=True)
        raise
    except (zipfile.BadZipFile, zlib.error, lzma.LZMAError, EOFError, OSError) as exc:
        out.unlink(missing_ok=True)
        if isinstance(exc, OSError) and exc.errno is not None:
            raise  # the disk's error (bz2 reports a corrupt stream as an OSError without errno)
        raise UnsafeArchive(f"{archive_name}: entry {_shorten(member.filename)} is corrupt ({exc})") from exc
    return total
