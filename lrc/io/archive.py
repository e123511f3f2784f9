"""Turn what a user hands over (files, folders, zip archives) into a flat list of files.

Zip archives are extracted into a caller-owned directory under limits that make zip bombs and
path tricks harmless: entry names are checked before anything is written, sizes are counted on
the bytes actually inflated (headers can lie), and links are refused.
"""

from __future__ import annotations

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
        UnsupportedInput: a path does not exist, or nothing at all was found.
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
    """The relative path of a zip entry, or :class:`UnsafeArchive` when it could escape."""
    normal = name.replace("\\", "/")
    posix = PurePosixPath(normal)
    if posix.is_absolute() or normal.startswith("/") or (len(normal) > 1 and normal[1] == ":"):
        raise UnsafeArchive(f"zip entry {name!r} has an absolute path; refused")
    if any(part == ".." for part in posix.parts):
        raise UnsafeArchive(f"zip entry {name!r} points outside the archive ('..'); refused")
    return posix


def extract_zip(archive: Path, target: Path, limits: ArchiveLimits) -> list[Path]:
    """Extract a zip archive into ``target`` under ``limits``; return the extracted files.

    Raises:
        UnsafeArchive: unsafe entry names, links, or a limit exceeded (nothing is kept then).
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
                    raise UnsafeArchive(f"zip entry {member.filename!r} is a symbolic link; refused")
                checked.append((member, relative))
            target.mkdir(parents=True, exist_ok=True)
            written: list[Path] = []
            total = 0
            try:
                for member, relative in checked:
                    if member.is_dir():
                        continue
                    out = target.joinpath(*relative.parts)
                    out.parent.mkdir(parents=True, exist_ok=True)
                    total = _inflate(zf, member, out, total, limits, archive.name)
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
                        f"{archive_name}: entry {member.filename!r} inflates more than "
                        f"{limits.max_ratio:.0f}x (zip bomb?); refused"
                    )
                sink.write(chunk)
    except UnsafeArchive:
        out.unlink(missing_ok=True)
        raise
    except (zipfile.BadZipFile, zlib.error, EOFError) as exc:
        out.unlink(missing_ok=True)
        raise UnsafeArchive(f"{archive_name}: entry {member.filename!r} is corrupt ({exc})") from exc
    return total
