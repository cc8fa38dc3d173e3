"""Graph cost of .tflite files, what a device refuses, and the per-op projection."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import run_cli

from accelbench.errors import UsageError
from accelbench.hardware_profiles import load_profile
from accelbench.hardware_profiles.calibrate import Calibration, int8_fully_connected_model
from accelbench.hardware_profiles.emulation import check_artifact_supported
from accelbench.hardware_profiles.projection import (
    OpEntry,
    OpTable,
    band,
    project,
    projection_record,
)
from accelbench.hardware_profiles.schema import HardwareProfile
from accelbench.records import read_records
from accelbench.runtimes.tflite_cost import analyze_tflite

DATA = Path(__file__).parent / "data"


def _calibration(fp32_gflops: float, int8_gops: float, bandwidth_gbps: float) -> Calibration:
    return Calibration(
        host_fingerprint_id="test",
        measured_at="2025-01-01T00:00:00+00:00",
        fp32_gflops=fp32_gflops,
        int8_gops=int8_gops,
        memory_bandwidth_gbps=bandwidth_gbps,
        threads=2,
        seconds=1.0,
    )


def _custom_op_model(path: Path) -> Path:
    """input [1,4] -> custom 'MyMysteryOp' -> RELU -> output, written without TensorFlow."""
    import flatbuffers
    from ai_edge_litert import schema_py_generated as fb

    def tensor(name: str, buffer: int):
        t = fb.TensorT()
        t.name, t.shape, t.type, t.buffer = name, [1, 4], fb.TensorType.FLOAT32, buffer
        return t

    def op(code: int, inputs: list[int], outputs: list[int]):
        o = fb.OperatorT()
        o.opcodeIndex, o.inputs, o.outputs = code, inputs, outputs
        return o

    subgraph = fb.SubGraphT()
    subgraph.tensors = [tensor("in", 1), tensor("mid", 2), tensor("out", 3)]
    subgraph.inputs, subgraph.outputs = [0], [2]
    subgraph.operators = [op(0, [0], [1]), op(1, [1], [2])]
    custom, relu = fb.OperatorCodeT(), fb.OperatorCodeT()
    custom.builtinCode = custom.deprecatedBuiltinCode = fb.BuiltinOperator.CUSTOM
    custom.customCode = "MyMysteryOp"
    relu.builtinCode = relu.deprecatedBuiltinCode = fb.BuiltinOperator.RELU
    model = fb.ModelT()
    model.version, model.operatorCodes, model.subgraphs = 3, [custom, relu], [subgraph]
    model.buffers = [fb.BufferT() for _ in range(4)]
    builder = flatbuffers.Builder(0)
    builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
    path.write_bytes(bytes(builder.Output()))
    return path


def test_conv_model_flops_equal_the_hand_count():
    cost = analyze_tflite(DATA / "cnn_f32.tflite")
    by_op = [(op.name, op.flops) for op in cost.ops]
    # Input 16x16x3; 'same' padding keeps 16x16. FLOPs = 2 x MACs.
    conv3x3 = 2 * (16 * 16 * 8) * 3 * 3 * 3  # out 16x16x8, filter 3x3, cin 3
    depthwise = 2 * (16 * 16 * 8) * 3 * 3  # out 16x16x8, 3x3 per channel
    conv1x1 = 2 * (16 * 16 * 16) * 1 * 1 * 8  # out 16x16x16, cin 8
    dense = 2 * 10 * 16  # 10 units x 16 features
    assert ("CONV_2D", conv3x3) in by_op
    assert ("DEPTHWISE_CONV_2D", depthwise) in by_op
    assert ("CONV_2D", conv1x1) in by_op
    assert ("FULLY_CONNECTED", dense) in by_op
    assert cost.flops >= conv3x3 + depthwise + conv1x1 + dense
    assert cost.op_counts["CONV_2D"] == 2
    # 3x3x3x8 + 3x3x8 + 8x16 + 16x10 weights and the biases, 4 bytes each (a shared zero bias
    # is stored once).
    params = 3 * 3 * 3 * 8 + 3 * 3 * 8 + 8 * 16 + 16 * 10
    assert params * 4 < cost.weight_bytes < (params + 40) * 4 + 16
    assert cost.precision == "fp32" and not cost.is_full_integer


def test_full_integer_models_are_recognised_and_weigh_a_quarter():
    f32 = analyze_tflite(DATA / "cnn_f32.tflite")
    int8 = analyze_tflite(DATA / "cnn_int8.tflite")
    assert int8.precision == "int8"
    assert int8.is_full_integer
    assert int8.float_ops == []
    assert int8.flops == f32.flops
    assert int8.weight_bytes < f32.weight_bytes / 2  # int8 weights, int32 biases

    uint8_io = analyze_tflite(DATA / "mlp_uint8io.tflite")  # QUANTIZE at both ends
    assert uint8_io.is_full_integer and uint8_io.precision == "int8"


def test_a_dynamic_batch_counts_as_batch_one():
    dynamic = analyze_tflite(DATA / "dynamic_batch_f32.tflite")
    fixed = analyze_tflite(DATA / "mlp_f32.tflite")
    assert dynamic.flops == fixed.flops == 2 * (64 * 32 + 32 * 10) + 10  # + softmax elements
    assert dynamic.activation_bytes == fixed.activation_bytes


def test_unknown_ops_count_zero_and_are_listed(tmp_path):
    cost = analyze_tflite(_custom_op_model(tmp_path / "custom.tflite"))
    assert cost.uncounted_ops == ["MyMysteryOp"]
    assert cost.flops == 4  # RELU: one per output element
    assert cost.op_counts == {"MyMysteryOp": 1, "RELU": 1}


def test_a_file_that_is_not_a_model_is_a_usage_error(tmp_path):
    junk = tmp_path / "junk.tflite"
    junk.write_bytes(b"not a flatbuffer at all")
    with pytest.raises(UsageError, match=r"junk\.tflite' is not a readable \.tflite"):
        analyze_tflite(junk)
    with pytest.raises(UsageError, match=r"does not exist"):
        analyze_tflite(tmp_path / "missing.tflite")


def test_edge_tpu_refuses_float_models_and_accepts_full_integer_ones():
    coral = load_profile("coral-edgetpu")
    refusal = check_artifact_supported(coral, analyze_tflite(DATA / "cnn_f32.tflite"))
    assert refusal is not None
    assert refusal.startswith("coral-edgetpu runs full-integer int8 models only")
    assert "6 float ops (e.g. CONV_2D" in refusal
    assert "quantize it with full-integer int8" in refusal
    assert check_artifact_supported(coral, analyze_tflite(DATA / "cnn_int8.tflite")) is None
    assert check_artifact_supported(coral, analyze_tflite(DATA / "mlp_uint8io.tflite")) is None

    t4 = load_profile("nvidia-t4")
    assert check_artifact_supported(t4, analyze_tflite(DATA / "cnn_f32.tflite")) is None
    assert check_artifact_supported(t4, analyze_tflite(DATA / "cnn_int8.tflite")) is None


def test_a_profile_without_the_models_precision_refuses_it(tmp_path):
    path = tmp_path / "float-only.yaml"
    path.write_text(
        "name: float-only\nkind: npu\nvendor: x\nmodel: y\ncores: 1\nmemory_gb: 1\n"
        "supported_precisions: [fp32, fp16]\nexecution: projected\n"
    )
    refusal = check_artifact_supported(
        load_profile(str(path)), analyze_tflite(DATA / "cnn_int8.tflite")
    )
    assert refusal == (
        "float-only supports fp32, fp16, not this int8 model; convert it to one of those precisions"
    )


# ---- the per-op device model ------------------------------------------------------------------


def _bare(name: str):
    """A built-in profile without its projection block: a bare per-op roofline."""
    return load_profile(name).model_copy(update={"projection": None})


def _device(tmp_path: Path, projection: str) -> object:
    """A 1 TOP/s int8, 10 GB/s device with the given projection block."""
    path = tmp_path / "toy.yaml"
    path.write_text(
        "name: toy\nkind: npu\nvendor: x\nmodel: y\ncores: 1\nmemory_gb: 1\n"
        "peak_compute: {int8: 1}\nmemory_bandwidth_gbps: 10\nsupported_precisions: [int8]\n"
        "execution: projected\n"
        "sources:\n"
        "  - {figure: peak_compute.int8, value: 1, url_or_citation: test}\n"
        "  - {figure: memory_bandwidth_gbps, value: 10, url_or_citation: test}\n"
        "  - {figure: memory_gb, value: 1, url_or_citation: test}\n" + projection
    )
    return load_profile(str(path))


# One conv (2 GFLOP, 1 MB of weights, 0.1 MB in and out) and one ADD; 0.1 MB in, 1 kB out.
TINY = OpTable(
    model="tiny",
    ops=[
        OpEntry("CONV_2D", "int8", 2_000_000_000, 1_000_000, 100_000, 100_000, 100_000),
        OpEntry("ADD", "int8", 100_000, 0, 200_000, 100_000, 100_000),
    ],
    input_bytes=100_000,
    output_bytes=1_000,
    precision="int8",
)
TOY_BLOCK = (
    "projection:\n"
    "  runtime: toy runtime\n"
    "  efficiency: {conv: {int8: 0.5}, other: {int8: 0.25}}\n"
    "  per_op_overhead_us: 10\n"
    "  per_inference_overhead_us: 100\n"
    "  link_bandwidth_gbps: 1\n"
    "  link_latency_us: 50\n"
    "  on_chip_parameter_mb: 0.5\n"
    "  runtime_call_overhead_us: {jax: 300}\n"
    "  sources: {efficiency: a, per_op_overhead_us: b, per_inference_overhead_us: c,\n"
    "            link_bandwidth_gbps: d, link_latency_us: e, on_chip_parameter_mb: f,\n"
    "            runtime_call_overhead_us: g, fill_output_elements: h}\n"
)


def test_the_per_op_model_adds_up_by_hand(tmp_path):
    toy = _device(tmp_path, TOY_BLOCK)
    result = project(TINY, toy)
    # conv: compute 2e9 / (1e12 * 0.5) = 4 ms beats memory 1.2e6 / 10e9 = 0.12 ms; + 10 us.
    conv_ms = 4.0 + 0.010
    # ADD: compute 1e5 / (1e12 * 0.25) = 0.0004 ms, memory 3e5 / 10e9 = 0.03 ms; + 10 us.
    add_ms = 0.03 + 0.010
    # link: 101 kB / 1 GB/s + 50 us; 0.5 MB of the 1 MB of weights streamed: 0.5 ms.
    link_ms = 0.101 + 0.050 + 0.5
    assert result.latency_ms == pytest.approx(conv_ms + add_ms + 0.1 + link_ms)
    assert result.link_ms == pytest.approx(link_ms)
    assert result.bound == "compute"
    assert result.top_ops(1) == [("CONV_2D#0", pytest.approx(conv_ms))]
    assert "0.5 MB of parameters beyond the 0.5 MB on chip" in result.notes[0]
    # A runtime with its own per-call cost adds it, and says so; offline overlaps the link.
    assert project(TINY, toy, runtime="jax").latency_ms == pytest.approx(result.latency_ms + 0.3)
    assert "300 µs per call of the jax runtime" in project(TINY, toy, runtime="jax").notes[-1]
    offline = project(TINY, toy, scenario="offline")
    assert offline.batch == 256
    assert offline.latency_ms == pytest.approx(
        max(offline.compute_ms + offline.memory_ms + offline.overhead_ms, offline.link_ms)
    )


def test_a_batch_one_layer_fills_only_part_of_a_wide_device(tmp_path):
    narrow = project(TINY, _device(tmp_path, TOY_BLOCK))
    wide = project(TINY, _device(tmp_path, TOY_BLOCK + "  fill_output_elements: 1000000\n"))
    # 1e5 of the 1e6 output elements that fill it: a tenth of its peak, 40 ms for the conv.
    assert wide.latency_ms - narrow.latency_ms == pytest.approx(40.0 - 4.0, rel=1e-3)


def test_without_a_projection_block_it_is_a_bare_roofline_per_op(tmp_path):
    t4 = _bare("nvidia-t4")  # 130 TOP/s int8, 320 GB/s
    big = tmp_path / "fc1024.tflite"
    big.write_bytes(int8_fully_connected_model(1024, 1024, 1024))
    matmul = OpTable.from_tflite(big)
    assert matmul.flops == 2 * 1024**3
    compute = project(matmul, t4)
    assert compute.bound == "compute"
    assert compute.latency_ms == pytest.approx(2 * 1024**3 / 130e12 * 1e3, rel=0.01)

    mlp = OpTable.from_tflite(DATA / "mlp_f32.tflite")  # about half a FLOP per byte
    memory = project(mlp, t4)
    assert memory.bound == "memory"
    by_hand = sum(
        max(op.flops / 8.1e12, (op.weight_bytes + op.input_bytes + op.output_bytes) / 320e9)
        for op in mlp.ops
    )
    assert memory.latency_ms == pytest.approx(by_hand * 1e3)
    assert band(memory.latency_ms, t4)["rests_on"].startswith("unchecked")


def test_projection_onto_a_device_without_a_usable_peak_is_a_usage_error():
    with pytest.raises(UsageError, match=r"coral-edgetpu has no peak_compute figure for fp32"):
        project(OpTable.from_tflite(DATA / "cnn_f32.tflite"), load_profile("coral-edgetpu"))


def test_every_projected_profile_has_sourced_parameters_and_names_its_runtime():
    from accelbench.hardware_profiles import builtin_names

    for name in builtin_names():
        profile = load_profile(name)
        assert profile.projection is not None, name
        assert profile.projection.runtime, name
        assert profile.projection.set_parameters(), name
        assert not profile.projection.unsourced(), name
    coral = load_profile("coral-edgetpu").projection
    assert coral.on_chip_parameter_mb == 8
    assert "coral.ai" in coral.sources["on_chip_parameter_mb"]
    assert coral.sources["efficiency"].startswith("fitted to: ")


def test_a_projection_parameter_without_a_source_is_one_line(tmp_path):
    with pytest.raises(UsageError, match=r"projection parameter\(s\) per_op_overhead_us have no"):
        _device(tmp_path, "projection:\n  per_op_overhead_us: 5\n")


def test_every_published_row_is_within_2x_and_bands_rest_on_them():
    """The shipped parameters and cost tables reproduce the validation table's claim."""
    from accelbench.hardware_profiles.projection import class_residuals
    from accelbench.hardware_profiles.validation import load_rows, ratio_error

    rows = load_rows()
    checked = [pair for kind in ("edge-tpu", "edge-cpu", "gpu") for pair in class_residuals(kind)]
    assert len(checked) == len(rows) == 12
    for row, ratio in checked:
        assert ratio_error(ratio) < 2.0, (row, ratio)
    coral = band(10.0, load_profile("coral-edgetpu"))
    assert coral["rests_on"].startswith("checked on 5 published rows for edge-tpu")
    assert coral["low_ms"] < 10.0 < coral["high_ms"]
    # The band is at least as wide as the worst row, fitted or left out of the fit.
    assert "left out of the fit" in coral["rests_on"]
    fitted_worst = max(ratio_error(r) for _, r in class_residuals("edge-tpu"))
    assert coral["high_ms"] / 10.0 == pytest.approx(coral["worst_error"])
    assert coral["worst_error"] >= fitted_worst
    assert band(10.0, load_profile("tpu-v5e"))["rests_on"].startswith("unchecked")
    # A profile of one's own, even of a checked class, rests on no published row.
    own = load_profile("rpi4").model_copy(update={"name": "my-pi"})
    assert band(10.0, own) == {
        "low_ms": None,
        "high_ms": None,
        "rests_on": "unchecked (a profile of its own, whose parameters no published row checks)",
    }


