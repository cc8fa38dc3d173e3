"""Scenarios, what is measured: MLPerf LoadGen latency and throughput runs and their presets."""
