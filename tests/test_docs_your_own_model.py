"""docs/your-own-model.md, run as a user would run it, so that the page cannot drift from the code.

How the page marks what runs: an HTML comment, a line of its own right before a fenced block (the
rendered page does not show it), naming the walk-through the block belongs to:

    <!-- test: NAME; file: FILE -->   the block is saved as FILE in NAME's folder
    <!-- test: NAME -->               the block's commands run there, one by one; each must exit 0
    <!-- test: NAME; exit: 0,1 -->    ... or with one of the statuses listed

Each walk-through runs in an empty folder of its own under the test's temporary folder, its
blocks in page order. A command may go on over lines that end in a backslash; it is split with
shlex and run without a shell, `python` as this interpreter and `accelbench` as found on PATH.
The walk-throughs run side by side, as they share nothing: each has an accelbench cache folder of
its own (ACCELBENCH_CACHE_DIR, the host calibration copied in from the test's), and so a Keras
config folder (KERAS_HOME). Unmarked blocks (the outputs shown) are not run. The tests then read
the records the commands wrote.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from conftest import CALIBRATION_FILE, REPO, workers_of

PAGE = REPO / "docs" / "your-own-model.md"
MARKER = re.compile(r"<!-- test: ([\w-]+)(?:; file: ([\w.-]+))?(?:; exit: ([\d,]+))? -->")
FENCE = re.compile(r"^```\w*\n(.*?)^```", re.DOTALL | re.MULTILINE)
PROGRAMS = {"python": sys.executable, "accelbench": shutil.which("accelbench")}
# fmt: skip below: 7 names packed as a paragraph, not one per line.
KERAS3_OPTIMIZATIONS = [
    "fp32", "dynamic", "float16", "int8", "prune50+int8", "qat_int8", "cluster16+int8",
]  # fmt: skip
TRAINING_TIME = {"prune50+int8", "qat_int8", "cluster16+int8"}
IRIS_OPTIMIZATIONS = ["fp32", "int8", "prune50+int8", "qat_int8"]
CORNERS = ["bottom_left", "bottom_right", "top_left", "top_right"]  # the image folders
SPECIES = ["setosa", "versicolor", "virginica"]  # the CSV's label values


@dataclass
class Block:
    walkthrough: str
    text: str
    file: str | None = None
    exit_codes: tuple[int, ...] = (0,)


@dataclass
class Walkthrough:
    folder: Path
    results: dict[str, subprocess.CompletedProcess] = field(default_factory=dict)

    def records(self, run: str) -> list[dict]:
        lines = (self.folder / run / "records.jsonl").read_text().splitlines()
        return [json.loads(line) for line in lines if line.strip()]

    def stdout(self, command_start: str) -> str:
        return next(r.stdout for c, r in self.results.items() if c.startswith(command_start))


def marked_blocks(page: str) -> list[Block]:
    blocks = []
    for comment in re.finditer(r"^<!-- test.*$", page, re.MULTILINE):
        marker = MARKER.fullmatch(comment.group())
        assert marker, f"{comment.group()!r} is not a marker this test reads (see its docstring)"
        fence = FENCE.match(page, comment.end() + 1)
        assert fence, f"{comment.group()!r} is not followed by a fenced block on the next line"
        name, file, codes = marker.groups()
        exit_codes = tuple(int(c) for c in codes.split(",")) if codes else (0,)
        blocks.append(Block(name, fence.group(1), file, exit_codes))
    return blocks


def commands(block: Block) -> list[str]:
    joined = re.sub(r"\\\n\s*", " ", block.text)
    return [line.strip() for line in joined.splitlines() if line.strip()]


def run_walkthrough(name: str, folder: Path) -> Walkthrough:
    blocks = [b for b in marked_blocks(PAGE.read_text()) if b.walkthrough == name]
    assert blocks, f"{PAGE.name} has no block marked 'test: {name}'"
    cache = folder.parent / f"{folder.name}-cache"
    cache.mkdir()
    calibration = Path(os.environ["ACCELBENCH_CACHE_DIR"]) / CALIBRATION_FILE
    if calibration.is_file():
        shutil.copy(calibration, cache)
    env = {
        **os.environ,
        "ACCELBENCH_CACHE_DIR": str(cache),
        "KERAS_HOME": str(folder.parent / f"{folder.name}-keras-home"),
    }
    done = Walkthrough(folder)
    for block in blocks:
        if block.file:
            (folder / block.file).write_text(block.text)
            continue
        for command in commands(block):
            program, *args = shlex.split(command)
            assert PROGRAMS.get(program), f"{command!r}: runs {program!r}, not python/accelbench"
            result = subprocess.run(
                [PROGRAMS[program], *args],
                cwd=folder,
                env=env,
                capture_output=True,
                text=True,
                timeout=600,
            )
            assert result.returncode in block.exit_codes, (
                f"{command!r} exited {result.returncode}, expected {block.exit_codes}\n"
                f"stdout:\n{result.stdout[-3000:]}\nstderr:\n{result.stderr[-3000:]}"
            )
            done.results[command] = result
    assert not workers_of(folder), "a worker process outlived its command"
    return done


@pytest.fixture(scope="module")
def walkthrough(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Callable[[str], Walkthrough]]:
    """Starts every walk-through, side by side, the first time a test asks for one; tests wait
    for theirs and read its results."""
    names = list(dict.fromkeys(b.walkthrough for b in marked_blocks(PAGE.read_text())))
    running: dict[str, Future[Walkthrough]] = {}
    with ThreadPoolExecutor(len(names)) as pool:

        def get(name: str) -> Walkthrough:
            if not running:
                for each in names:
                    folder = tmp_path_factory.mktemp(each)
                    running[each] = pool.submit(run_walkthrough, each, folder)
            assert name in running, f"{PAGE.name} has no block marked 'test: {name}'"
            return running[name].result()

        yield get


def by_scenario(records: list[dict], scenario: str) -> dict[str, dict]:
    return {r["optimization"]: r for r in records if r["scenario"] == scenario}


def value(record: dict, metric: str) -> float:
    return record["metrics"][metric]["value"]


def test_the_page_marks_three_walkthroughs_each_with_a_script_and_commands() -> None:
    blocks = marked_blocks(PAGE.read_text())
    assert [b.walkthrough for b in blocks if b.file] == ["keras3", "tf-keras", "tflite"]
    for block in blocks:
        if not block.file:
            assert all(c.split()[0] in PROGRAMS for c in commands(block)), block.text


def test_keras3_image_folder_every_optimization(walkthrough) -> None:
    done = walkthrough("keras3")
    records = done.records("run")
    accuracy = by_scenario(records, "accuracy")
    latency = by_scenario(records, "single-stream")
    paired = by_scenario(records, "paired")
    assert sorted(accuracy) == sorted(latency) == sorted(KERAS3_OPTIMIZATIONS)
    assert sorted(paired) == sorted(set(KERAS3_OPTIMIZATIONS) - {"fp32"})
    assert all(r["status"] == "ok" for r in records), [(r["cell_id"], r["error"]) for r in records]
    assert value(accuracy["fp32"], "accuracy") >= 0.95  # the model learned the corners
    for name in KERAS3_OPTIMIZATIONS:
        assert value(latency[name], "latency_p50_ms") > 0
        settings = accuracy[name]["settings"]
        assert settings["data_format"] == "image folder"
        quality = accuracy[name]["quality"]
        assert list(quality["per_class"]) == CORNERS
        assert set(quality["flagged_classes"]) <= set(CORNERS)
        assert settings["data_split"] == "stratified 80/20 train/test, seed 0"
        assert settings["data_scaling"] == "pixels / 255, to [0, 1]"
        for record in (accuracy[name], latency[name]):
            notes = record["quality"]["notes"]["keras"]
            assert notes["keras_source"].startswith("keras 3.")
            if name in TRAINING_TIME:  # tfmot ran on the verified tf_keras rebuild
                assert notes["bridged_to"].startswith("tf_keras 2.")
                assert notes["bridge_max_abs_diff"] <= notes["bridge_tolerance"] == 1e-4
            else:  # converted as saved
                assert "bridged_to" not in notes
    assert value(accuracy["prune50+int8"], "sparsity") >= 0.45


def test_keras3_results_and_recommend_read_the_run(walkthrough) -> None:
    done = walkthrough("keras3")
    table = done.stdout("accelbench results show run")
    assert all(name in table for name in KERAS3_OPTIMIZATIONS)
    assert "paired" in table and "single-stream" in table
    answer = done.stdout("accelbench recommend run")
    assert re.search(r"\d+ of \d+ results meet the budget", answer), answer


def test_tf_keras_csv_optimize_and_train(walkthrough) -> None:
    done = walkthrough("tf-keras")
    records = done.records("run")
    assert all(r["status"] == "ok" for r in records), [(r["cell_id"], r["error"]) for r in records]
    assert all(name in done.stdout("accelbench results show run") for name in IRIS_OPTIMIZATIONS)
    accuracy = by_scenario(records, "accuracy")
    assert sorted(accuracy) == sorted(by_scenario(records, "single-stream"))
    assert sorted(accuracy) == sorted(IRIS_OPTIMIZATIONS)
    assert value(accuracy["fp32"], "accuracy") >= 0.9
    for record in accuracy.values():
        assert record["settings"]["data_format"] == "csv"
        assert record["settings"]["data_label"] == "species"
        assert record["settings"]["data_split"] == "the data's split column"
        notes = record["quality"]["notes"]["keras"]
        assert notes["keras_source"].startswith("tf_keras 2.") and "bridged_to" not in notes
        assert list(record["quality"]["per_class"]) == SPECIES
        assert set(record["quality"]["flagged_classes"]) <= set(SPECIES)

    [trained] = done.records("train")
    assert (trained["scenario"], trained["status"]) == ("training", "ok"), trained["error"]
    assert trained["settings"]["data_label"] == "species"
    assert trained["settings"]["data_format"] == "csv"
    assert trained["settings"]["inputs"] == str(done.folder / "iris.csv")
    assert trained["settings"]["target"] == 0.9
    for metric in ("step_time_ms", "examples_per_s", "time_to_target_s"):
        assert value(trained, metric) > 0, metric
    assert value(trained, "runs_reached_target") >= 2  # enough seeds for a time to target


def test_tflite_bench_with_npy_inputs_and_ab(walkthrough) -> None:
    done = walkthrough("tflite")
    [bench] = done.records("bench")
    assert (bench["scenario"], bench["status"]) == ("single-stream", "ok"), bench["error"]
    assert bench["settings"]["inputs"].endswith("inputs.npy")
    assert value(bench, "latency_p50_ms") > 0 and value(bench, "query_count") > 0

    [ab] = done.records("ab")
    assert (ab["scenario"], ab["status"]) == ("paired", "ok"), ab["error"]
    assert ab["settings"]["inputs"].endswith("inputs.npy")
    verdict = ab["paired"]["verdict"]
    assert verdict in ("regressed", "improved", "unchanged", "inconclusive")
    assert ab["paired"]["ci_low"] <= ab["paired"]["ratio"] <= ab["paired"]["ci_high"]
    exit_code = done.results[next(c for c in done.results if c.startswith("accelbench ab"))]
    assert exit_code.returncode == (1 if verdict == "regressed" else 0)
    assert verdict in exit_code.stdout