def test_the_projection_is_the_same_whichever_host_runs_it(tmp_path, monkeypatch):
    from accelbench.hardware_profiles import calibrate
    from accelbench.hardware_profiles.calibrate import save_calibration

    cost = analyze_tflite(DATA / "cnn_int8.tflite")
    seen = []
    for name, gflops in (("xeon", 50.0), ("epyc", 400.0)):
        monkeypatch.setenv("ACCELBENCH_CACHE_DIR", str(tmp_path / name))
        save_calibration(_calibration(gflops, gflops * 4, gflops / 5))
        monkeypatch.setattr(calibrate, "detect_host", lambda n=name: pytest.fail(f"read host {n}"))
        seen.append(projection_record(cost, load_profile("rpi4")))
    assert seen[0] == seen[1]
    assert "no figure of this host" in seen[0]["method"]
    assert seen[0]["band"]["low_ms"] < seen[0]["projected_latency_ms"] < seen[0]["band"]["high_ms"]


# ---- accelbench project -----------------------------------------------------------------------


def test_project_prints_a_table_and_json():
    model = str(DATA / "cnn_int8.tflite")
    table = run_cli("project", model, "--profile", "coral-edgetpu,tpu-v5e")
    assert table.returncode == 0, table.stderr
    lines = table.stdout.splitlines()
    assert lines[0].split() == [
        "model",
        "profile",
        "projected",
        "$",
        "per",
        "M",
        "inferences",
        "bound",
        "top",
        "ops",
        "band",
    ]
    coral = next(line for line in lines if "coral-edgetpu" in line)
    assert "ms" in coral and "checked on 5 published rows for edge-tpu" in coral
    assert "unchecked" in next(line for line in lines if "tpu-v5e" in line)

    as_json = run_cli(
        "project",
        model,
        str(DATA / "cnn_f32.tflite"),
        "--profile",
        "coral-edgetpu,nvidia-t4",
        "--format",
        "json",
    )
    assert as_json.returncode == 0, as_json.stderr
    rows = json.loads(as_json.stdout)
    assert [(r["model"], r["profile"]) for r in rows] == [
        ("cnn_int8.tflite", "coral-edgetpu"),
        ("cnn_int8.tflite", "nvidia-t4"),
        ("cnn_f32.tflite", "coral-edgetpu"),
        ("cnn_f32.tflite", "nvidia-t4"),
    ]
    cost = analyze_tflite(DATA / "cnn_int8.tflite")
    expected = projection_record(cost, load_profile("nvidia-t4"))["projected_latency_ms"]
    assert rows[1]["projected_latency_ms"] == pytest.approx(expected)
    assert rows[1]["band"]["low_ms"] < expected < rows[1]["band"]["high_ms"]
    assert rows[1]["bound"] in ("compute", "memory", "overhead", "link")
    assert rows[2]["projected_latency_ms"] is None and "full-integer" in rows[2]["refused"]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["missing.tflite"], "model file 'missing.tflite' does not exist"),
        (["digits_cnm"], "model 'digits_cnm' is no file, folder or reference model"),
        (["{cnn}", "--precision", "int4"], "argument --precision: invalid choice"),
        (["{cnn}", "--profile", "nope"], "unknown hardware profile 'nope'"),
        ([], "give at least one MODEL"),
    ],
)
def test_project_bad_input_is_one_line_and_exit_2(args, message):
    args = [a.replace("{cnn}", str(DATA / "cnn_int8.tflite")) for a in args]
    proc = run_cli("project", *args)
    assert proc.returncode == 2
    assert message in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1


