"""The SSH transport: a remote profile's cell measured on its device with OpenSSH's own client.

The system ``ssh`` runs every step, so the user's OpenSSH set-up (keys, agent, ``~/.ssh/config``,
known hosts) applies unchanged and host keys are checked by OpenSSH itself
(``StrictHostKeyChecking=yes``, or ``accept-new`` to accept a new key once). ``BatchMode`` keeps it
from ever prompting: a key it cannot use is an authentication failure, at once.

On the device, everything lives under the profile's ``remote.folder`` (``~/.accelbench``):
``runner/<hash>/`` holds the edge runner and ``device_cell.py``, ``artifacts/<sha256>.tflite``
each model, both by content hash, so a file is copied once however many cells and runs use it;
``runs/<run>/<cell>/`` is the run's folder (LoadGen's logs when the device has LoadGen).
"""

from __future__ import annotations

import hashlib
import json
import shlex
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from accelbench.records import artifact_info

DEVICE_CELL = Path(__file__).with_name("device_cell.py")
EDGE_RUNNER = Path(__file__).parents[2] / "runtimes" / "edge.py"
# ssh's own exit status when the connection, not the remote command, failed.
SSH_FAILED = 255
# How long a silent connection lives: ServerAliveInterval x ServerAliveCountMax seconds.
ALIVE_INTERVAL_S, ALIVE_COUNT = 2, 3


class DeviceError(RuntimeError):
    """The device could not be reached, or the command there failed: the message says which."""


