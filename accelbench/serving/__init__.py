"""TensorFlow Serving-compatible HTTP model server: server, batching, response cache.

Importing this package loads no web framework; ``accelbench.serving.server`` does.
"""

# The one stdout line a server started with --port 0 prints once it accepts connections; the
# serving scenario and `accelbench load`'s tests wait for it.
LISTENING_PREFIX = "accelbench-serving: listening on "