def test_a_run_with_emulated_and_projected_cells_does_not_calibrate_this_host(tmp_path):
    # Neither an emulated cell (this host under the device's limits) nor a projection reads the
    # host's calibration, so a run of them on a fresh cache measures nothing before its cells.
    cache = tmp_path / "cache"
    cache.mkdir()
    out = tmp_path / "run"
    shown = run_cli(
        "bench",
        str(DATA / "cnn_int8.tflite"),
        "--profile",
        "rpi4,coral-edgetpu",
        "--threads",
        "1",
        "--scenario",
        "single-stream",
        "--preset",
        "quick",
        "--out",
        str(out),
        "--no-progress",
        env={"ACCELBENCH_CACHE_DIR": str(cache)},
    )
    assert shown.returncode == 0, shown.stderr
    assert "calibrating" not in shown.stderr
    assert not (cache / "calibration.json").exists()
    records = {r["profile"]: r for r in read_records(out)}
    cost = analyze_tflite(DATA / "cnn_int8.tflite")
    for name in ("rpi4", "coral-edgetpu"):
        assert records[name]["status"] == "ok"
        expected = projection_record(cost, load_profile(name))["projected_latency_ms"]
        assert records[name]["projection"]["projected_latency_ms"] == pytest.approx(expected)


def test_project_takes_reference_model_names_and_keras_models(tmp_path):
    cache = {"ACCELBENCH_CACHE_DIR": str(tmp_path)}
    args = ["--profile", "coral-edgetpu,rpi4", "--format", "json", "--precision", "int8"]
    models = ["digits_cnn", str(DATA / "mlp.keras"), str(DATA / "mlp_savedmodel")]
    shown = run_cli("project", *models, *args, env=cache)
    assert shown.returncode == 0, shown.stderr
    rows = json.loads(shown.stdout)
    assert [(r["model"], r["profile"]) for r in rows] == [
        ("digits_cnn (int8, untrained)", "coral-edgetpu"),
        ("digits_cnn (int8, untrained)", "rpi4"),
        ("mlp.keras (int8)", "coral-edgetpu"),
        ("mlp.keras (int8)", "rpi4"),
        ("mlp_savedmodel (int8)", "coral-edgetpu"),
        ("mlp_savedmodel (int8)", "rpi4"),
    ]
    # Converted to full int8, so the Edge TPU takes all three (the SavedModel's variables frozen:
    # the same two dense layers as the Keras file); the built reference model is cached, and its
    # projection is the one its .tflite gets.
    assert rows[4]["top_ops"][0]["op"].startswith("FULLY_CONNECTED")
    assert all(r["projected_latency_ms"] > 0 for r in rows)
    built = tmp_path / "projection" / "reference" / "int8" / "digits_cnn.tflite"
    expected = projection_record(analyze_tflite(built), load_profile("rpi4"))
    assert rows[1]["projected_latency_ms"] == pytest.approx(expected["projected_latency_ms"])


