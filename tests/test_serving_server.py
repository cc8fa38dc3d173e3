"""The TF Serving-compatible model server: REST forms, HTTP accuracy, errors, batching, cache."""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

import numpy as np
import pytest

from accelbench.cli import main
from accelbench.runtimes import open_runtime
from accelbench.serving import LISTENING_PREFIX
from accelbench.serving.batching import BatchingConfig
from accelbench.serving.server import build_app, running

DATA = Path(__file__).parent / "data"
REPO = Path(__file__).resolve().parents[1]


def call(url: str, payload: object = None, *, body: bytes | None = None) -> tuple[int, dict]:
    """GET url, or POST payload as JSON (or raw body); returns (status, parsed JSON body)."""
    data = body if body is not None else None if payload is None else json.dumps(payload).encode()
    request = urllib.request.Request(url, data=data, method="GET" if data is None else "POST")
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read())


def in_process(model: Path, arrays: list[np.ndarray]) -> list[np.ndarray]:
    runtime = open_runtime(model)
    try:
        return [np.array(out) for out in runtime.run(arrays)]
    finally:
        runtime.close()


def rows(n: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).uniform(-1, 1, (n, 64)).astype(np.float32)


def test_standard_tf_serving_request_with_curl():
    model = DATA / "dynamic_batch_f32.tflite"
    x = rows(3)
    with running(build_app(model, name="mlp")) as url:
        body = json.dumps({"instances": x.tolist()})
        # As TF Serving's REST documentation writes it: curl -d '...' -X POST .../model:predict
        done = subprocess.run(
            ["curl", "-s", "-d", body, "-X", "POST", f"{url}/v1/models/mlp:predict"],
            capture_output=True,
            text=True,
            timeout=30,
        )
    predictions = np.asarray(json.loads(done.stdout)["predictions"], np.float32)
    assert predictions.shape == (3, 10)
    np.testing.assert_array_equal(predictions, in_process(model, [x])[0])


def test_row_and_columnar_formats_with_several_inputs_and_outputs():
    model = DATA / "multi_io_f32.tflite"
    rng = np.random.default_rng(1)
    image = rng.uniform(-1, 1, (2, 8, 8, 1)).astype(np.float32)
    vector = rng.uniform(-1, 1, (2, 4)).astype(np.float32)
    want = [in_process(model, [image[i : i + 1], vector[i : i + 1]]) for i in range(2)]
    with running(build_app(model, name="multi")) as url:
        predict = f"{url}/v1/models/multi:predict"
        instances = [{"image": image[i].tolist(), "vector": vector[i].tolist()} for i in range(2)]
        status, row = call(predict, {"instances": instances})
        assert status == 200
        # Several outputs, row format: one object per instance, keyed by output name.
        assert [set(p) for p in row["predictions"]] == [{"output_0", "output_1"}] * 2
        for i, prediction in enumerate(row["predictions"]):
            np.testing.assert_array_equal(np.float32(prediction["output_0"]), want[i][0][0])
            np.testing.assert_array_equal(np.float32(prediction["output_1"]), want[i][1][0])

        status, col = call(
            predict, {"inputs": {"image": image.tolist(), "vector": vector.tolist()}}
        )
        assert status == 200
        # Columnar format: an object of whole tensors.
        assert np.asarray(col["outputs"]["output_0"]).shape == (2, 3)
        np.testing.assert_array_equal(
            np.float32(col["outputs"]["output_1"]), np.concatenate([w[1] for w in want])
        )
        status, err = call(predict, {"instances": [image[0].tolist()]})
        assert status == 400 and "'image'" in err["error"] and "'vector'" in err["error"]


def test_single_output_is_a_plain_list_in_both_formats_and_status_and_metadata():
    model = DATA / "dynamic_batch_f32.tflite"
    x = rows(2, seed=2)
    with running(build_app(model, name="mlp")) as url:
        status, row = call(f"{url}/v1/models/mlp/versions/1:predict", {"instances": x.tolist()})
        status2, col = call(f"{url}/v1/models/mlp:predict", {"inputs": x.tolist()})
        assert status == status2 == 200
        assert isinstance(row["predictions"], list) and isinstance(col["outputs"], list)
        assert row["predictions"] == col["outputs"]

        for path in ("/v1/models/mlp", "/v1/models/mlp/versions/1"):
            status, model_status = call(url + path)
            assert status == 200
            (version,) = model_status["model_version_status"]
            assert version["version"] == "1" and version["state"] == "AVAILABLE"
            assert version["status"]["error_code"] == "OK"
        status, meta = call(f"{url}/v1/models/mlp/metadata")
        assert status == 200 and meta["model_spec"]["name"] == "mlp"
        signature = meta["metadata"]["signature_def"]["signature_def"]["serving_default"]
        features = signature["inputs"]["features"]
        assert features["dtype"] == "DT_FLOAT"
        assert [d["size"] for d in features["tensor_shape"]["dim"]] == ["-1", "64"]
        assert [d["size"] for d in signature["outputs"]["output_0"]["tensor_shape"]["dim"]] == [
            "-1",
            "10",
        ]
        assert call(f"{url}/v1/models/mlp/versions/2/metadata")[0] == 404


