"""Writing a directory never destroys what this tool did not write, and never leaves half of one."""

import json
import os
import stat

import pytest

from circuits.errors import OutputPathError
from circuits.paths import (
    MARKER,
    atomic_dir,
    check_output_dir,
    check_output_file,
    read_marker,
    record_in_marked_parent,
)


def write_run_like(path, kind="thing", files=("a.txt",)):
    with atomic_dir(path, kind=kind) as tmp:
        for name in files:
            (tmp / name).write_text(name)
    return path


def test_a_new_directory_is_written_with_its_marker(tmp_path):
    out = write_run_like(tmp_path / "new" / "run")
    assert (out / "a.txt").read_text() == "a.txt"
    assert read_marker(out) == {"kind": "thing", "schema_version": 1, "entries": ["a.txt"]}


def test_an_earlier_directory_of_the_same_kind_is_replaced(tmp_path):
    out = write_run_like(tmp_path / "run", files=("old.txt",))
    write_run_like(out, files=("new.txt",))
    assert sorted(p.name for p in out.iterdir()) == [MARKER, "new.txt"]
    assert [p.name for p in tmp_path.iterdir()] == ["run"]  # nothing left beside it


def test_a_folder_of_the_users_work_is_refused_and_kept(tmp_path):
    work = tmp_path / "work"
    (work / "old_experiment").mkdir(parents=True)
    (work / "notes.txt").write_text("mine")
    with pytest.raises(OutputPathError, match="did not write"):
        write_run_like(work)
    assert (work / "notes.txt").read_text() == "mine"
    assert (work / "old_experiment").is_dir()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["work"]


def test_a_plain_file_is_refused_and_kept(tmp_path):
    target = tmp_path / "results.csv"
    target.write_text("1,2\n")
    with pytest.raises(OutputPathError, match="not a directory"):
        write_run_like(target)
    assert target.read_text() == "1,2\n"


def test_a_path_under_a_file_is_refused(tmp_path):
    (tmp_path / "file").write_text("x")
    with pytest.raises(OutputPathError, match="which is a file"):
        check_output_dir(tmp_path / "file" / "run", kind="thing")


def test_the_current_directory_and_its_parents_are_refused(tmp_path, monkeypatch):
    (tmp_path / "here").mkdir()
    monkeypatch.chdir(tmp_path / "here")
    for path in (".", "..", str(tmp_path / "here")):
        with pytest.raises(OutputPathError, match="current directory"):
            check_output_dir(tmp_path / "here" / path, kind="thing")


def test_a_marked_directory_with_a_users_file_added_is_refused(tmp_path):
    out = write_run_like(tmp_path / "run")
    (out / "notes.txt").write_text("mine")
    with pytest.raises(OutputPathError, match=r"did not write \(notes.txt\)"):
        write_run_like(out)
    assert (out / "notes.txt").read_text() == "mine"


def test_a_directory_of_another_kind_is_refused(tmp_path):
    out = write_run_like(tmp_path / "set", kind="transcoder_set")
    with pytest.raises(OutputPathError, match="transcoder_set"):
        write_run_like(out, kind="circuit_run")


def test_a_marked_subdirectory_counts_as_written_by_the_tool(tmp_path):
    model = write_run_like(tmp_path / "model", kind="model")
    write_run_like(model / "transcoders", kind="transcoder_set")
    write_run_like(model, kind="model")  # replaced: its only extra entry carries a marker


def test_a_failure_inside_the_block_leaves_nothing_behind(tmp_path):
    with pytest.raises(RuntimeError), atomic_dir(tmp_path / "run", kind="thing") as tmp:
        (tmp / "half").write_text("x")
        raise RuntimeError("late step failed")
    assert list(tmp_path.iterdir()) == []


def test_an_interrupt_inside_the_block_leaves_the_previous_run_in_place(tmp_path):
    out = write_run_like(tmp_path / "run", files=("old.txt",))
    with pytest.raises(KeyboardInterrupt), atomic_dir(out, kind="thing") as tmp:
        (tmp / "new.txt").write_text("x")
        raise KeyboardInterrupt
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run"]
    assert (out / "old.txt").exists() and not (out / "new.txt").exists()


def test_directories_and_files_get_the_users_umask(tmp_path):
    old = os.umask(0o022)
    try:
        with atomic_dir(tmp_path / "run", kind="thing") as tmp:
            (tmp / "a.txt").write_text("a")
            (tmp / "sub").mkdir(mode=0o700)
            fd = os.open(tmp / "sub" / "private.bin", os.O_CREAT | os.O_WRONLY, 0o600)
            os.close(fd)  # as safetensors writes its files
    finally:
        os.umask(old)
    out = tmp_path / "run"
    assert stat.S_IMODE(out.stat().st_mode) == 0o755
    assert stat.S_IMODE((out / "a.txt").stat().st_mode) == 0o644
    assert stat.S_IMODE((out / "sub").stat().st_mode) == 0o755
    assert stat.S_IMODE((out / "sub" / "private.bin").stat().st_mode) == 0o644


def test_an_unwritable_place_is_one_line(tmp_path):
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    try:
        if os.access(locked, os.W_OK):
            pytest.skip("running as a user who can write anywhere")
        with pytest.raises(OutputPathError, match="cannot create"):
            write_run_like(locked / "run")
    finally:
        locked.chmod(0o700)


def test_proc_is_refused_in_one_line():
    if not os.path.isdir("/proc/self"):
        pytest.skip("no /proc here")
    with pytest.raises(OutputPathError, match="cannot create"):  # the cheap check, before work
        check_output_dir(__import__("pathlib").Path("/proc/self/circuits-run"), kind="thing")


def test_an_output_file_is_replaced_only_if_this_tool_wrote_it(tmp_path):
    ours = tmp_path / "ref.json"
    ours.write_text(json.dumps({"kind": "causal_reference"}))
    check_output_file(ours, kind="causal_reference")
    theirs = tmp_path / "theirs.json"
    theirs.write_text(json.dumps({"data": 1}))
    with pytest.raises(OutputPathError, match="not a 'causal_reference'"):
        check_output_file(theirs, kind="causal_reference")
    text = tmp_path / "notes.txt"
    text.write_text("not json")
    with pytest.raises(OutputPathError):
        check_output_file(text, kind="causal_reference")


def test_a_file_added_to_a_marked_directory_is_recorded(tmp_path):
    model = write_run_like(tmp_path / "model", kind="model")
    (model / "reference").mkdir()
    (model / "reference" / "ioi.json").write_text("{}")
    record_in_marked_parent(model / "reference" / "ioi.json")
    assert "reference" in read_marker(model)["entries"]
    write_run_like(model, kind="model")
