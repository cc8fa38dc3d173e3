"""The sandbox a model-loading process runs in: bubblewrap, with the cell's folder its only write.

A model file is a program (TensorFlow's security guide: a graph "may read and write files, send
and receive data over the network, and even spawn additional processes"), so every process that
loads one runs under bubblewrap (``bwrap``), which builds a fresh mount, PID, IPC, UTS, user and
network namespace around it:

- the filesystem is a new, empty root into which only what the process needs is bound read-only:
  system libraries (``/usr``, the ``/lib*`` links, ``/opt``), a few named files of ``/etc``,
  ``/sys``, the Python installation and every folder on Python's path, the accelbench package,
  the model, its inputs and data, and the host calibration from accelbench's cache folder. The
  user's home and anything else not named here does not exist inside;
- the cell's own folder (and, for a preparation, its artifact folder) is the one place it can
  write, with a private ``/tmp`` (a size-capped tmpfs, also ``$HOME``) that vanishes with it;
  the rest of the new root is read-only;
- ``/proc`` is the sandbox's own (no other process is visible), ``/dev`` a minimal set plus any
  GPU/TPU device nodes;
- no network: a new network namespace holds only its own loopback (``serve`` keeps the host's
  network, as it must listen; its filesystem is limited the same way);
- the environment is filtered to the variables a framework reads (see ``_KEPT_ENV``), so tokens
  and keys in the caller's environment do not reach the model; bwrap drops every capability and
  sets no-new-privileges.

bubblewrap was chosen over Landlock after measuring both (scripts/bench_sandbox.py): bubblewrap
adds about 15 ms to a worker's start and Landlock a few, both far below a worker's own
start (0.4 s) and the 100 ms budget; only namespaces give the sandbox a network and a ``/proc``
of its own (Landlock governs TCP connect/bind, not UDP, and leaves other processes visible) and
hide paths outright rather than refusing them access by access.

Where bubblewrap cannot run (another OS, ``bwrap`` missing, user namespaces disabled), found by
trying ``bwrap ... true`` once per process, a run says so once on stderr and each record says
``sandbox: none`` with the reason; ``--no-sandbox`` records ``sandbox: off``.
"""

from __future__ import annotations

import functools
import glob
import os
import re
import shutil
import signal
import subprocess
import sys
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

# Set for every process a sandbox decision was made for: the mode it runs under. A process that
# finds it set (a server a sandboxed worker starts) does not try to sandbox itself again.
MODE_ENV = "ACCELBENCH_SANDBOX"
# The bubblewrap executable, when it is not the `bwrap` on PATH.
BWRAP_ENV = "ACCELBENCH_BWRAP"
MODES = ("bubblewrap", "none", "off")
TMP_SIZE_BYTES = 1 << 30  # the private /tmp lives in memory: capped, so it cannot fill it

# The files of /etc a Python process and its frameworks read: the dynamic loader's cache and
# configuration, time zone, user and host names, MIME types, fonts (matplotlib), and the
# alternatives links that some shared libraries (BLAS) resolve through. Not /etc as a whole: it
# holds secrets.
# fmt: skip below: 15 names packed as a paragraph, not one per line.
_ETC = (
    "ld.so.cache", "ld.so.conf", "ld.so.conf.d", "localtime", "timezone", "passwd", "group",
    "nsswitch.conf", "host.conf", "hosts", "gai.conf", "mime.types", "alternatives",
    "os-release", "fonts",
)  # fmt: skip
# Environment variables passed in, by name or prefix: locale and time zone, Python's own, and
# what TensorFlow, JAX, Keras, the BLAS/OpenMP thread pools and the CUDA/TPU drivers read.
_KEPT_ENV = re.compile(
    r"PATH|LANG|LANGUAGE|LC_\w+|TZ|TERM|VIRTUAL_ENV|LD_LIBRARY_PATH|PYTHON\w*|TF_\w+|JAX_\w+"
    r"|XLA_\w+|KERAS_\w+|CUDA_\w+|NVIDIA_\w+|TPU_\w+|PJRT_\w+|OMP_\w+|KMP_\w+|MKL_\w+"
    r"|OPENBLAS_\w+|ACCELBENCH_\w+"
)
_DEVICES = ("/dev/nvidia*", "/dev/accel*", "/dev/vfio", "/dev/dri")


