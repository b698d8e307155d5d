"""One writer per workdir: the lock (a second process is refused, naming the holder; a killed holder frees it), the
marker (a folder of the user's own files is never written into), and path checks before any work."""

import json
import os
import signal
import subprocess
import sys
import textwrap

import pytest

from mmspeech_jax.errors import NotAWorkdirError, WorkdirBusyError
from mmspeech_jax.text.symbols import character_table
from mmspeech_jax.workdir import write_run_config
from mmspeech_jax.workdir_lock import MARKER_NAME, check_workdir_path, claim_workdir, holds

HOLDER = textwrap.dedent("""
    import sys, time
    from mmspeech_jax.workdir_lock import claim_workdir
    lock = claim_workdir(sys.argv[1], "tts")
    print("held", flush=True)
    time.sleep(120)
""")


def start_holder(workdir):
    process = subprocess.Popen([sys.executable, "-c", HOLDER, str(workdir)], stdout=subprocess.PIPE, text=True)
    assert process.stdout.readline().strip() == "held"
    return process


def test_a_second_writer_is_refused_naming_the_holder_and_nothing_is_written(tmp_path):
    workdir = tmp_path / "w"
    holder = start_holder(workdir)
    try:
        with pytest.raises(WorkdirBusyError, match=f"pid {holder.pid} on ") as error:
            write_run_config(workdir, {"task": "asr", "model": {"dim": 8}}, character_table())
        assert "\n" not in str(error.value)
        assert not (workdir / "config.json").exists()  # refused before writing anything
    finally:
        holder.kill()
        holder.wait()
    # SIGKILL released the kernel lock: no stale lock, the workdir is usable at once.
    lock = write_run_config(workdir, {"task": "asr", "model": {"dim": 8}}, character_table())
    assert lock.held and holds(workdir) and (workdir / "config.json").is_file()
    assert f"pid {os.getpid()}" in (workdir / ".lock").read_text()
    lock.release()
    assert not holds(workdir)


def test_the_same_process_may_claim_again_and_release_frees_it(tmp_path):
    first = claim_workdir(tmp_path / "w", "lm")
    assert claim_workdir(tmp_path / "w", "lm") is first  # a resume in the same process
    first.release()
    holder = start_holder(tmp_path / "w")  # another process can take it now
    holder.send_signal(signal.SIGKILL)
    holder.wait()
    assert json.loads((tmp_path / "w" / MARKER_NAME).read_text())["task"] == "lm"


def test_a_folder_of_the_users_own_files_is_refused(tmp_path):
    own = tmp_path / "mine"
    own.mkdir()
    (own / "config.json").write_text('{"mine": true}')
    (own / "report.json").write_text('{"mine": true}')
    with pytest.raises(NotAWorkdirError, match="is not an mmspeech workdir"):
        write_run_config(own, {"task": "asr", "model": {}}, character_table())
    assert json.loads((own / "config.json").read_text()) == {"mine": True}  # untouched
    assert not (own / MARKER_NAME).exists() and not (own / "symbols.json").exists()


def test_a_workdir_from_before_markers_is_adopted(tmp_path):
    old = tmp_path / "old"
    (old / "checkpoints").mkdir(parents=True)
    (old / "config.json").write_text(json.dumps({"task": "asr", "model": {"dim": 8}}))
    lock = write_run_config(old, {"task": "asr", "model": {"dim": 8}}, character_table())
    assert (old / MARKER_NAME).is_file()
    lock.release()


def test_paths_that_cannot_be_workdirs(tmp_path):
    a_file = tmp_path / "file"
    a_file.write_text("x")
    with pytest.raises(NotAWorkdirError, match="is a file"):
        check_workdir_path(a_file)
    with pytest.raises(NotAWorkdirError, match="not a writable directory"):
        check_workdir_path(a_file / "sub" / "w")  # the nearest existing parent is a file
    if os.geteuid() != 0:  # root writes anywhere
        locked = tmp_path / "ro"
        locked.mkdir(mode=0o500)
        with pytest.raises(NotAWorkdirError, match="not writable"):
            check_workdir_path(locked)


def test_experiment_refuses_a_workdir_that_is_a_file_before_loading_data(tmp_path, capsys):
    from experiments.text_lm import parse_args

    a_file = tmp_path / "file"
    a_file.write_text("x")
    with pytest.raises(SystemExit) as exit_info:
        parse_args(["--workdir", str(a_file)])
    assert exit_info.value.code == 2 and "is a file" in capsys.readouterr().err


def test_two_experiments_in_one_workdir_the_second_is_refused_the_first_unharmed(tmp_path, capsys):
    """The issue's race: the same command started twice into one workdir. The first (a subprocess) holds the lock
    from its config write to its end; the second stops with exit status 2 and one line, writing nothing."""
    import time

    from experiments import text_lm

    workdir = tmp_path / "lm"
    argv = ["--preset", "tiny", "--workdir", str(workdir), "--no_progress", "--template_sentences", "20",
            "--max_sentences", "200", "--batch_size", "8", "--eval_every", "1000"]
    first = subprocess.Popen([sys.executable, "-m", "experiments.text_lm", *argv, "--steps", "400"],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 240
    while not ((workdir / "config.json").is_file() and "pid" in _text(workdir / ".lock")):
        assert first.poll() is None and time.time() < deadline, first.communicate()[1][-2000:]
        time.sleep(0.2)
    config_before = (workdir / "config.json").read_text()
    started = time.time()
    with pytest.raises(SystemExit) as exit_info:
        text_lm.run_command(text_lm.main, argv + ["--steps", "400", "--seed", "1"])
    assert exit_info.value.code == 2 and time.time() - started < 5  # refused at parse time, before any data
    last = capsys.readouterr().err.strip().splitlines()[-1]  # argparse's usage, then its one error line
    assert f"is in use by pid {first.pid}" in last and last.startswith("usage") is False
    assert (workdir / "config.json").read_text() == config_before  # the first run's config, untouched
    out, err = first.communicate(timeout=600)
    assert first.returncode == 0, err[-2000:]
    report = json.loads((workdir / "report.json").read_text())
    assert report["steps"] == 400 and json.loads(config_before)["trainer"]["seed"] == 0


def _text(path) -> str:
    return path.read_text() if path.is_file() else ""


def test_a_read_only_workdir_is_refused(tmp_path, monkeypatch):
    """Real permissions where the tests do not run as root; as root (CI here), which may write anywhere, the
    permission answer is stubbed to what a non-root user would get (this user's python is not reachable by others,
    so the check cannot run as another user)."""
    workdir = tmp_path / "w"
    workdir.mkdir()
    if os.geteuid() == 0:
        import mmspeech_jax.workdir_lock as workdir_lock

        monkeypatch.setattr(workdir_lock.os, "access", lambda path, mode: str(path) != str(workdir))
    else:
        os.chmod(workdir, 0o555)
    with pytest.raises(NotAWorkdirError, match="is not writable"):
        write_run_config(workdir, {"task": "asr", "model": {}}, character_table())
    assert not (workdir / ".lock").exists()


def test_too_little_free_space_is_refused_before_anything_is_written(tmp_path, monkeypatch):
    import collections

    import mmspeech_jax.workdir_lock as workdir_lock

    usage = collections.namedtuple("usage", "total used free")
    monkeypatch.setattr(workdir_lock.shutil, "disk_usage", lambda path: usage(10 * 2**30, 10 * 2**30, 5 * 2**20))
    with pytest.raises(NotAWorkdirError, match="only 5 MB free"):
        write_run_config(tmp_path / "w", {"task": "asr", "model": {}}, character_table())
    assert not (tmp_path / "w").exists()