def test_validate_prints_projected_published_ratio_and_errors(tmp_path):
    cache = tmp_path / "cache"
    (cache / "projection").mkdir(parents=True)
    table = OpTable.from_tflite(DATA / "cnn_int8.tflite").to_dict()
    (cache / "projection" / "tiny-16-int8.json").write_text(json.dumps(table))
    rows = tmp_path / "rows.yaml"
    row = (
        "- {architecture: tiny, input_size: 16, precision: int8, profile: coral-edgetpu,\n"
        "   scenario: single-stream, statistic: p50, published: %s, source: s, url: u, date: d}\n"
    )
    rows.write_text(row % 0.5 + row % 1.0 + row.replace("tiny", "absent") % 1.0)
    proc = run_cli(
        "project",
        "--validate",
        "--table",
        str(rows),
        "--no-build",
        env={"ACCELBENCH_CACHE_DIR": str(cache)},
    )
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert lines[0].split()[:6] == [
        "profile",
        "model",
        "scenario",
        "projected",
        "published",
        "ratio",
    ]
    projected = projection_record(
        analyze_tflite(DATA / "cnn_int8.tflite"), load_profile("coral-edgetpu")
    )["projected_latency_ms"]
    first, second, absent = lines[1:4]
    assert f"{projected / 0.5:.2f}" in first.split() and f"{projected:.2f}" in second.split()
    assert "not built" in absent
    summary = lines[lines.index("") + 2]
    worst = max(projected / 0.5, 0.5 / projected, projected, 1 / projected)
    assert summary.split()[:3] == ["coral-edgetpu", "2", f"{worst:.2f}×"]


