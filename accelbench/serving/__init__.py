"""TensorFlow Serving-compatible HTTP model server (issue 5): server, batching, response cache.

Importing this package loads no web framework; ``accelbench.serving.server`` does.
"""