def test_int8_model_over_http_equals_in_process_and_takes_only_ints():
    model = DATA / "cnn_int8.tflite"  # int8 input tensor, fixed batch 1
    rng = np.random.default_rng(3)
    x = rng.integers(-128, 128, (3, 16, 16, 3), dtype=np.int8)
    with running(build_app(model, name="cnn")) as url:
        status, body = call(f"{url}/v1/models/cnn:predict", {"instances": x.tolist()})
        _, stats = call(f"{url}/v1/accelbench/stats")
        status_float, err = call(f"{url}/v1/models/cnn:predict", {"instances": (x / 2).tolist()})
    assert status == 200
    got = np.asarray(body["predictions"])
    want = np.concatenate([in_process(model, [x[i : i + 1]])[0] for i in range(3)])
    assert want.dtype == np.int8
    np.testing.assert_array_equal(got, want)
    # A fixed-batch model runs a request of 3 instances as 3 consecutive invocations.
    assert stats["served"]["invocations"] == 3
    assert "consecutive invocations" in stats["settings"]["batch_execution"]
    assert status_float == 400 and "int8" in err["error"] and "floats" in err["error"]


def test_bad_requests_get_tf_serving_errors_and_the_server_keeps_serving():
    model = DATA / "dynamic_batch_f32.tflite"
    x = rows(2, seed=4)
    batching = BatchingConfig(max_batch_size=4, batch_timeout_micros=0, num_batch_threads=1)
    app = build_app(model, name="mlp", batching=batching, max_body_bytes=20_000)
    with running(app) as url:
        predict, predict_v = f"{url}/v1/models/mlp:predict", f"{url}/v1/models/mlp/versions/"
        ok = {"instances": x.tolist()}
        cases = [
            (400, "not valid JSON", {"body": b'{"instances": [[1, 2'}),
            (400, "JSON object", {"body": b"[1, 2]"}),
            (400, "exactly one of", {"payload": {"signature_name": "serving_default"}}),
            (400, "exactly one of", {"payload": {"instances": x.tolist(), "inputs": x.tolist()}}),
            (400, "got shape [2, 63]", {"payload": {"instances": x[:, :63].tolist()}}),
            (400, "got strings", {"payload": {"instances": [["a"] * 64]}}),
            (400, "rectangular", {"payload": {"instances": [[0.0] * 64, [0.0] * 3]}}),
            (400, "max_batch_size=4", {"payload": {"instances": rows(5).tolist()}}),
            (400, "signature", {"payload": {"instances": x.tolist(), "signature_name": "x"}}),
            (404, "Latest(other)", {"url": f"{url}/v1/models/other:predict", "payload": ok}),
            (404, "Specific(mlp, 7)", {"url": f"{predict_v}7:predict", "payload": ok}),
            (404, "Not Found", {"url": f"{url}/v2/nothing", "payload": ok}),
            (413, "limit of 20000 bytes", {"payload": {"instances": rows(40).tolist()}}),
        ]
        for status, message, kwargs in cases:
            got_status, got = call(
                kwargs.get("url", predict), kwargs.get("payload"), body=kwargs.get("body")
            )
            assert (got_status, set(got)) == (status, {"error"}), (message, got)
            assert message in got["error"]

        # A body announced as 1 GB is refused from its headers, before any of it is read.
        host, port = url.removeprefix("http://").split(":")
        with socket.create_connection((host, int(port))) as sock:
            sock.settimeout(10)
            sock.sendall(
                b"POST /v1/models/mlp:predict HTTP/1.1\r\nHost: x\r\n"
                b"Content-Type: application/json\r\nContent-Length: 1000000000\r\n\r\n{"
            )
            answer = b""
            while chunk := sock.recv(4096):  # the server closes the connection after it
                answer += chunk
        assert answer.startswith(b"HTTP/1.1 413") and b'{"error":' in answer

        status, body = call(predict, {"instances": x.tolist()})
        assert status == 200
        np.testing.assert_array_equal(np.float32(body["predictions"]), in_process(model, [x])[0])
        _, stats = call(f"{url}/v1/accelbench/stats")
    # Every refusal above is counted, the raw 413 included, but for /v2 (no model route).
    assert stats["ok"] == 1 and stats["client_errors"] == len(cases)


