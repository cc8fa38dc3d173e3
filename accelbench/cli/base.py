"""What every command shares: the Command base, exit statuses, error handling, common flags."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any, ClassVar

from accelbench import __version__
from accelbench.errors import UsageError, failure_reason

EXIT_OK, EXIT_FAILED_CELLS, EXIT_USAGE, EXIT_INTERNAL = 0, 1, 2, 3
# 128 + SIGPIPE, what a shell reports for a tool that a closed pipe stopped (`yes | head -1`).
EXIT_INTERRUPTED, EXIT_CLOSED_PIPE = 130, 141

EXIT_STATUSES = (
    "exit status: 0 done; 1 some cells failed (compare: a regression); 2 bad input or usage, "
    "one line on stderr; 3 internal error, one line on stderr naming the log file that holds "
    "the traceback; 130 interrupted; 141 the output pipe was closed (e.g. by head)"
)


class Command:
    """One `accelbench COMMAND`: its name and help line as `accelbench --help` lists them, its
    arguments, and what it does. A command imports the library (and any framework) inside
    ``run``, so that building the parser, and `accelbench --help`, stays fast."""

    name: ClassVar[str]
    help: ClassVar[str]
    description: ClassVar[str | None] = None  # `accelbench COMMAND --help`'s text, if any

    @classmethod
    def add_arguments(cls, parser: argparse.ArgumentParser) -> None:
        """Add the command's arguments (and its actions' subparsers) to its parser."""

    @classmethod
    def run(cls, args: argparse.Namespace) -> int:
        """Do the command; the exit status. Bad input raises UsageError (exit 2, one line)."""
        raise NotImplementedError(f"{cls.name} has no run()")


def add_commands(sub: Any, commands: Iterable[type[Command]]) -> None:
    """Add one parser per command to the CLI's subparsers, in order; each runs its command."""
    for command in commands:
        parser = sub.add_parser(command.name, help=command.help, description=command.description)
        command.add_arguments(parser)
        parser.set_defaults(handler=command.run)


class Parser(argparse.ArgumentParser):
    """argparse that reports a bad flag as one UsageError line instead of usage + exit."""

    def error(self, message: str) -> None:  # type: ignore[override]
        raise UsageError(f"{message}; see '{self.prog} --help'")


def comma_list(kind: str, cast: Callable[[str], Any] = str) -> Callable[[str], list[Any]]:
    """An argparse type: a comma-separated list of ``cast`` values, e.g. ``--threads 1,2``."""

    def parse(text: str) -> list[Any]:
        items = [t.strip() for t in text.split(",") if t.strip()]
        if not items:
            raise argparse.ArgumentTypeError(f"empty {kind} list; give e.g. a comma-separated list")
        try:
            return [cast(t) for t in items]
        except ValueError:
            raise argparse.ArgumentTypeError(
                f"{kind} must be a comma-separated list of {cast.__name__}s, got {text!r}"
            ) from None

    return parse


# -- Running a command: exit statuses instead of tracebacks ------------------------------------


def run_guarded(go: Callable[[], int], argv: list[str] | None) -> int:
    """Run ``go`` (parse and run one command); its exit status. No traceback reaches the
    terminal (see EXIT_STATUSES): bad input is one line and status 2, anything unexpected one
    line naming a log file and status 3, a closed output pipe a quiet 141."""
    try:
        code = _usage_errors(go)
        sys.stdout.flush()  # a closed pipe raises here, inside the handler, not at shutdown
        return code
    except BrokenPipeError as exc:
        if not _stdout_closed():
            return _internal_error(exc, argv)  # a socket's pipe, not the terminal's
        # The Python docs' "Note on SIGPIPE": point stdout at devnull so that the flush at
        # interpreter shutdown does not raise again.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return EXIT_CLOSED_PIPE
    except SystemExit as exc:
        # rich's console handles a closed stdout itself, the same way, but exits with status 1.
        if exc.code == 1 and isinstance(exc.__context__, BrokenPipeError):
            return EXIT_CLOSED_PIPE
        raise
    except Exception as exc:  # noqa: BLE001 - the last line of defence: a log, not a traceback
        return _internal_error(exc, argv)