# ---- accelbench profiles fit ------------------------------------------------------------------


def test_the_fit_recovers_a_known_device_from_its_kernel_times():
    """Kernel times made by a known projection block are fitted back to within 5%."""
    from accelbench.hardware_profiles.fit import fit_projection
    from accelbench.hardware_profiles.schema import ProjectionParameters

    host = _bare("rpi5")
    truth = host.model_copy(
        update={
            "projection": ProjectionParameters(
                efficiency={"conv": {"int8": 0.2, "fp32": 0.5}, "matmul": {"fp32": 0.4}},
                per_op_overhead_us=30,
                per_inference_overhead_us=10,
            )
        }
    )
    tables = [OpTable.from_tflite(DATA / name) for name in ("cnn_int8.tflite", "cnn_f32.tflite")]
    tables += [OpTable.from_tflite(DATA / f"conv{n}_f32.tflite") for n in (2, 6, 24)]
    measured = [(table, project(table, truth).latency_ms) for table in tables]
    block, rows = fit_projection(measured, host, threads=4)
    assert len(rows) == len(tables)
    for _, measured_ms, projected_ms in rows:
        assert projected_ms == pytest.approx(measured_ms, rel=0.05)
    assert block["runtime"] == "LiteRT + XNNPACK, 4 threads"
    assert block["sources"]["efficiency"].startswith("fitted to: 5 micro-kernels")


