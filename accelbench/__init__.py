"""accelbench: measure models on hardware profiles, with MLPerf LoadGen, into comparable records."""

__version__ = "0.1.0"