@pytest.mark.slow
def test_full_batch_queue_answers_429_at_once(tmp_path):
    jax = pytest.importorskip("jax")
    from accelbench.runtimes.jax_runtime import save_jax_export

    weights = (np.random.default_rng(0).standard_normal((256, 256)) / 16).astype(np.float32)

    def slow(x):  # ~0.2 s an inference on this machine: time to fill the queue behind it
        h = jax.numpy.tile(x, (1, 32))
        return jax.lax.fori_loop(0, 30000, lambda i, h: jax.numpy.tanh(h @ weights), h)

    model = save_jax_export(
        slow, [np.zeros((1, 8), np.float32)], tmp_path / "slow.jaxexport", dynamic_batch=True
    )
    batching = BatchingConfig(
        max_batch_size=1, batch_timeout_micros=0, max_enqueued_batches=1, num_batch_threads=1
    )
    x = {"instances": [[0.5] * 8]}

    async def scenario(url: str) -> tuple:
        import aiohttp

        predict = f"{url}/v1/models/slow:predict"
        async with aiohttp.ClientSession() as session:

            async def post():
                async with session.post(predict, json=x) as response:
                    return response.status, await response.json()

            async def queue_state(key: str, value: int) -> None:
                for _ in range(500):
                    async with session.get(f"{url}/v1/accelbench/stats") as response:
                        if (await response.json())["queue"][key] == value:
                            return
                    await asyncio.sleep(0.005)
                raise AssertionError(f"the queue never reached {key}={value}")

            first = asyncio.create_task(post())
            await queue_state("running_batches", 1)
            second = asyncio.create_task(post())
            await queue_state("queued_batches", 1)
            refused = await post()
            # Refused at once: the queued request behind the running one is still waiting.
            refused_while_queued = not second.done()
            answers = [await first, await second]
            after = await post()
            async with session.get(f"{url}/v1/accelbench/stats") as response:
                stats = await response.json()
        return answers, refused, refused_while_queued, after, stats

    with running(build_app(model, name="slow", runtime="jax", batching=batching)) as url:
        answers, refused, refused_while_queued, after, stats = asyncio.run(scenario(url))
    assert refused[0] == 429 and "max_enqueued_batches=1" in refused[1]["error"]
    assert refused_while_queued
    assert [a[0] for a in answers] == [200, 200] and after[0] == 200
    assert answers[0][1] == answers[1][1] == after[1]
    assert stats["rejected"] == 1 and stats["ok"] == 3


def test_dynamic_batching_forms_batches_under_concurrent_requests():
    import aiohttp

    model = DATA / "dynamic_batch_f32.tflite"
    x = rows(8, seed=5)
    batching = BatchingConfig(
        max_batch_size=8, batch_timeout_micros=300_000, max_enqueued_batches=4, num_batch_threads=1
    )

    async def burst(url: str) -> list:
        async with aiohttp.ClientSession() as session:

            async def post(i: int):
                payload = {"instances": x[i : i + 1].tolist()}
                async with session.post(f"{url}/v1/models/mlp:predict", json=payload) as response:
                    return response.status, await response.json()

            return await asyncio.gather(*(post(i) for i in range(8)))

    with running(build_app(model, name="mlp", batching=batching)) as url:
        answers = asyncio.run(burst(url))
        _, stats = call(f"{url}/v1/accelbench/stats")
    assert [status for status, _ in answers] == [200] * 8
    got = np.concatenate([np.float32(body["predictions"]) for _, body in answers])
    np.testing.assert_allclose(got, in_process(model, [x])[0], rtol=1e-6, atol=1e-7)
    assert stats["served"]["instances"] == 8 and stats["served"]["invocations"] < 8
    assert stats["mean_batch_size"] > 1 and stats["served"]["largest_batch"] <= 8
    assert stats["settings"]["batching"] == batching.to_dict()