@dataclass(frozen=True)
class Sandbox:
    """How a model-loading process runs: ``bubblewrap``, ``none`` (wanted, not available) or
    ``off`` (``--no-sandbox``); ``reason`` says why it is not bubblewrap."""

    mode: str
    reason: str | None = None

    @property
    def active(self) -> bool:
        return self.mode == "bubblewrap"

    def record_fields(self) -> dict[str, str | None]:
        """What a result record says about it."""
        return {"sandbox": self.mode, "sandbox_reason": self.reason}

    def command(
        self,
        argv: Sequence[str],
        *,
        read: Iterable[str | Path] = (),
        write: Iterable[str | Path] = (),
        network: bool = False,
        as_pid_1: bool = False,
    ) -> tuple[list[str], dict[str, str]]:
        """``argv`` as run in this sandbox, and the environment to run it with.

        ``read`` are the paths the process reads (bound read-only), ``write`` the folders it
        writes (bound writable; they must exist). ``network`` keeps the host's network.
        ``as_pid_1`` makes the command the sandbox's PID 1, so that the caller can signal it
        (its pid comes on bubblewrap's ``--info-fd``).
        """
        if not self.active:
            return list(argv), {**os.environ, MODE_ENV: self.mode}
        env = {k: v for k, v in os.environ.items() if _KEPT_ENV.fullmatch(k)}
        env.update(HOME="/tmp", TMPDIR="/tmp", **{MODE_ENV: self.mode})
        env["ACCELBENCH_CACHE_DIR"] = str(_cache_dir())
        read = [*read, *cache_paths()]
        return bwrap_argv(argv, read=read, write=write, network=network, as_pid_1=as_pid_1), env


def choose(enabled: bool) -> Sandbox:
    """The sandbox for this run: bubblewrap where it works, else ``none`` (said once on stderr);
    ``off`` when not enabled. Inside a sandbox already, the mode it runs under."""
    inherited = os.environ.get(MODE_ENV)
    if inherited in MODES:
        return Sandbox(inherited, None if inherited == "bubblewrap" else "set by the parent")
    if not enabled:
        return Sandbox("off", "--no-sandbox")
    reason = unavailable_reason()
    if reason is None:
        return Sandbox("bubblewrap")
    _warn_once(reason)
    return Sandbox("none", reason)


@functools.cache
def unavailable_reason() -> str | None:
    """Why bubblewrap cannot sandbox a process here, or None: tried once per process, as
    ``bwrap ... true`` with the namespaces and mounts a worker gets."""
    if not sys.platform.startswith("linux"):
        return f"bubblewrap needs Linux, and this is {sys.platform}"
    if bwrap_path() is None:
        return (
            "bubblewrap (bwrap) is not installed; install it (apt-get install bubblewrap, "
            "dnf install bubblewrap) or set ACCELBENCH_BWRAP to its path"
        )
    true = shutil.which("true") or "/bin/true"
    try:
        done = subprocess.run(
            bwrap_argv([true]), capture_output=True, text=True, timeout=30, env=_probe_env()
        )
    except (OSError, subprocess.TimeoutExpired) as err:
        return f"bwrap did not run ({err})"
    if done.returncode != 0:
        lines = [line for line in done.stderr.strip().splitlines() if line.strip()]
        why = lines[-1] if lines else f"exit status {done.returncode}"
        return f"bwrap cannot create its namespaces here ({why}); user namespaces may be disabled"
    return None


def _probe_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if _KEPT_ENV.fullmatch(k)}


@functools.cache
def _warn_once(reason: str) -> None:
    print(
        f"accelbench: warning: models run without a sandbox: {reason}; they can read, write "
        "and reach whatever this user can (records say sandbox: none)",
        file=sys.stderr,
    )


def bwrap_path() -> str | None:
    configured = os.environ.get(BWRAP_ENV)
    if configured:
        return configured if os.access(configured, os.X_OK) else None
    return shutil.which("bwrap")


def exit_status(code: int | None, sandbox: Sandbox) -> int | None:
    """A sandboxed process's exit status as if it had run directly: bubblewrap reports a
    command killed by signal N as 128 + N, Popen as -N."""
    if sandbox.active and code is not None and code > 128:
        try:
            return -signal.Signals(code - 128).value
        except ValueError:
            return code
    return code


