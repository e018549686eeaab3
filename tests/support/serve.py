"""`python -m tests.support.serve ...`: the real command line, with the test backend registered too."""

from provider.backends import BACKEND_MODULES
from provider.cli import main

BACKEND_MODULES["test"] = "tests.support.test_backend"
# A backend whose package does not exist, as in a build without it: its socket must still answer.
BACKEND_MODULES["absent"] = "tests.support.absent_backend"

raise SystemExit(main())
