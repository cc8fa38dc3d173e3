"""TensorFlow Serving-compatible HTTP model server: server, batching, response cache.

Importing this package loads no web framework; ``accelbench.serving.server`` does.
"""

import re

# A model name as it appears in URLs (/v1/models/NAME) and in a run folder's cell names: no '/'
# and no leading '.', so it can never name another folder.
MODEL_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")

# The one stdout line a server started with --port 0 prints once it accepts connections; the
# serving scenario and `accelbench load`'s tests wait for it.
LISTENING_PREFIX = "accelbench-serving: listening on "