def _usage_errors(go: Callable[[], int]) -> int:
    try:
        return go()
    except UsageError as exc:
        print(f"accelbench: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("accelbench: interrupted; finished records are kept", file=sys.stderr)
        return EXIT_INTERRUPTED


def _stdout_closed() -> bool:
    """Whether stdout is a pipe whose reader has gone (poll says POLLERR on the write end)."""
    import select

    if not hasattr(select, "poll"):
        return True  # no poll (Windows): a BrokenPipeError is most likely stdout's
    try:
        poller = select.poll()
        poller.register(sys.stdout.fileno(), select.POLLOUT)
        return any(event & select.POLLERR for _, event in poller.poll(0))
    except (OSError, ValueError):  # stdout replaced by an object without a file descriptor
        return False


def _internal_error(exc: BaseException, argv: list[str] | None) -> int:
    """Write the traceback to a log file and name it in one line on stderr: status 3."""
    import traceback

    args = sys.argv[1:] if argv is None else argv
    log = _write_crash_log(
        f"accelbench {__version__}\narguments: {args}\n\n{''.join(traceback.format_exception(exc))}"
    )
    where = f"the traceback is in {log}" if log else "no log file could be written"
    print(
        f"accelbench: internal error: {failure_reason(exc)}; {where}; please report it",
        file=sys.stderr,
    )
    return EXIT_INTERNAL


def _write_crash_log(text: str) -> Path | None:
    """The log file written (the cache's logs folder, else the temp folder), or None."""
    import datetime
    import tempfile

    folders = []
    try:
        from accelbench.hardware_profiles.calibrate import cache_dir

        folders.append(cache_dir() / "logs")
    except Exception:  # noqa: BLE001 - a broken install must still get its log written
        pass
    folders.append(Path(tempfile.gettempdir()) / "accelbench-logs")
    stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
    for folder in folders:
        path = folder / f"crash-{stamp}-{os.getpid()}.log"
        try:
            folder.mkdir(parents=True, exist_ok=True)
            path.write_text(text, encoding="utf-8")
        except OSError:
            continue
        return path
    return None


# -- Flags that several commands take ----------------------------------------------------------


def add_model_trust_arguments(p: argparse.ArgumentParser, *, serve: bool = False) -> None:
    """--trust-model and --no-sandbox, for every command that loads a model."""
    where = "the server" if serve else "each worker"
    p.add_argument(
        "--trust-model",
        action="store_true",
        help="run a model that 'accelbench inspect' flags (operations on files, the network or "
        "processes; Lambda layers) instead of refusing it; it still runs in the sandbox",
    )
    p.add_argument(
        "--no-sandbox",
        action="store_true",
        help=f"run {where} without the sandbox (default: bubblewrap, with "
        + ("the host's network" if serve else "no network")
        + " and the filesystem read-only but its own folder; records say sandbox: off)",
    )


def add_cluster_argument(p: argparse.ArgumentParser) -> None:
    """--cluster: the Ray cluster whose nodes run the cells of ``transport: ray`` profiles."""
    p.add_argument(
        "--cluster",
        metavar="HOST:PORT",
        help="a Ray cluster's head (accelbench agent start): each cell of a transport: ray "
        "profile runs on the node serving it (default: $ACCELBENCH_CLUSTER)",
    )
    p.add_argument(
        "--spread",
        action="store_true",
        help="with --cluster: also send the local and emulated cells of LoadGen scenarios and "
        "paired cells to the cluster's nodes, each to a node with as many free CPUs as it has "
        "threads, many at once (training, input-pipeline, serving and GPU/TPU cells stay here)",
    )


def apply_cluster(args: argparse.Namespace) -> None:
    """Hand --cluster to the sweep (and its workers) as $ACCELBENCH_CLUSTER, --spread as
    $ACCELBENCH_SPREAD."""
    if getattr(args, "cluster", None):
        if ":" not in args.cluster:
            raise UsageError(
                f"--cluster {args.cluster!r} names no port; give HOST:PORT, e.g. 10.0.0.5:6379"
            )
        os.environ["ACCELBENCH_CLUSTER"] = args.cluster
    if getattr(args, "spread", False):
        if not os.environ.get("ACCELBENCH_CLUSTER"):
            raise UsageError(
                "--spread sends cells to a Ray cluster's nodes, and no cluster is named; give "
                "--cluster HOST:PORT too (or set ACCELBENCH_CLUSTER)"
            )
        os.environ["ACCELBENCH_SPREAD"] = "1"


def trust_settings(args: argparse.Namespace) -> dict[str, bool]:
    """The suite settings of --trust-model and --no-sandbox."""
    return {"trust_model": args.trust_model, "sandbox": not args.no_sandbox}


def add_scenario_argument(p: argparse.ArgumentParser) -> None:
    """--scenario: the scenarios to run, any the scenario table lets a suite name."""
    from accelbench.benchmarks.scenarios import names_text

    p.add_argument(
        "--scenario",
        type=comma_list("scenario"),
        default=["single-stream"],
        help=f"comma-separated, of {names_text()} (default: single-stream)",
    )


def add_no_cache_argument(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--no-cache",
        action="store_true",
        help="train and optimize every model afresh, neither taking its artifacts from the "
        "artifact cache ($ACCELBENCH_CACHE_DIR/prepared) nor keeping them there",
    )


def add_data_arguments(parser: argparse.ArgumentParser, *, required: bool) -> None:
    """--data and --label, shared by `train` and `optimize`."""
    parser.add_argument(
        "--data",
        required=required,
        help="your dataset: .npz (x_train, y_train, x_test, y_test, or x, y); an image folder "
        "(one sub-folder per class; images decoded, resized to the model's input height x width "
        "and scaled to [0, 1]); .csv or .parquet (feature columns and a label column); "
        ".tfrecord of tf.train.Example (features and label keys). One set without a split is "
        "split 80/20 train/test with seed 0 (stratified by class, but a .npz's x, y at random)",
    )
    parser.add_argument(
        "--label",
        default=None,
        metavar="COLUMN",
        help="label column (CSV, Parquet) or key (TFRecord) of your own model's data "
        "(default: label)",
    )


def add_api_key_arguments(p: argparse.ArgumentParser, what: str) -> None:
    """--api-key KEY and --api-key-file FILE (a key kept out of the shell history and ps)."""
    p.add_argument("--api-key", default=None, metavar="KEY", help=f"an API key to {what}")
    p.add_argument(
        "--api-key-file", default=None, metavar="FILE", help="read --api-key from FILE (one line)"
    )


def api_key(args: argparse.Namespace) -> str | None:
    """The key --api-key or --api-key-file gives, checked; None when neither is given."""
    from accelbench.serving import check_api_key

    if args.api_key is not None and args.api_key_file is not None:
        raise UsageError("give --api-key or --api-key-file, not both")
    key = args.api_key
    if args.api_key_file is not None:
        try:
            key = Path(args.api_key_file).read_text(encoding="utf-8").strip()
        except (OSError, UnicodeDecodeError) as err:
            raise UsageError(
                f"cannot read --api-key-file {args.api_key_file} ({err.__class__.__name__}); "
                "pass a text file holding the key"
            ) from None
    if key is not None:
        check_api_key(key)
    return key


# -- Running a suite into a run folder (bench, run, optimize, train, input-pipeline) -----------


def execute_suite(suite: Any, out: Path | None, progress: bool, *, cache: bool = True) -> int:
    """Run ``suite`` into ``out`` (default: a new results/<timestamp>), print what it found;
    the exit status (1 when a cell failed)."""
    from accelbench.report.run_outputs import write_run_outputs
    from accelbench.runner.suite import expand
    from accelbench.runner.sweep import new_run_dir, run_suite

    expand(suite)  # profiles and settings are checked before the run folder exists
    run_dir = out or new_run_dir()
    check_run_dir(run_dir)
    return _finish(
        run_dir,
        lambda: run_suite(
            suite, run_dir, progress=progress, cache=cache, write_outputs=write_run_outputs
        ),
    )


def resume_run(run_dir: Path, progress: bool, *, cache: bool = True) -> int:
    """Run the cells of ``run_dir`` not yet recorded, with the suite it was started with."""
    from accelbench.report.run_outputs import write_run_outputs
    from accelbench.runner.sweep import load_run_suite, run_suite

    suite = load_run_suite(run_dir)
    return _finish(
        run_dir,
        lambda: run_suite(
            suite,
            run_dir,
            resume=True,
            progress=progress,
            cache=cache,
            write_outputs=write_run_outputs,
        ),
    )


def check_run_dir(run_dir: Path) -> None:
    """Refuse, before anything is written, a run folder that cannot be created or written in."""
    import tempfile

    if run_dir.exists() and not run_dir.is_dir():
        raise UsageError(f"run folder {run_dir} is a file; pass --out a new folder path")
    existing = run_dir
    while not existing.is_dir() and existing != existing.parent:
        if existing.exists():
            raise UsageError(
                f"run folder {run_dir} would be under {existing}, which is a file; pass --out "
                "a folder path"
            )
        existing = existing.parent
    # Try it: permission bits say nothing for root, a read-only mount or an ACL.
    try:
        with tempfile.TemporaryDirectory(dir=existing, prefix=".accelbench-write-check-"):
            pass
    except OSError as err:
        raise UsageError(
            f"cannot write the run folder {run_dir}: {existing} is not writable "
            f"({err.strerror or err}); pass --out a folder you can write to"
        ) from None


def _finish(run_dir: Path, go: Callable[[], list[dict[str, Any]]]) -> int:
    from accelbench.report.tables import print_table

    try:
        records = go()
    except KeyboardInterrupt:
        print(
            f"accelbench: interrupted; finished records are kept in {run_dir}; "
            f"continue with --resume {run_dir}",
            file=sys.stderr,
        )
        return EXIT_INTERRUPTED
    if any(r.get("scenario") == "accuracy" for r in records):
        # Optimized models: the answer is the recommendations; the full table is one command away.
        from accelbench.report.recommendations import print_recommendations

        print_recommendations(records)
        print(f"full table: accelbench results show {run_dir}")
        print(f"report: {run_dir / 'report.md'}  {run_dir / 'report.html'}")
    else:
        print_table(records, title=f"run {run_dir}")
    print(f"records: {run_dir / 'records.jsonl'}  table: {run_dir / 'results.parquet'}")
    failed = [r for r in records if r["status"] == "failed"]
    return EXIT_FAILED_CELLS if failed else EXIT_OK
