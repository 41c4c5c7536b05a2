"""Hardware decisions and wrappers, decided in runtime.py, and the atomic write in files.py."""
from __future__ import annotations

import pytest
import torch
from torch import nn

from cvae_lib.files import atomic_write
from cvae_lib.runtime import eval_mode, optimizer_flags, unwrap, use_channels_last


def test_unwrap_sees_through_dataparallel_and_compile_wrappers():
    net = nn.Linear(2, 2)
    assert unwrap(net) is net
    assert unwrap(nn.DataParallel(net)) is net                 # DDP's .module convention, no GPU needed
    compiled = torch.compile(net)                              # wrapping is lazy: nothing compiles here
    assert unwrap(compiled) is net and unwrap(nn.DataParallel(compiled)) is net


def test_eval_mode_restores_each_module_also_when_the_block_raises():
    a, b = nn.Dropout().train(), nn.Dropout().eval()
    with pytest.raises(RuntimeError), eval_mode(a, b, lambda x: x):   # a plain callable is passed over
        assert not a.training and not b.training
        raise RuntimeError("inside")
    assert a.training and not b.training


def test_channels_last_and_fused_optimizer_are_decided_by_device():
    assert use_channels_last("cpu") and use_channels_last("cuda") and not use_channels_last("mps")
    assert use_channels_last("cpu", False) is False and use_channels_last("mps", True) is True
    with pytest.raises(ValueError, match="channels_last"):
        use_channels_last("cpu", "yes")
    assert optimizer_flags("cuda", "adam") == {"fused": True} and optimizer_flags("cuda", "radam") == {}
    assert optimizer_flags("cpu", "adam") == {}


def test_atomic_write_keeps_the_old_file_when_the_writer_fails(tmp_path):
    target = tmp_path / "sub" / "f.bin"
    with atomic_write(target) as tmp:
        tmp.write_bytes(b"old")
    with pytest.raises(OSError), atomic_write(target) as tmp:
        tmp.write_bytes(b"half")
        raise OSError("disk full")
    assert target.read_bytes() == b"old" and list(target.parent.iterdir()) == [target]


def test_a_full_disk_names_the_file_and_keeps_the_last_good_checkpoint(tmp_path, monkeypatch):
    """torch.save on a full disk raises a cryptic RuntimeError; /dev/full is a real full disk."""
    from cvae_lib.files import WriteError
    from cvae_lib.train import save_checkpoint

    target = tmp_path / "run.pt"
    save_checkpoint(target, {"epoch": 1})
    real_save = torch.save
    monkeypatch.setattr(torch, "save", lambda obj, f: real_save(obj, "/dev/full"))
    with pytest.raises(WriteError, match=rf"could not write {target} .*MB free there.*previous run.pt.*unchanged"):
        save_checkpoint(target, {"epoch": 2, "big": torch.zeros(100_000)})
    monkeypatch.setattr(torch, "save", real_save)
    assert torch.load(target, weights_only=True)["epoch"] == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run.pt"]         # no temporary file left


def test_a_failing_cleanup_does_not_hide_the_write_error(tmp_path, monkeypatch):
    """On a read-only filesystem unlinking even a missing file fails (EROFS): the cleanup's error
    replaced the WriteError that names the file."""
    import errno
    from pathlib import Path

    from cvae_lib.files import WriteError

    def read_only(self, missing_ok=False):
        raise OSError(errno.EROFS, "Read-only file system", str(self))

    monkeypatch.setattr(Path, "unlink", read_only)
    with pytest.raises(WriteError, match="could not write .*f.bin"), atomic_write(tmp_path / "f.bin") as tmp:
        tmp.write_bytes(b"x")
        raise OSError(errno.EROFS, "Read-only file system")
    with atomic_write(tmp_path / "g.bin") as tmp:        # a write that succeeds is not failed by its cleanup
        tmp.write_bytes(b"whole")
    assert (tmp_path / "g.bin").read_bytes() == b"whole"


READ_ONLY = """
import sys, torch
from cvae_lib.files import WriteError, atomic_write
try:
    with atomic_write(sys.argv[1]) as tmp:
        torch.save({"w": torch.zeros(3)}, tmp)
except WriteError as e:
    print("WriteError:", e)
"""


def test_a_read_only_filesystem_is_a_write_error(tmp_path):
    """A real read-only mount (a tmpfs mounted read-only in a user and mount namespace of its own)."""
    import shutil
    import subprocess
    import sys

    if shutil.which("unshare") is None:
        pytest.skip("unshare is not installed")
    ro = tmp_path / "ro"
    ro.mkdir()
    script = f"mount -t tmpfs -o ro tmpfs {ro} && exec {sys.executable} -c '{READ_ONLY}' {ro}/run.pt"
    r = subprocess.run(["unshare", "--user", "--map-root-user", "--mount", "sh", "-c", script],
                       capture_output=True, text=True, timeout=120)
    if "mount" in r.stderr and r.returncode != 0 and "WriteError" not in r.stdout:
        pytest.skip(f"no read-only mount in a user namespace here: {r.stderr.strip()[:200]}")
    assert r.returncode == 0 and "WriteError: could not write" in r.stdout and "Read-only" in r.stdout, r


def test_atomic_write_removes_what_a_killed_writer_left(tmp_path):
    import subprocess
    import sys

    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True,
                          text=True, check=True).stdout.strip()             # a pid that has exited
    stale = tmp_path / f".run.pt.{dead}.tmp"
    stale.write_bytes(b"half a checkpoint")
    with atomic_write(tmp_path / "run.pt") as tmp:
        tmp.write_bytes(b"whole")
    assert not stale.exists() and (tmp_path / "run.pt").read_bytes() == b"whole"


def test_an_unavailable_cvae_device_names_the_variable(monkeypatch):
    """CVAE_DEVICE=cuda on a machine without it says which variable to change, not torch's
    'Found no NVIDIA driver'."""
    from cvae_lib import runtime
    monkeypatch.setenv("CVAE_DEVICE", "cuda:7")
    with pytest.raises(RuntimeError, match="CVAE_DEVICE"):
        runtime.pick_device()
    monkeypatch.setenv("CVAE_DEVICE", "gpu")
    with pytest.raises(RuntimeError, match="not a device name"):
        runtime.pick_device()
