"""Run the course headless (`make course`): see cvae_lib/course.py for what it writes.

    python tools/run_course.py                 # all notebooks, profile from CVAE_PROFILE (or auto)
    python tools/run_course.py 01 02           # only chapters whose file name starts with these
"""
import sys

from cvae_lib.course import main

if __name__ == "__main__":
    sys.exit(main())