@dataclass(frozen=True)
class SshDevice:
    """One device reached over SSH: a profile's ``remote:`` block, its host split."""

    profile: str
    user: str
    host: str
    port: int | None
    python: str
    identity_file: str | None = None
    known_hosts: str | None = None
    host_key_checking: str = "yes"
    folder: str = ".accelbench"
    connect_timeout_s: float = 10.0

    @classmethod
    def from_profile(cls, profile: Any, *, known_keys_only: bool = False) -> SshDevice:
        """The profile's device; ``known_keys_only`` refuses a new host key even where the
        profile accepts one (a cell's worker cannot record it: its sandbox is read-only)."""
        remote = profile.remote
        user, _, address = remote.host.partition("@")
        host, port = address, None
        if address.startswith("["):  # [IPv6]:port
            host, _, rest = address[1:].partition("]")
            port = int(rest[1:]) if rest.startswith(":") else None
        elif address.count(":") == 1:
            host, _, port_text = address.partition(":")
            port = int(port_text)
        return cls(
            profile=profile.name,
            user=user,
            host=host,
            port=port,
            python=remote.python,
            identity_file=remote.identity_file,
            known_hosts=remote.known_hosts,
            host_key_checking="yes" if known_keys_only else remote.host_key_checking,
            folder=remote.folder.rstrip("/"),
            connect_timeout_s=remote.connect_timeout_s,
        )

    @property
    def address(self) -> str:
        port = f":{self.port}" if self.port else ""
        return f"{self.user}@{self.host}{port}"

    def local_paths(self) -> list[str]:
        """The files of this machine ssh reads for this device (keys, known hosts, config)."""
        paths = [str(Path("~/.ssh").expanduser())]
        for path in (self.identity_file, self.known_hosts):
            if path:
                paths.append(str(Path(path).expanduser().absolute()))
        return paths

    def ssh_argv(self, command: str) -> list[str]:
        options = {
            "BatchMode": "yes",
            "ConnectTimeout": str(max(1, round(self.connect_timeout_s))),
            "ServerAliveInterval": str(ALIVE_INTERVAL_S),
            "ServerAliveCountMax": str(ALIVE_COUNT),
            "StrictHostKeyChecking": self.host_key_checking,
            "LogLevel": "ERROR",
        }
        if self.known_hosts:
            options["UserKnownHostsFile"] = str(Path(self.known_hosts).expanduser())
        argv = ["ssh"]
        for key, value in options.items():
            argv += ["-o", f"{key}={value}"]
        if self.identity_file:
            argv += ["-i", str(Path(self.identity_file).expanduser()), "-o", "IdentitiesOnly=yes"]
        if self.port:
            argv += ["-p", str(self.port)]
        return [*argv, f"{self.user}@{self.host}", "--", command]

    def run(
        self, command: str, *, timeout_s: float, stdin: bytes | None = None
    ) -> subprocess.CompletedProcess[bytes]:
        """Run a shell command on the device; DeviceError when ssh or the command fails."""
        try:
            done = subprocess.run(
                self.ssh_argv(command),
                input=stdin if stdin is not None else b"",
                capture_output=True,
                timeout=max(timeout_s, 1.0),
                check=False,
            )
        except subprocess.TimeoutExpired:
            raise DeviceError(
                f"{self.profile} ({self.address}) did not finish within {timeout_s:.0f} s"
            ) from None
        except FileNotFoundError:
            raise DeviceError(
                "the OpenSSH client (ssh) is not installed here; install it (Debian: "
                "apt-get install openssh-client)"
            ) from None
        if done.returncode != 0:
            raise DeviceError(self._reason(done))
        return done

    def _reason(self, done: subprocess.CompletedProcess[bytes]) -> str:
        lines = [line.strip() for line in done.stderr.decode(errors="replace").splitlines()]
        lines = [line for line in lines if line]
        last = lines[-1] if lines else f"exit status {done.returncode}"
        if done.returncode == SSH_FAILED:
            hint = ""
            if "Permission denied" in last:
                hint = "; check identity_file and the device's ~/.ssh/authorized_keys"
            elif "Host key verification failed" in last:
                hint = (
                    "; its host key is not known here: with host_key_checking: accept-new, "
                    f"'accelbench device check {self.profile}' accepts it once; else add it to "
                    "known_hosts (ssh-keyscan)"
                )
            return f"ssh to {self.profile} ({self.address}) failed: {last}{hint}"
        reason = last.removeprefix("device_cell.py: error: ")
        if "No module named" in reason or "no TFLite interpreter" in reason:
            reason += (
                f"; install the runner's packages with 'accelbench device setup {self.profile}'"
            )
        return f"on {self.profile} ({self.address}): {reason}"

    def python_command(self, *args: str) -> str:
        """The device's Python running ``args``, as a shell command there (``~/`` expands)."""
        python = self.python
        python = (
            '"$HOME"/' + shlex.quote(python[2:]) if python.startswith("~/") else shlex.quote(python)
        )
        return " ".join([python, *map(shlex.quote, args)])

    # -- files by content hash ------------------------------------------------------------------

    def stage(self, files: dict[str, Path], *, timeout_s: float) -> None:
        """Copy each local file to its device path (relative to the home folder) unless a file
        is there already; the device path names the content's hash, so present means same."""
        check = "; ".join(f"[ -f {shlex.quote(p)} ] || echo {shlex.quote(p)}" for p in files)
        missing = self.run(check, timeout_s=timeout_s).stdout.decode().split()
        for device_path in missing:
            folder = str(Path(device_path).parent)
            partial = f"{device_path}.partial"
            self.run(
                f"mkdir -p {shlex.quote(folder)} && cat > {shlex.quote(partial)} && "
                f"mv {shlex.quote(partial)} {shlex.quote(device_path)}",
                timeout_s=timeout_s,
                stdin=files[device_path].read_bytes(),
            )

    def runner_folder(self) -> str:
        digest = hashlib.sha256(EDGE_RUNNER.read_bytes() + DEVICE_CELL.read_bytes()).hexdigest()
        return f"{self.folder}/runner/{digest[:16]}"

    def runner_files(self) -> dict[str, Path]:
        folder = self.runner_folder()
        return {f"{folder}/edge.py": EDGE_RUNNER, f"{folder}/device_cell.py": DEVICE_CELL}

    def fingerprint(self, *, timeout_s: float) -> dict[str, Any]:
        """The device's environment, as device_cell.py reports it."""
        self.stage(self.runner_files(), timeout_s=timeout_s)
        script = f"{self.runner_folder()}/device_cell.py"
        done = self.run(self.python_command(script, "fingerprint"), timeout_s=timeout_s)
        return _json_line(done.stdout, self)

    def measure(self, model: Path, spec: dict[str, Any], *, deadline: float) -> dict[str, Any]:
        """Stage the runner and the model, run the cell there, and return what it measured."""
        sha = artifact_info(model)["sha256"]
        model_path = f"{self.folder}/artifacts/{sha}{model.suffix}"
        self.stage({**self.runner_files(), model_path: model}, timeout_s=_left(deadline))
        script = f"{self.runner_folder()}/device_cell.py"
        request = json.dumps({**spec, "model": model_path}).encode()
        done = self.run(
            self.python_command(script, "measure"), timeout_s=_left(deadline), stdin=request
        )
        measured = _json_line(done.stdout, self)
        measured["device_model_path"] = model_path
        return measured


def _left(deadline: float) -> float:
    return deadline - time.monotonic()


def _json_line(stdout: bytes, device: SshDevice) -> dict[str, Any]:
    lines = stdout.decode(errors="replace").strip().splitlines()
    try:
        return json.loads(lines[-1])
    except (IndexError, json.JSONDecodeError):
        raise DeviceError(
            f"on {device.profile} ({device.address}): device_cell.py printed no result "
            f"({(lines or ['nothing'])[-1][:200]})"
        ) from None
