"""Grade a folder of submitted exercise notebooks in one command, safely against hostile code.

    python -m cvae_lib.grade submissions/ --out gradebook/ [--timeout 300 --cpu-time 300 --memory 8]

`submissions/` holds either one folder per student (`alice/ex01_autoencoder.ipynb`, the layout
nbgrader's `submitted/` uses too) or flat files named `<student>__ex01_autoencoder.ipynb`.
Writes `gradebook.csv` (one row per student, exercise and check, and a total per student) and
`gradebook.md` (a readable summary with the totals).

Where the verdict comes from. Only the student's *solution cells* are taken from a submission
(the cells holding `### BEGIN SOLUTION` in the grader's copy `solutions/exNN_*.ipynb`, found by
cell id or by the functions they define); every other cell runs as the grader's copy has it, and
saved outputs, printed check results and edited or removed check cells count for nothing.
The checks of `cvae_lib.checks` run in the grader's own process, which never runs student code:
they call a proxy that sends the arguments (tensors and numbers, as data) to the notebook's
worker and gets the student's return value back (`remote.py`, `wire.py`). Patching torch, the
checks or builtins in the notebook, or writing files, changes only what that worker computes.

Isolation. Each notebook's worker runs under bubblewrap (`sandbox.py`): new user, PID, network,
IPC and UTS namespaces; read-only Python, venv and `cvae_lib`; a private size-capped tmpfs as
its working folder; no network; RLIMIT_AS (memory), RLIMIT_CPU (processor time) and a wall clock;
and when its grading ends the whole PID namespace is killed, setsid children included. The
grader stops with an error naming `apt-get install -y bubblewrap` when bwrap is missing.

A notebook that is unreadable, crashes, runs out of time, processor time or memory, or breaks
the grader's protocol gets rows saying so in words, and grading goes on with the next one.
"""
from .gradebook import Row, write_gradebook
from .grader import grade, grade_notebook, main
from .sandbox import Limits, SandboxUnavailable

__all__ = ["Row", "Limits", "SandboxUnavailable", "grade", "grade_notebook", "main", "write_gradebook"]
