"""Untrusted models: the static look names file, network and process ops (and Lambda layers),
the commands refuse such models, and with --trust-model they run contained by the sandbox.

Every model here is made in the test and aims at a fake home folder outside the run: a file to
write there and a secret to read from it.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import yaml
from conftest import REPO, run_cli, unavailable

from accelbench.cli import main
from accelbench.runner import sandbox

DATA = Path(__file__).parent / "data"
SECRET = "the user's secret"


def _needs_bubblewrap() -> None:
    reason = sandbox.unavailable_reason()
    if reason:
        unavailable(f"no sandbox here: {reason}")


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> SimpleNamespace:
    """SavedModels that write a file, read one with ReadFile and with WholeFileReaderV2, .tflite
    files with Flex WriteFile/ReadFile, a Keras .h5 whose Lambda writes a file, and a TF1
    SavedModel with its own saver (which must not be flagged)."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    from accelbench.keras_compat import legacy_keras

    keras2 = legacy_keras()
    import tensorflow as tf

    # An earlier test in this process may have turned on op determinism (the reference models'
    # training does), under which the Keras layers below need a seed to initialise.
    tf.random.set_seed(0)
    tmp = tmp_path_factory.mktemp("untrusted")
    home = tmp / "home"
    home.mkdir()
    secret = home / "secret.txt"
    secret.write_text(SECRET)
    m = SimpleNamespace(home=home, secret=secret, pwned=home / "pwned.txt", tmp=tmp)
    spec = tf.TensorSpec([1, 4], tf.float32)

    class Writes(tf.Module):
        @tf.function(input_signature=[spec])
        def serve(self, x):
            tf.io.write_file(str(m.pwned), tf.strings.as_string(tf.reduce_sum(x)))
            return {"y": x * 2.0}

    class Reads(tf.Module):
        @tf.function(input_signature=[spec])
        def serve(self, x):
            n = tf.strings.length(tf.io.read_file(str(secret)))
            return {"y": x + tf.cast(n, tf.float32)}

    class ReaderReads(tf.Module):
        @tf.function(input_signature=[spec])
        def serve(self, x):
            queue = tf.raw_ops.FIFOQueueV2(component_types=[tf.string], capacity=1)
            tf.raw_ops.QueueEnqueueV2(handle=queue, components=[tf.constant(str(secret))])
            reader = tf.raw_ops.WholeFileReaderV2()
            _, value = tf.raw_ops.ReaderReadV2(reader_handle=reader, queue_handle=queue)
            return {"y": x + tf.cast(tf.strings.length(value), tf.float32)}

    for name, module_class in (("writes", Writes), ("reads", Reads), ("reader", ReaderReads)):
        module = module_class()
        module.weight = tf.Variable(1.0)  # a variable: the SavedModel gets its saver functions
        path = tmp / f"{name}_savedmodel"
        tf.saved_model.save(module, str(path), signatures={"serving_default": module.serve})
        setattr(m, name, path)
        if name != "reader":
            converter = tf.lite.TFLiteConverter.from_concrete_functions(
                [module.serve.get_concrete_function()], module
            )
            converter.target_spec.supported_ops = [
                tf.lite.OpsSet.TFLITE_BUILTINS,
                tf.lite.OpsSet.SELECT_TF_OPS,
            ]
            setattr(m, f"flex_{name}", tmp / f"flex_{name}.tflite")
            getattr(m, f"flex_{name}").write_bytes(converter.convert())
    # A Lambda whose bytecode writes into the home folder when the model is built or called.
    marker = home / "lambda_ran.txt"
    inputs = keras2.Input((4,))
    lam = keras2.layers.Lambda(lambda x, p=str(marker): (open(p, "w").close(), x)[1], name="lam")
    model = keras2.Model(inputs, keras2.layers.Dense(2)(lam(inputs)))
    m.lambda_h5, m.marker = tmp / "lambda.h5", marker
    model.save(m.lambda_h5)
    m.tf1 = _tf1_saved_model(tf, tmp / "tf1_savedmodel")
    for made in (m.pwned, marker):
        made.unlink(missing_ok=True)  # saving traced the functions: only a run may write now
    return m


def _tf1_saved_model(tf, path: Path) -> Path:
    """A TF1 SavedModel: its saver (SaveV2, RestoreV2, MergeV2Checkpoints) is top-level nodes."""
    v1 = tf.compat.v1
    with tf.Graph().as_default():
        x = v1.placeholder(tf.float32, [None, 4], name="x")
        # A constant initializer: a random one needs a seed of this graph's own when an earlier
        # test has turned on op determinism.
        w = v1.get_variable("w", [4, 2], initializer=v1.ones_initializer())
        y = tf.matmul(x, w, name="y")
        with v1.Session() as session:
            session.run(v1.global_variables_initializer())
            builder = v1.saved_model.Builder(str(path))
            signature = v1.saved_model.predict_signature_def({"x": x}, {"y": y})
            builder.add_meta_graph_and_variables(
                session, ["serve"], signature_def_map={"serving_default": signature}
            )
            builder.save()
    return path