def bwrap_argv(
    argv: Sequence[str],
    *,
    read: Iterable[str | Path] = (),
    write: Iterable[str | Path] = (),
    network: bool = False,
    as_pid_1: bool = False,
) -> list[str]:
    """The bubblewrap command line that runs argv with the binds described in the module doc."""
    bwrap = bwrap_path() or "bwrap"
    args = [bwrap, "--unshare-all", "--die-with-parent", "--new-session"]
    if network:
        args.append("--share-net")
    if as_pid_1:
        args.append("--as-pid-1")
    for top in ("/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32"):
        if os.path.islink(top):  # merged /usr: the link, as on the host
            args += ["--symlink", os.readlink(top), top]
        elif os.path.isdir(top):
            args += ["--ro-bind", top, top]
    for system in ("/usr", "/opt", "/sys"):
        args += ["--ro-bind-try", system, system]
    for name in _ETC:
        args += ["--ro-bind-try", f"/etc/{name}", f"/etc/{name}"]
    args += ["--proc", "/proc", "--dev", "/dev"]
    for pattern in _DEVICES:
        for device in sorted(glob.glob(pattern)):
            args += ["--dev-bind", device, device]
    args += ["--size", str(TMP_SIZE_BYTES), "--tmpfs", "/tmp"]
    cwd = os.getcwd()
    if cwd != "/":
        # Relative paths resolve as outside; the folder itself stays empty unless bound.
        args += ["--dir", cwd]
    readable = [p for p in map(_absolute, read) if os.path.exists(p)]
    binds = {p: "--ro-bind" for p in (*python_paths(), *readable)}
    binds.update({_absolute(p): "--bind" for p in write})
    # Parents before children, so that a narrower bind inside a wider one is not covered; a
    # bind inside one of the same kind adds nothing.
    for path in sorted(binds, key=lambda p: (p.count("/"), p)):
        if _enclosing_kind(path, binds) != binds[path]:
            args += [binds[path], path, path]
    # The new root itself (where bwrap made the folders leading to each bind) read-only too:
    # a write anywhere but the bound folders and /tmp fails.
    args += ["--remount-ro", "/", "--chdir", cwd, "--", *map(str, argv)]
    return args


def _enclosing_kind(path: str, binds: dict[str, str]) -> str | None:
    """The kind of bind of the nearest bound folder above path, if any."""
    parent = os.path.dirname(path)
    while parent != path:
        if parent in binds:
            return binds[parent]
        path, parent = parent, os.path.dirname(parent)
    return None


def _absolute(path: str | Path) -> str:
    # As the process names it (not resolved): inside, it reaches the file by the same path.
    return os.path.abspath(path)


@functools.cache
def python_paths() -> tuple[str, ...]:
    """What a Python worker needs to start and import accelbench: the interpreter, its
    installation (and a virtual environment's base), every existing entry of sys.path except
    the current folder, and the accelbench package (an editable install's source)."""
    import accelbench

    cwd = os.getcwd()
    paths = {
        sys.prefix,
        sys.base_prefix,
        sys.exec_prefix,
        sys.base_exec_prefix,
        os.path.realpath(sys.executable),
        os.path.dirname(os.path.abspath(sys.executable)),
        str(Path(accelbench.__file__).resolve().parent),
    }
    paths.update(entry for entry in sys.path if entry and os.path.abspath(entry) != cwd)
    return tuple(sorted(p for p in map(os.path.abspath, paths) if os.path.exists(p)))


def _cache_dir() -> Path:
    from accelbench.hardware_profiles.calibrate import cache_dir

    return cache_dir().absolute()


def cache_paths() -> list[Path]:
    """The host calibration, when there is one (a JAX cell's MFU on this host's CPU reads its
    peak): that file of accelbench's cache folder only (the folder also keeps every prepared
    model's artifacts)."""
    from accelbench.hardware_profiles.calibrate import CALIBRATION_FILE

    calibration = _cache_dir() / CALIBRATION_FILE
    return [calibration] if calibration.is_file() else []


def named_paths(obj: object) -> list[str]:
    """Every existing file or folder a cell or job names (model, inputs, data, the sides of a
    paired cell, ...): the strings in it, at any depth, that contain a '/' and exist. Never a
    folder that holds the current folder or the home folder (binding it would show them)."""
    found: list[str] = []
    stack = [obj]
    home, cwd = str(Path.home().absolute()), os.getcwd()
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            stack.extend(item.values())
        elif isinstance(item, (list, tuple)):
            stack.extend(item)
        elif isinstance(item, str) and "/" in item and len(item) < 4096:
            path = os.path.abspath(item)
            if os.path.exists(path) and not any(_within(place, path) for place in (home, cwd)):
                found.append(path)
    return sorted(set(found))


def _within(path: str, folder: str) -> bool:
    return path == folder or path.startswith(folder.rstrip("/") + "/")


def read_untrusted(path: Path, limit_bytes: int = 256 << 20) -> str | None:
    """The text of a file a sandboxed process wrote, or None when it is not a regular file
    there (a link it planted to one of the user's files, a FIFO that would block the reader)
    or is larger than limit_bytes."""
    import stat

    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except OSError:
        return None
    with os.fdopen(fd, "rb") as file:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode) or info.st_size > limit_bytes:
            return None
        return file.read(limit_bytes).decode("utf-8", errors="replace")
