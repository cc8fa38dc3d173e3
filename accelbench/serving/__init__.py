"""TensorFlow Serving-compatible HTTP model server (issue 5)."""