def _kernel(
    name: str, op: str, weights: int, flops: int, area: int = 9, io_bytes: int = 200_000
) -> OpTable:
    """A one-op table, as a micro-kernel's .tflite gives it (fp32): the op's input and output
    are the graph's."""
    entry = OpEntry(op, "fp32", flops, 4 * weights, io_bytes, io_bytes, 50_000, area)
    return OpTable(name, [entry], io_bytes, io_bytes, "fp32")


def test_the_fit_recovers_shape_and_weight_stream_from_fake_kernel_times():
    """A fake timing function (a known block, its weight stream added to the cold calls) over
    convolutions of 100 to a million parameters is fitted back: the efficiency, the parameter
    count at half of it, the fixed cost, the rate at which a call's input and output cross into
    and out of the interpreter, and the weight stream, each to within 10%."""
    from accelbench.hardware_profiles.fit import fit_projection
    from accelbench.hardware_profiles.schema import ProjectionParameters

    host = _bare("rpi5")
    truth = ProjectionParameters(
        efficiency={"conv": {"fp32": 0.5}, "pointwise": {"fp32": 0.8}},
        weights_half={"conv": {"fp32": 2000.0}, "pointwise": {"fp32": 500.0}},
        per_op_overhead_us=3.0,
        device_bandwidth_gbps=400.0,
        link_bandwidth_gbps=5.0,
    )
    device = host.model_copy(update={"projection": truth})
    tables = [
        _kernel(f"conv-{w}", "CONV_2D", w, flops, area, 100_000 * 4 ** ((index + shift) % 3))
        for index, w in enumerate((100, 300, 1000, 3000, 10_000, 100_000, 1_000_000))
        for shift, (flops, area) in enumerate(((2_000_000, 9), (20_000_000, 9), (5_000_000, 1)))
    ]
    stream_gbps = 8.0
    warm = [project(table, device).latency_ms for table in tables]
    cold = [
        ms + (table.weight_bytes + table.ops[0].input_bytes) / (stream_gbps * 1e9) * 1e3
        for table, ms in zip(tables, warm, strict=True)
    ]
    block, rows = fit_projection(
        list(zip(tables, warm, strict=True)), host, threads=1, cold_ms=cold
    )
    for _, measured_ms, projected_ms in rows:
        assert projected_ms == pytest.approx(measured_ms, rel=0.03)
    assert block["efficiency"]["conv"]["fp32"] == pytest.approx(0.5, rel=0.1)
    assert block["efficiency"]["pointwise"]["fp32"] == pytest.approx(0.8, rel=0.1)
    assert block["weights_half"]["conv"]["fp32"] == pytest.approx(2000, rel=0.1)
    assert block["weights_half"]["pointwise"]["fp32"] == pytest.approx(500, rel=0.1)
    # One op a kernel: its per-op and per-inference costs are one constant, split between them.
    fixed_us = block["per_op_overhead_us"] + block["per_inference_overhead_us"]
    assert fixed_us == pytest.approx(3.0, rel=0.1)
    assert block["link_bandwidth_gbps"] == pytest.approx(5.0, rel=0.1)
    assert block["weight_stream_gbps"] == pytest.approx(stream_gbps, rel=0.1)
    assert block["sources"]["weight_stream_gbps"].startswith("fitted to: 21 micro-kernels")