def _one_error_line(err: str, *needles: str) -> None:
    assert err.startswith("accelbench: error: ") and err.count("\n") == 1, err
    for needle in needles:
        assert needle in err, (needle, err)


def test_inspect_lists_each_op_and_layer_with_its_function(models, capsys):
    cases = [
        (models.writes, [("file-write", "WriteFile")]),
        (models.reads, [("file-read", "ReadFile")]),
        (models.reader, [("file-read", "WholeFileReaderV2"), ("file-read", "ReaderReadV2")]),
        (models.flex_writes, [("file-write", "FlexWriteFile")]),
        (models.flex_reads, [("file-read", "FlexReadFile")]),
        (models.lambda_h5, [("code-layer", "lam")]),
    ]
    for model, expected in cases:
        assert main(["inspect", str(model)]) == 1, model
        lines = capsys.readouterr().out.splitlines()
        assert lines[0] == f"{model}: {len(expected)} finding(s)"
        found = [tuple(line.split()[:3]) for line in lines[1:]]
        assert [f[:2] for f in found] == expected, lines
        # Where: the serving function that calls the op (not the signature wrapper or the
        # saver), the .tflite's subgraph, the Keras config.
        where = {f[2] for f in found}
        assert where <= {"subgraph", "model_config"} or all(
            w.startswith("__inference_serve_") for w in where
        ), lines
    # The SavedModels' own checkpoint functions (SaveV2, RestoreV2, MergeV2Checkpoints) and a
    # TF1 SavedModel's saver nodes are no finding; neither is an ordinary model of any kind.
    for model in (models.tf1, DATA / "mlp_savedmodel", DATA / "mlp_f32.tflite", DATA / "mlp.keras"):
        assert main(["inspect", str(model)]) == 0, model
        assert "nothing found" in capsys.readouterr().out
    for bad in (models.tmp / "missing", models.secret, models.home):
        assert main(["inspect", str(bad)]) == 2
        _one_error_line(capsys.readouterr().err, str(bad))


def test_every_command_refuses_a_flagged_model_by_name(models, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)  # a default results/ folder would appear here
    out = tmp_path / "out"
    data = tmp_path / "data.npz"
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(20, 4)).astype(np.float32), rng.integers(0, 2, 20)
    np.savez(data, x_train=x, y_train=y, x_test=x, y_test=y)
    suite = tmp_path / "suite.yaml"
    suite.write_text(yaml.safe_dump({"models": [{"path": str(models.writes)}]}))
    writes = str(models.writes)
    for argv in (
        ["bench", writes, "--out", str(out)],
        ["run", str(suite), "--out", str(out)],
        ["optimize", writes, "--data", str(data), "--out", str(out)],
        ["train", writes, "--data", str(data), "--target", "0.5", "--out", str(out)],
        ["ab", writes, str(DATA / "mlp_savedmodel"), "--out", str(out)],
        ["serve", writes, "--port", "0"],
    ):
        assert main(argv) == 2, argv
        _one_error_line(capsys.readouterr().err, "WriteFile", "writes files", writes)
    for model, op in ((models.reader, "WholeFileReaderV2"), (models.flex_reads, "FlexReadFile")):
        assert main(["bench", str(model), "--out", str(out)]) == 2
        _one_error_line(capsys.readouterr().err, op, str(model), "--trust-model")
    assert main(["bench", str(models.lambda_h5), "--out", str(out)]) == 2
    _one_error_line(capsys.readouterr().err, "Lambda layer 'lam'", "--trust-model")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["data.npz", "suite.yaml"]
    assert not models.pwned.exists() and not models.marker.exists()


