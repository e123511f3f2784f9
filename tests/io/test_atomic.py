"""Atomic writes: the target appears whole or not at all."""

from __future__ import annotations

from pathlib import Path

import pytest

from lrc.io.atomic import atomic_path


def test_success_replaces_target(tmp_path: Path):
    target = tmp_path / "sub" / "out.bin"
    target.parent.mkdir()
    target.write_bytes(b"old")
    with atomic_path(target, ".bin") as tmp:
        assert tmp.parent == target.parent
        assert tmp.suffix == ".bin"
        tmp.write_bytes(b"new")
        assert target.read_bytes() == b"old"  # not visible before the block ends
    assert target.read_bytes() == b"new"
    assert [p.name for p in target.parent.iterdir()] == ["out.bin"]


def test_failure_leaves_old_target_and_no_temporary(tmp_path: Path):
    target = tmp_path / "out.bin"
    target.write_bytes(b"old")

    def write_half() -> None:
        with atomic_path(target) as tmp:
            tmp.write_bytes(b"half")
            raise RuntimeError("disk full")

    with pytest.raises(RuntimeError, match="disk full"):
        write_half()
    assert target.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["out.bin"]
