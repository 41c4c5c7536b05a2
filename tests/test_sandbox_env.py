"""Nothing of the instructor's environment reaches student code: a secret set in the grader's
environment is searched for everywhere a notebook can read inside the sandbox (its own
environment, every /proc/<pid>/environ and cmdline, the files it can list), and must not be found.
Needs bubblewrap, as the grader does."""
from __future__ import annotations

import uuid

from test_grade import needs_bwrap

from cvae_lib.grade.sandbox import Limits, Sandbox
from cvae_lib.grade.wire import encode

pytestmark = needs_bwrap

SEARCH = r'''
import os
def everything_readable():
    seen = [repr(dict(os.environ))]
    for pid in os.listdir("/proc"):
        if pid.isdigit():
            for name in ("environ", "cmdline"):
                try:
                    seen.append(open(f"/proc/{pid}/{name}", "rb").read().decode(errors="replace"))
                except OSError:
                    pass
    for top in ("/notebook", "/tmp", "/etc", "/root", "/home"):
        for folder, _, files in os.walk(top):
            for f in files[:50]:
                try:
                    seen.append(open(os.path.join(folder, f), "rb").read(4096).decode(errors="replace"))
                except OSError:
                    pass
    return "\n".join(seen)
'''


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
    readable = reply["value"]
    assert isinstance(readable, str) and "'PATH'" in readable, "the search did not read the environment"
    assert "LANG=C.UTF-8" in readable, "the search read no /proc/<pid>/environ, so it proves nothing"
    assert secret not in readable, "a variable of the grader's environment is readable inside the sandbox"
    assert "CVAE_INSTRUCTOR_SECRET" not in readable