def test_kinds_fall_back_to_their_parent_and_shape_slows_small_ops():
    """A profile with no pointwise efficiency projects a 1×1 convolution with its conv one (the
    built-in profiles are unchanged); W½ slows an op with few parameters per filter tap (input
    × output channels) and not a wide one."""
    from accelbench.hardware_profiles.schema import ProjectionParameters

    host = _bare("rpi5")
    plain = host.model_copy(
        update={"projection": ProjectionParameters(efficiency={"conv": {"fp32": 0.5}})}
    )
    pointwise = _kernel("pw", "CONV_2D", 1000, 10_000_000, area=1)
    spatial = _kernel("sp", "CONV_2D", 9 * 1000, 10_000_000, area=9)  # 1000 a tap
    assert pointwise.ops[0].kind == "pointwise" and spatial.ops[0].kind == "conv"
    assert project(pointwise, plain).latency_ms == project(spatial, plain).latency_ms
    shaped = host.model_copy(
        update={
            "projection": ProjectionParameters(
                efficiency={"conv": {"fp32": 0.5}}, weights_half={"conv": {"fp32": 1000.0}}
            )
        }
    )
    assert project(spatial, shaped).compute_ms == pytest.approx(
        2 * project(spatial, plain).compute_ms
    )
    wide = _kernel("wide", "CONV_2D", 1_000_000_000, 10_000_000_000)
    assert project(wide, shaped).compute_ms == pytest.approx(
        project(wide, plain).compute_ms, rel=1e-5
    )


def test_a_convolution_s_shape_follows_its_channels_not_its_kernel_area():
    """A CPU kernel runs a convolution as one GEMM per filter tap: a 7×7 stem of 3 input
    channels is as far below the efficiency as a 3×3 one, where its 49 taps' parameters would
    have put it among the wide layers."""
    from accelbench.hardware_profiles.schema import ProjectionParameters

    shaped = _bare("rpi5").model_copy(
        update={
            "projection": ProjectionParameters(
                efficiency={"conv": {"fp32": 0.5}}, weights_half={"conv": {"fp32": 1000.0}}
            )
        }
    )
    stem_3x3 = _kernel("stem-3x3", "CONV_2D", 3 * 64 * 9, 9 * 10_000_000, area=9)
    stem_7x7 = _kernel("stem-7x7", "CONV_2D", 3 * 64 * 49, 49 * 10_000_000, area=49)
    per_tap = [project(t, shaped).compute_ms / t.flops for t in (stem_3x3, stem_7x7)]
    assert per_tap[1] == pytest.approx(per_tap[0])
    # 192 channel pairs against W½ = 1000: under a sixth of the efficiency, whatever the area.
    plain = _bare("rpi5").model_copy(
        update={"projection": ProjectionParameters(efficiency={"conv": {"fp32": 0.5}})}
    )
    slowdown = project(stem_7x7, shaped).compute_ms / project(stem_7x7, plain).compute_ms
    assert slowdown == pytest.approx((192 + 1000) / 192)


