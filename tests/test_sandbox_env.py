"""Nothing of the instructor's environment reaches student code: a secret set in the grader's
environment is searched for everywhere a notebook can read inside the sandbox (its own
environment, every /proc/<pid>/environ and cmdline, the files it can list), and must not be found.
Needs bubblewrap, as the grader does."""
from __future__ import annotations

import uuid

from test_grade import needs_bwrap

from cvae_lib.grade.sandbox import Limits, Sandbox
from cvae_lib.grade.wire import decode, encode

pytestmark = needs_bwrap

SEARCH = r"""
import os, re
PATTERN = re.compile(rb"lms-token-[0-9a-f]{32}|CVAE_INSTRUCTOR_SECRET")
def everything_readable():
    blobs = [repr(dict(os.environ)).encode()]
    for pid in os.listdir("/proc"):
        if pid.isdigit():
            for name in ("environ", "cmdline"):
                try:
                    blobs.append(open(f"/proc/{pid}/{name}", "rb").read())
                except OSError:
                    pass
    for top in ("/notebook", "/tmp", "/dev/shm", "/etc", "/root", "/home"):
        for folder, _, files in os.walk(top):
            for f in files[:50]:
                try:
                    blobs.append(open(os.path.join(folder, f), "rb").read(4096))
                except OSError:
                    pass
    found = sorted({m.decode() for b in blobs for m in PATTERN.findall(b)})
    return {"found": found, "blobs": len(blobs), "environ": "'PATH'" in blobs[0].decode(),
            "proc_environ": any(b"LANG=C.UTF-8" in b for b in blobs[1:])}
"""


def test_grader_environment_is_invisible_in_the_sandbox(monkeypatch):
    secret = f"lms-token-{uuid.uuid4().hex}"
    monkeypatch.setenv("CVAE_INSTRUCTOR_SECRET", secret)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", secret)
    with Sandbox(Limits(wall_s=120)) as box:
        box.send({"op": "exec", "source": SEARCH})
        assert box.recv()["error"] is None
        box.send({"op": "call", "name": "everything_readable", "args": encode(()), "kwargs": encode({}), "grad": False})
        reply = box.recv()
    assert reply["op"] == "result", reply
    seen = decode(reply["value"])
    assert seen["environ"], "the search did not read the environment"
    assert seen["proc_environ"], "the search read no /proc/<pid>/environ, so it proves nothing"
    assert seen["blobs"] > 100, "the search read almost nothing, so it proves nothing"
    # the search looks for the secret's form (and the variable's name), never for the secret itself,
    # which must not be sent into the sandbox to look for
    assert seen["found"] == [], "a variable of the grader's environment is readable inside the sandbox"
