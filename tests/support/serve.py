"""`python -m tests.support.serve ...`: the real command line, with the test backend registered too."""

from provider.backends import BACKEND_MODULES
from provider.cli import main

BACKEND_MODULES["test"] = "tests.support.test_backend"

raise SystemExit(main())