def test_trusted_models_run_in_the_sandbox_and_reach_nothing_outside(models, tmp_path):
    _needs_bubblewrap()
    out = tmp_path / "run"
    suite = tmp_path / "suite.yaml"
    entries = [
        {"path": str(models.writes), "name": "writes"},
        {"path": str(models.reads), "name": "reads"},
        {"path": str(models.reader), "name": "reader"},
        {"path": str(models.lambda_h5), "name": "lambda_h5"},
    ]
    suite.write_text(yaml.safe_dump({"models": entries, "threads": [1], "timeout_s": 300}))
    # The user's home is the fake one: the sandbox must hide it, whatever HOME says.
    env = {"HOME": str(models.home), "TF_CPP_MIN_LOG_LEVEL": "2"}
    done = run_cli("run", str(suite), "--trust-model", "--out", str(out), "--no-progress", env=env)
    assert done.returncode in (0, 1), done.stderr
    records = {r["model"]: r for r in map(json.loads, (out / "records.jsonl").open())}
    assert set(records) == {"writes", "reads", "reader", "lambda_h5"}
    assert {r["sandbox"] for r in records.values()} == {"bubblewrap"}
    # Nothing written outside the run: the write went nowhere (or into the sandbox's own /tmp).
    # (The dot folders are the unsandboxed command's own caches.)
    assert [p.name for p in models.home.iterdir() if not p.name.startswith(".")] == ["secret.txt"]
    # The secret was not there to read: both readers failed on a missing file.
    for name in ("reads", "reader"):
        record = records[name]
        log = Path(record["log"]).read_text(encoding="utf-8", errors="replace")
        assert record["status"] == "failed", record
        assert "NotFound" in record["error"] + log and SECRET not in log
    assert records["lambda_h5"]["status"] == "failed"  # its open() was refused


def test_the_sandbox_hides_home_refuses_writes_and_has_no_network(tmp_path, monkeypatch):
    _needs_bubblewrap()
    home = Path.home()
    outside = tmp_path / "outside.txt"
    outside.write_text(SECRET)
    work = tmp_path / "cell"
    work.mkdir()
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    probe = f"""
import json, os, socket
seen = {{}}
for name, path in (("home", {str(home)!r}), ("outside", {str(outside)!r})):
    try:
        seen[name] = open(path).read() if os.path.isfile(path) else os.listdir(path)
    except OSError as err:
        seen[name] = type(err).__name__
for name, path in (("write_home", {str(home / "sandbox-probe.txt")!r}),
                   ("write_tmp", {str(tmp_path / "new.txt")!r})):
    try:
        open(path, "w").write("x")
        seen[name] = "written"
    except OSError as err:
        seen[name] = type(err).__name__
open({str(work / "result.txt")!r}, "w").write("ok")
try:
    socket.create_connection(("127.0.0.1", {port}), timeout=5)
    seen["connect"] = "connected"
except OSError as err:
    seen["connect"] = type(err).__name__
seen["tokens"] = sorted(k for k in os.environ if "TOKEN" in k)
print(json.dumps(seen))
"""
    monkeypatch.setenv("GITHUB_TOKEN", "not for the model")  # the caller's environment
    command, env = sandbox.choose(True).command([sys.executable, "-c", probe], write=[work])
    try:
        done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=120)
    finally:
        listener.close()
    assert done.returncode == 0, done.stderr
    seen = json.loads(done.stdout)
    # The home folder holds only what the sandbox binds under it (a Python installed there).
    assert seen["home"] == "FileNotFoundError" or SECRET not in json.dumps(seen["home"])
    assert seen["outside"] == "FileNotFoundError"
    assert seen["write_home"] in ("FileNotFoundError", "OSError", "PermissionError")
    # Under /tmp the write lands in the sandbox's own /tmp, which vanishes with it.
    assert not (tmp_path / "new.txt").exists() and not (home / "sandbox-probe.txt").exists()
    assert (work / "result.txt").read_text() == "ok"  # its own folder is writable
    assert seen["connect"] == "ConnectionRefusedError"  # its own network: nothing listens there
    assert seen["tokens"] == []


