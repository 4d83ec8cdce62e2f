"""retrieval.locks: one writer per target; a waiter times out clearly; a killed holder frees the lock."""

import os
import signal
import subprocess
import sys
import time

import pytest

from retrieval.locks import LockTimeout, file_lock, lock_path
from tests.conftest import ROOT


def test_lock_file_sits_beside_the_target(tmp_path):
    assert lock_path(tmp_path / "store") == tmp_path / ".store.lock"
    with file_lock(tmp_path / "missing" / "store") as p:  # the target need not exist; its folder is made
        assert p == tmp_path / "missing" / ".store.lock" and p.read_text().strip() == str(os.getpid())


def test_second_holder_times_out_naming_the_holder(tmp_path):
    target = tmp_path / "result.json"
    with file_lock(target, timeout=0):
        t = time.monotonic()
        with pytest.raises(LockTimeout, match=rf"\.result\.json\.lock: still held by pid {os.getpid()} after 0\.2 s"):
            with file_lock(target, timeout=0.2):
                pass
        assert time.monotonic() - t >= 0.2
    with file_lock(target, timeout=0):  # released on exit
        pass


def test_killed_holder_releases_the_lock(tmp_path):
    target = tmp_path / "store"
    code = "import sys, time\nfrom retrieval.locks import file_lock\nwith file_lock(sys.argv[1]):\n    print('held', flush=True)\n    time.sleep(60)\n"
    holder = subprocess.Popen([sys.executable, "-c", code, str(target)], cwd=ROOT, stdout=subprocess.PIPE, text=True, env={**os.environ, "PYTHONPATH": str(ROOT)})
    try:
        assert holder.stdout.readline().strip() == "held"
        with pytest.raises(LockTimeout, match=f"pid {holder.pid}"):
            with file_lock(target, timeout=0.1):
                pass
        holder.send_signal(signal.SIGKILL)
        holder.wait()
        with file_lock(target, timeout=5):
            pass
    finally:
        if holder.poll() is None:
            holder.kill()
        holder.wait()
