"""`python -m accelbench.cli ARGS`: the `accelbench` command."""

import sys

from accelbench.cli import main

sys.exit(main())
