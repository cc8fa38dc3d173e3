"""`python -m accelbench.cli.serve_subprocess MODEL [flags]`: `accelbench serve`, for starting in a
subprocess.

With ``--port 0`` it binds a free port; once it accepts connections it prints exactly one line to
stdout, ``accelbench-serving: listening on http://HOST:PORT``, and it exits with status 0 on
SIGTERM or SIGINT after closing its runtimes. Bad input: one line on stderr, status 2.
"""

from __future__ import annotations

import signal
import sys


def _main() -> int:
    # Until the server runs (it handles both signals), SIGTERM stops the start-up as Ctrl-C does.
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    try:
        from accelbench.cli import main

        return main(["serve", *sys.argv[1:]])
    except KeyboardInterrupt:
        return 0


if __name__ == "__main__":
    sys.exit(_main())
