"""MLPerf LoadGen scenarios: a SUT and QSL around a runtime, LoadGen's settings, its logs parsed.

LoadGen generates the traffic, times every sample and judges the run; this package only hands it
a system under test and reads back what it wrote. The SUT never reads a clock.

- ``sut``: the system under test (a runtime in this process, or an asynchronous one such as a
  remote endpoint), how it batches samples into calls, and one LoadGen test around it.
- ``settings``: LoadGen's TestSettings for a scenario, and the calibration runs that size them.
- ``logs``: LoadGen's detail log and trace read back into metrics and a verdict.
- ``run``: ``run_scenario``, one scenario end to end, and its ``ScenarioResult``.
"""

from accelbench.benchmarks.loadgen.logs import (
    CRITERIA_KEYS,
    LOADGEN_PERCENTILES,
    LOG_PREFIX,
    DetailLog,
    parse_detail_log,
    read_trace_latencies_ns,
)
from accelbench.benchmarks.loadgen.run import ScenarioResult, run_scenario
from accelbench.benchmarks.loadgen.settings import (
    LOADGEN_SCENARIOS,
    OFFLINE_CALIBRATION_RUNS,
    OFFLINE_QPS_MARGIN,
    SERVER_LOAD_FRACTION,
    SINGLE_STREAM_GUESS,
    settings_dict,
)
from accelbench.benchmarks.loadgen.sut import Batching, SupportsRun, SupportsSubmit, sut_batching

__all__ = [
    "CRITERIA_KEYS",
    "LOADGEN_PERCENTILES",
    "LOADGEN_SCENARIOS",
    "LOG_PREFIX",
    "OFFLINE_CALIBRATION_RUNS",
    "OFFLINE_QPS_MARGIN",
    "SERVER_LOAD_FRACTION",
    "SINGLE_STREAM_GUESS",
    "Batching",
    "DetailLog",
    "ScenarioResult",
    "SupportsRun",
    "SupportsSubmit",
    "parse_detail_log",
    "read_trace_latencies_ns",
    "run_scenario",
    "settings_dict",
    "sut_batching",
]
