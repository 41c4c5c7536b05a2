"""`python -m cvae_lib.grade submissions/ --out gradebook/`."""
import sys

from .grader import main

sys.exit(main())
