"""Graph cost of .tflite files, what a device refuses, and the roofline projection."""

from __future__ import annotations

from pathlib import Path

import pytest

from accelbench.errors import UsageError
from accelbench.hardware_profiles import load_profile
from accelbench.hardware_profiles.calibrate import Calibration, int8_fully_connected_model
from accelbench.hardware_profiles.emulation import check_artifact_supported
from accelbench.hardware_profiles.roofline import project_latency
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


def test_high_intensity_is_compute_bound_and_low_intensity_memory_bound(tmp_path):
    t4 = load_profile("nvidia-t4")  # ridge: 130 TOP/s / 320 GB/s = 406 ops/byte
    big = tmp_path / "fc1024.tflite"
    big.write_bytes(int8_fully_connected_model(1024, 1024, 1024))
    matmul = analyze_tflite(big)
    assert matmul.flops == 2 * 1024**3
    compute = project_latency(matmul, t4, None)
    assert compute["bound"] == "compute"
    assert compute["arithmetic_intensity"] > compute["ridge_point"]
    assert compute["precision"] == "int8"
    assert compute["projected_latency_ms"] == pytest.approx(2 * 1024**3 / 130e12 * 1e3)
    assert compute["execution"] == "projected"
    assert "pure roofline" in compute["method"]

    mlp = analyze_tflite(DATA / "mlp_f32.tflite")  # about half a FLOP per byte
    memory = project_latency(mlp, t4, None)
    assert memory["bound"] == "memory"
    assert memory["precision"] == "fp32"
    assert memory["projected_latency_ms"] == pytest.approx(
        (mlp.weight_bytes + mlp.activation_bytes) / 320e9 * 1e3
    )


def test_host_efficiency_carries_over_and_is_clamped():
    cost = analyze_tflite(DATA / "mlp_f32.tflite")
    t4 = load_profile("nvidia-t4")
    host = _calibration(fp32_gflops=100.0, int8_gops=400.0, bandwidth_gbps=10.0)
    bare = project_latency(cost, t4, None)["projected_latency_ms"]
    host_roofline_ms = max(cost.flops / 100e9, (cost.weight_bytes + cost.activation_bytes) / 10e9)
    host_roofline_ms *= 1e3

    half = project_latency(cost, t4, host, host_measured_ms=2 * host_roofline_ms)
    assert half["efficiency"] == pytest.approx(0.5)
    assert half["projected_latency_ms"] == pytest.approx(2 * bare)
    assert "efficiency 0.5" in half["method"]
    assert half["metrics"]["projected_latency_ms"]["unit"] == "ms"

    faster_than_roofline = project_latency(cost, t4, host, host_measured_ms=host_roofline_ms / 4)
    assert faster_than_roofline["efficiency_clamped"]
    assert faster_than_roofline["efficiency"] == 1.0
    assert faster_than_roofline["projected_latency_ms"] == pytest.approx(bare)


def test_projection_onto_a_device_without_a_usable_peak_is_a_usage_error():
    with pytest.raises(UsageError, match=r"coral-edgetpu has no peak_compute figure for a fp32"):
        project_latency(
            analyze_tflite(DATA / "cnn_f32.tflite"), load_profile("coral-edgetpu"), None
        )