def test_response_cache_hits_return_the_same_answer():
    model = DATA / "dynamic_batch_f32.tflite"
    # Whole numbers (no -0.0): the same request can be sent as ints or as floats.
    x = np.round(rows(1, seed=6) * 3) + 0.0
    with running(build_app(model, name="mlp", cache_size=2)) as url:
        predict = f"{url}/v1/models/mlp:predict"
        first = call(predict, {"instances": x.tolist()})
        second = call(predict, {"instances": x.astype(int).tolist()})
        columnar = call(predict, {"inputs": x.tolist()})  # another response form: another entry
        _, stats = call(f"{url}/v1/accelbench/stats")
    assert first == second and first[0] == 200
    assert columnar[1]["outputs"] == first[1]["predictions"]
    assert (stats["cache_hits"], stats["cache_misses"]) == (1, 2)
    assert stats["batches"] == 2 and stats["settings"]["cache_size"] == 2


def test_overload_gets_503_at_once_and_the_server_keeps_serving():
    import aiohttp

    model = DATA / "dynamic_batch_f32.tflite"
    body = json.dumps({"instances": rows(1).tolist()}).encode()
    head = (
        "POST /v1/models/mlp:predict HTTP/1.1\r\nHost: test\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    ).encode()

    async def burst(url: str, n: int) -> list[int]:
        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as session:

            async def post() -> int:
                async with session.post(f"{url}/v1/models/mlp:predict", data=body) as response:
                    await response.read()
                    return response.status

            return await asyncio.wait_for(asyncio.gather(*(post() for _ in range(n))), 10)

    app = build_app(model, name="mlp", max_concurrent_requests=2)
    with running(app) as url:
        host, port = urllib.parse.urlsplit(url).hostname, urllib.parse.urlsplit(url).port
        with socket.create_connection((host, port), timeout=30) as held:
            # A request whose body is still arriving holds a connection and a task: with it
            # open, the server is at its limit and every other request is refused at once.
            held.sendall(head + body[:10])
            for _ in range(1000):  # until the server has taken the held request in
                if app.state.model_server.counts["requests"] == 1:
                    break
                time.sleep(0.01)
            statuses = asyncio.run(burst(url, 8))
            assert statuses == [503] * 8
            held.setblocking(False)
            with pytest.raises(BlockingIOError):
                held.recv(1)  # the held request is still waiting for its body: no answer yet
            held.setblocking(True)
            held.sendall(body[10:])
            answer = held.recv(65536).decode()
        assert answer.startswith("HTTP/1.1 200"), answer
        status, prediction = call(f"{url}/v1/models/mlp:predict", {"instances": rows(1).tolist()})
        _, stats = call(f"{url}/v1/accelbench/stats")
    assert status == 200 and len(prediction["predictions"][0]) == 10
    assert stats["settings"]["max_concurrent_requests"] == 2
    # The stats are for anyone who can reach the server: the model's file name, not its path.
    assert stats["settings"]["model_file"] == model.name
    assert str(DATA) not in json.dumps(stats)


def test_module_entry_point_prints_its_url_serves_and_exits_0_on_sigterm():
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "accelbench.cli.serve_subprocess",
            str(DATA / "mlp_f32.tflite"),
            "--port",
            "0",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )
    try:
        line = process.stdout.readline()
        match = re.fullmatch(re.escape(LISTENING_PREFIX) + r"(http://127\.0\.0\.1:(\d+))\n", line)
        assert match and int(match[2]) > 0, line
        url = match[1]
        status, body = call(f"{url}/v1/models/mlp_f32:predict", {"instances": rows(1).tolist()})
        assert status == 200 and len(body["predictions"][0]) == 10
        process.send_signal(signal.SIGTERM)
        out, err = process.communicate(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert process.returncode == 0, err
    assert out == "" and "Traceback" not in err  # exactly the one line, read above


def test_serve_with_a_bad_model_or_flag_exits_2_with_one_line(capsys, tmp_path):
    not_a_model = tmp_path / "notes.txt"
    not_a_model.write_text("hello")
    for argv in (
        ["serve", str(tmp_path / "missing.tflite")],
        ["serve", str(not_a_model), "--port", "0"],
        ["serve", str(DATA / "mlp_f32.tflite"), "--batch-timeout-us", "100"],
        ["serve", str(DATA / "mlp_f32.tflite"), "--port", "70000"],
        ["serve", str(DATA / "mlp_f32.tflite"), "--max-concurrent-requests", "0"],
    ):
        assert main(argv) == 2
        err = capsys.readouterr().err
        assert err.startswith("accelbench: error: ") and err.count("\n") == 1, err
