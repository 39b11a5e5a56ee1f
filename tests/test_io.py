"""The one writer: atomic, and files get the permissions the umask gives (not mkstemp's private 0600)."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from rl_adaloss.io import write_atomic, write_json_atomic
from rl_adaloss.train import main


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.fixture
def umask():
    """Set the process umask inside a test, and put the old one back."""
    previous = os.umask(0o022)
    yield lambda mask: os.umask(mask)
    os.umask(previous)


@pytest.mark.parametrize("mask, expected", [(0o022, 0o644), (0o077, 0o600), (0o002, 0o664)])
def test_files_get_the_umasks_permissions(tmp_path, umask, mask, expected):
    umask(mask)
    write_atomic(tmp_path / "a.txt", "text")
    write_atomic(tmp_path / "b.bin", b"\x00\x01")
    write_json_atomic(tmp_path / "c.json", {"x": 1})
    assert {p.name: mode(p) for p in tmp_path.iterdir()} == {"a.txt": expected, "b.bin": expected,
                                                              "c.json": expected}
    assert (tmp_path / "c.json").read_text() == '{\n  "x": 1\n}\n'


def test_a_failed_write_leaves_the_old_file_and_no_temporary(tmp_path, monkeypatch):
    target = tmp_path / "keep.txt"
    write_atomic(target, "old")

    def fail(fd):
        raise OSError("disk full")

    monkeypatch.setattr(os, "fsync", fail)
    with pytest.raises(OSError, match="disk full"):
        write_atomic(target, "new")
    assert target.read_text() == "old" and [p.name for p in tmp_path.iterdir()] == ["keep.txt"]


def test_every_file_of_a_run_is_readable_by_others_under_umask_022(tmp_path, umask, capsys):
    umask(0o022)
    tiny = ["n_envs=2", "ppo.n_steps=256", "ppo.n_epochs=1", "eval.freq=512", "eval.episodes=1", "device=cpu",
            "total_timesteps=1024", "checkpoint_freq=512"]
    assert main([*tiny, "--quiet", "--out-dir", str(tmp_path), "--name", "x"]) == 0, capsys.readouterr().err
    files = [p for p in (tmp_path / "x").rglob("*") if p.is_file()]
    names = {p.name for p in files}
    assert {"config.yaml", "result.json", "model.zip", "evaluations.csv", "checkpoint.pkl",
            "vecnormalize.pkl"} <= names
    assert {p.relative_to(tmp_path).as_posix(): oct(mode(p)) for p in files if mode(p) != 0o644} == {}