def test_records_say_how_each_cell_was_sandboxed(tmp_path):
    model = str(DATA / "mlp_f32.tflite")
    common = ["--threads", "1", "--no-progress"]
    runs = {
        "default": ([], {}),
        "off": (["--no-sandbox"], {}),
        # bubblewrap missing: the run says so once on stderr, each record says none and why.
        "none": ([], {sandbox.BWRAP_ENV: str(tmp_path / "no-bwrap")}),
    }
    # The runs share nothing, so they run side by side; nothing here reads their timings.
    with ThreadPoolExecutor(len(runs)) as pool:
        started = {
            name: pool.submit(
                run_cli,
                *["bench", model, "--scenario", "single-stream,offline", *common, *flags],
                *["--out", str(tmp_path / name)],
                env=env,
            )
            for name, (flags, env) in runs.items()
        }
    for name, run in started.items():
        done = run.result()
        assert done.returncode == 0, done.stderr
        records = [json.loads(line) for line in (tmp_path / name / "records.jsonl").open()]
        assert len(records) == 2 and all(r["status"] == "ok" for r in records)
        modes = {(r["sandbox"], r["sandbox_reason"] is None) for r in records}
        if name == "default":
            _needs_bubblewrap()
            assert modes == {("bubblewrap", True)}
        elif name == "off":
            assert modes == {("off", False)}
            assert records[0]["sandbox_reason"] == "--no-sandbox"
        else:
            assert modes == {("none", False)}
            assert "bubblewrap (bwrap) is not installed" in records[0]["sandbox_reason"]
            warnings = [line for line in done.stderr.splitlines() if "without a sandbox" in line]
            assert len(warnings) == 1, done.stderr
    _needs_bubblewrap()
    # Alone: an A/A verdict (exit 0) wants the machine to itself.
    done = run_cli(
        *["ab", model, model, "--pairs", "50", "--rounds", "2", *common[:2]],
        *["--format", "json", "--out", str(tmp_path / "ab")],
    )
    assert done.returncode == 0, done.stderr
    (record,) = [json.loads(line) for line in (tmp_path / "ab" / "records.jsonl").open()]
    assert record["sandbox"] == "bubblewrap" and record["status"] == "ok"


@contextlib.contextmanager
def _server(args: list[str], cwd: Path) -> Iterator[subprocess.Popen]:
    """`python -m accelbench.cli.serve_subprocess ARGS`, killed on the way out if the test left
    it running."""
    process = subprocess.Popen(
        [sys.executable, "-m", "accelbench.cli.serve_subprocess", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=cwd,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )
    try:
        yield process
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


def _get(url: str, key: str | None = None) -> int:
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    try:
        with urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=30) as r:
            return r.status
    except urllib.error.HTTPError as err:
        return err.code


def test_serve_off_loopback_warns_and_requires_the_api_key(tmp_path):
    _needs_bubblewrap()
    from accelbench.serving import LISTENING_PREFIX

    key_file = tmp_path / "key"
    key_file.write_text("s3cret-key\n")
    args = [str(DATA / "mlp_f32.tflite"), "--host", "0.0.0.0", "--port", "0"]
    with _server([*args, "--api-key-file", str(key_file)], tmp_path) as process:
        line = process.stdout.readline()
        assert line.startswith(LISTENING_PREFIX), line
        url = line.removeprefix(LISTENING_PREFIX).strip().replace("0.0.0.0", "127.0.0.1")
        for path in ("/v1/models/mlp_f32", "/v1/models/mlp_f32/metadata", "/v1/accelbench/stats"):
            assert _get(url + path) == 401
            assert _get(url + path, "wrong-key") == 401
            assert _get(url + path, "s3cret-key") == 200
        from accelbench.runtimes.remote import RemoteRuntime, probe_endpoint

        with pytest.raises(Exception, match="API key"):
            probe_endpoint(url, "mlp_f32")
        endpoint = probe_endpoint(url, "mlp_f32", api_key="s3cret-key")
        assert endpoint.server_stats["settings"]["sandbox"] == "bubblewrap"
        runtime = RemoteRuntime(endpoint)
        try:
            x = np.zeros((1, 64), np.float32)
            assert runtime.run([x])[0].shape == (1, 10)
        finally:
            runtime.close()
        # accelbench load sends the key with every request; without it, one line and exit 2.
        load = ["load", url, "--model", "mlp_f32", "--scenario", "single-stream"]
        refused = run_cli(*load, "--out", str(tmp_path / "no-key"), timeout=120)
        assert refused.returncode == 2 and not (tmp_path / "no-key").exists()
        _one_error_line(refused.stderr, "HTTP 401", "--api-key")
        loaded = run_cli(*load, "--api-key", "s3cret-key", "--out", str(tmp_path / "load"))
        assert loaded.returncode == 0, loaded.stderr
        (record,) = [json.loads(line) for line in (tmp_path / "load" / "records.jsonl").open()]
        assert record["status"] == "ok" and "s3cret-key" not in json.dumps(record)
        process.send_signal(signal.SIGTERM)
        _, err = process.communicate(timeout=60)
    assert process.returncode == 0, err
    assert "reachable from other machines; requests need the API key" in err
    # Without a key the warning says the API is open, as TF Serving's is.
    with _server([*args, "--no-sandbox"], tmp_path) as process:
        assert process.stdout.readline().startswith(LISTENING_PREFIX)
        process.send_signal(signal.SIGTERM)
        _, err = process.communicate(timeout=60)
    assert "the API has no authentication" in err and "--api-key" in err
    assert main(["serve", str(DATA / "mlp_f32.tflite"), "--api-key", "has space"]) == 2
