"""atomic_write_text: the old file or the new one, never half; readable permissions; no temporary left."""

import os

from mmspeech_jax.workdir import atomic_write_text


def test_replaces_whole_and_leaves_no_temporary(tmp_path):
    path = tmp_path / "report.json"
    path.write_text("old")
    os.chmod(path, 0o600)
    atomic_write_text(path, "new " * 1000)
    assert path.read_text() == "new " * 1000
    assert oct(path.stat().st_mode & 0o777) == "0o644"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["report.json"]


def test_a_failed_write_keeps_the_old_file(tmp_path, monkeypatch):
    path = tmp_path / "config.json"
    path.write_text('{"old": 1}')

    def broken_replace(src, dst):
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", broken_replace)
    try:
        atomic_write_text(path, '{"new": 2}')
    except OSError:
        pass
    assert path.read_text() == '{"old": 1}'
