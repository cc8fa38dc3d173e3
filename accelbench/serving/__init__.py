"""TensorFlow Serving-compatible HTTP model server: server, batching, response cache.

Importing this package loads no web framework; ``accelbench.serving.server`` does.
"""

import re

from accelbench.errors import UsageError

# A model name as it appears in URLs (/v1/models/NAME) and in a run folder's cell names: no '/'
# and no leading '.', so it can never name another folder.
MODEL_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")

# The one stdout line a server started with --port 0 prints once it accepts connections; the
# serving scenario and `accelbench load`'s tests wait for it.
LISTENING_PREFIX = "accelbench-serving: listening on "


def check_api_key(key: str) -> None:
    """An API key must be printable ASCII without spaces (it travels in an HTTP header)."""
    if not key or not all(33 <= ord(c) < 127 for c in key):
        raise UsageError(
            "an API key must be non-empty printable ASCII without spaces or line breaks; make one "
            "with e.g. python -c 'import secrets; print(secrets.token_urlsafe(32))'"
        )
