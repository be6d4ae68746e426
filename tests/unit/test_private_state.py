"""The local stack's state folder and secrets on a shared host (local_stack.private, issue 22)."""

from __future__ import annotations

import os
import stat

import pytest

from local_stack.private import UnsafeStateDirectory, private_directory, write_secret


def test_the_state_folder_is_created_0700_and_an_open_one_of_ours_is_closed(tmp_path):
    created = private_directory(tmp_path / "a" / "state")
    assert stat.S_IMODE(os.lstat(created).st_mode) == 0o700
    opened = tmp_path / "open"
    opened.mkdir(mode=0o777)
    os.chmod(opened, 0o777)
    assert stat.S_IMODE(os.lstat(private_directory(opened)).st_mode) == 0o700


def test_a_symlinked_state_folder_is_refused(tmp_path):
    target = tmp_path / "elsewhere"
    target.mkdir()
    (tmp_path / "state").symlink_to(target)
    with pytest.raises(UnsafeStateDirectory):
        private_directory(tmp_path / "state")


def test_secrets_are_new_0600_files_never_written_through_a_symlink(tmp_path):
    victim = tmp_path / "victim"
    victim.write_text("untouched")
    planted = tmp_path / "token"
    planted.symlink_to(victim)
    write_secret(planted, "s3cret")
    assert victim.read_text() == "untouched" and not planted.is_symlink()
    assert planted.read_text() == "s3cret" and stat.S_IMODE(os.lstat(planted).st_mode) == 0o600