def test_weights_beyond_a_core_s_cache_arrive_cold_only_up_to_its_size():
    """With ``cache_mb``, an op's weights add at most a cache's worth at the weight stream's
    rate: a layer too large for the cache streams its weights on every pass, which its fitted
    efficiency already holds. Without it, every byte of the weights is streamed once."""
    from accelbench.hardware_profiles.schema import ProjectionParameters

    def with_stream(**extra: float) -> HardwareProfile:
        params = ProjectionParameters(
            efficiency={"matmul": {"fp32": 0.5}}, weight_stream_gbps=10.0, **extra
        )
        return _bare("rpi5").model_copy(update={"projection": params})

    entry = OpEntry("FULLY_CONNECTED", "fp32", 4_000_000, 8_000_000, 4000, 4000, 1000)
    large = OpTable("large-dense", [entry], 4000, 4000, "fp32")
    small_entry = OpEntry("FULLY_CONNECTED", "fp32", 500_000, 1_000_000, 4000, 4000, 1000)
    small = OpTable("small-dense", [small_entry], 4000, 4000, "fp32")
    uncached, cached = with_stream(), with_stream(cache_mb=2.0)
    # 8 MB at 10 GB/s is 0.8 ms; with a 2 MB cache only 2 MB of it, 0.2 ms.
    extra_ms = project(large, uncached).latency_ms - project(large, cached).latency_ms
    assert extra_ms == pytest.approx(0.6)
    assert project(small, cached).latency_ms == pytest.approx(project(small, uncached).latency_ms)


def test_an_op_s_bytes_beyond_a_core_s_cache_move_at_the_spill_rate():
    """An element-wise op whose activations fit in the cache moves them at the device bandwidth;
    the bytes of one that do not fit move at ``spill_bandwidth_gbps``. Without a spill rate the
    model is today's single bandwidth."""
    from accelbench.hardware_profiles.schema import ProjectionParameters

    def profile(**extra: float) -> HardwareProfile:
        params = ProjectionParameters(device_bandwidth_gbps=50.0, **extra)
        return _bare("rpi5").model_copy(update={"projection": params})

    def add(elements: int) -> OpTable:
        entry = OpEntry("ADD", "fp32", elements, 0, 8 * elements, 4 * elements, elements)
        return OpTable("add", [entry], 8 * elements, 4 * elements, "fp32")

    spilling = profile(cache_mb=2.0, spill_bandwidth_gbps=10.0)
    # 100,000 elements: 1.2 MB, in cache either way.
    assert project(add(100_000), spilling).memory_ms == pytest.approx(
        project(add(100_000), profile()).memory_ms
    )
    # A million: 12 MB, of which 2 MB at 50 GB/s (0.04 ms) and 10 MB at 10 GB/s (1 ms).
    assert project(add(1_000_000), spilling).memory_ms == pytest.approx(1.04)
    assert project(add(1_000_000), profile()).memory_ms == pytest.approx(0.24)


def test_profiles_fit_writes_a_profile_that_project_finds(monkeypatch):
    from accelbench.hardware_profiles import fit, fitted_profile_path

    one = [kernel for kernel in fit.KERNELS if kernel[0] == "conv1x1-28-64"]
    monkeypatch.setattr(fit, "KERNELS", tuple(one))  # one conv, fp32 and int8
    monkeypatch.setattr(fit, "ROUNDS", 3)
    path, rows = fit.fit_host_profile("my-host", threads=1)
    assert path == fitted_profile_path("my-host") and path.is_file()
    assert [model for model, _, _ in rows] == [
        "conv1x1-28-64-fp32.tflite",
        "conv1x1-28-64-int8.tflite",
    ]
    assert all(measured > 0 and projected > 0 for _, measured, projected in rows)
    mine = load_profile("my-host")
    assert mine.execution == "projected" and mine.projection is not None
    assert mine.projection.sources["per_op_overhead_us"].startswith("fitted to: 2 micro-kernels")
    shown = run_cli("project", str(DATA / "cnn_int8.tflite"), "--profile", "my-host")
    assert shown.returncode == 0, shown.stderr
    assert "unchecked (a profile of its own" in shown.stdout
    bad = run_cli("profiles", "fit", "Bad Name")
    assert bad.returncode == 2 and "profile name 'Bad Name' is not usable" in bad.stderr


def test_validate_without_a_build_uses_the_shipped_cost_tables(tmp_path):
    # A new user's first check, with nothing built: every row from the shipped per-op tables,
    # each within 2× of its published figure, and the output says where the tables came from.
    from accelbench.hardware_profiles.validation import load_rows

    proc = run_cli(
        "project", "--validate", "--no-build", env={"ACCELBENCH_CACHE_DIR": str(tmp_path)}
    )
    assert proc.returncode == 0, proc.stderr
    rows = load_rows()
    header, *lines = proc.stdout.splitlines()
    body = lines[: len(rows)]
    at = header.index("ratio")  # the table's columns are aligned: read the ratio column
    assert not any("not built" in line for line in body)
    ratios = [float(line[at:].split()[0]) for line in body]
    assert len(ratios) == len(rows) and all(0.5 <= r <= 2.0 for r in ratios), ratios
    assert f"{len(rows)} of {len(rows)} rows used the per-op cost tables shipped" in proc.stdout
    assert not (tmp_path / "projection").exists()  # nothing was built or cached
