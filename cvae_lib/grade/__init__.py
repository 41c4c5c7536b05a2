"""Grade a folder of submitted exercise notebooks in one command, safely against hostile code.

    python -m cvae_lib.grade submissions/ --out gradebook/ [--timeout 300 --cpu-time 300 --memory 8
                                                            --disk 256 --processes 64]

`submissions/` holds either one folder per student (`alice/ex01_autoencoder.ipynb`, the layout
nbgrader's `submitted/` uses too) or flat files named `<student>__ex01_autoencoder.ipynb`.
Writes `gradebook.csv` (one row per student, exercise and check, and a total per student) and
`gradebook.md` (a readable summary with the totals), both again after every notebook, so an
interrupted run (Ctrl-C, a kill) keeps every finished notebook. A second grader on the same
--out folder is refused. docs/grading.md is the instructors' page: the threat model, which
guarantees hold on which machine, and the limits the course's own notebooks need.

Where the verdict comes from. Only the student's *solution cells* are taken from a submission
(the cells holding `### BEGIN SOLUTION` in the grader's copy `solutions/exNN_*.ipynb`, found by
cell id or by the functions they define); every other cell runs as the grader's copy has it, and
saved outputs, printed check results and edited or removed check cells count for nothing.
The checks of `cvae_lib.checks` run in the grader's own process, which never runs student code:
they call a proxy that sends the arguments (tensors and numbers, as data) to the notebook's
worker and gets the student's return value back (`remote.py`, `wire.py`), with inputs drawn
from a secret seed at grading time. A task whose function calls the library's own
implementation of it (the checks' `REFERENCES`) earns no points.

Isolation. Each notebook's worker runs under bubblewrap (`sandbox.py`): new user, PID, network,
IPC and UTS namespaces; an empty environment; read-only Python, venv and `cvae_lib`; a read-only
root and /dev; one size-capped tmpfs (its folder and /tmp) and a capped /dev/shm; no network;
memory and process limits for the whole notebook (cgroups where the machine allows, else
rlimits: `limits.py`), processor time and a wall clock; when its grading ends the whole PID
namespace is killed, setsid children included. The grader stops with an error naming
`apt-get install -y bubblewrap` when bwrap is missing, and with the reason when a limit is
below what the course's own notebooks need or more than the machine grants.

A notebook that is unreadable, a link, a FIFO or a device, crashes, runs out of time, processor
time or memory, or breaks the grader's protocol gets rows saying so in words, and grading goes
on with the next one.
"""
from .gradebook import Row, write_gradebook
from .grader import GraderSetupError, grade, grade_notebook, main
from .limits import Limits
from .sandbox import SandboxUnavailable

__all__ = ["Row", "Limits", "SandboxUnavailable", "GraderSetupError", "grade", "grade_notebook", "main",
           "write_gradebook"]
