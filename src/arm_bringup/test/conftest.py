"""Fixtures of the arm_bringup tests: an isolated ROS domain (51-59) and fake node executables."""
from __future__ import annotations

import os
import stat
import sys
from pathlib import Path

import pytest

from bringup_helpers import FAKE_NODE, next_domain


@pytest.fixture
def ros_domain(monkeypatch) -> int:
    """A ROS_DOMAIN_ID in 51..59 for this test and every process it starts (on UDP loopback only:
    the root conftest.py)."""
    domain = next_domain()
    monkeypatch.setenv("ROS_DOMAIN_ID", str(domain))
    return domain


@pytest.fixture
def fake_prefix(tmp_path, monkeypatch) -> Path:
    """An install prefix with lib/arm_bringup_test/{talker,sleeper} wrapping fake_node.py,
    first on AMENT_PREFIX_PATH (what the launcher searches)."""
    prefix = tmp_path / "prefix"
    lib = prefix / "lib" / "arm_bringup_test"
    lib.mkdir(parents=True)
    for mode in ("talker", "sleeper"):
        exe = lib / mode
        exe.write_text(f'#!/bin/sh\nexec "{sys.executable}" "{FAKE_NODE}" {mode} "$@"\n')
        exe.chmod(exe.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    monkeypatch.setenv("AMENT_PREFIX_PATH",
                       os.pathsep.join([str(prefix), os.environ.get("AMENT_PREFIX_PATH", "")]))
    return prefix
