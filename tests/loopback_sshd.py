"""A private OpenSSH server on loopback for tests and benchmark scripts: its own host key,
authorized key and config in one folder, on a free port, as the current user; no system service.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

SSHD_PATHS = ("/usr/sbin/sshd", "/usr/bin/sshd")


def find_sshd() -> str | None:
    """The OpenSSH server's path, or None where it is not installed."""
    found = shutil.which("sshd")
    return found or next((p for p in SSHD_PATHS if os.access(p, os.X_OK)), None)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class LoopbackSshd:
    """``start()`` runs ``sshd -D`` on 127.0.0.1; ``stop()`` ends it and every process it started
    (sessions included). ``client_key`` and ``known_hosts`` are what a profile names."""

    def __init__(self, folder: Path, sshd: str) -> None:
        self.folder, self.sshd = folder, sshd
        self.port = free_port()
        self.client_key = folder / "client_key"
        self.known_hosts = folder / "known_hosts"
        self.user = _user()
        self._proc: subprocess.Popen[bytes] | None = None

    def start(self) -> LoopbackSshd:
        self.folder.mkdir(parents=True, exist_ok=True)
        host_key = self.folder / "host_key"
        for key in (host_key, self.client_key):
            if not key.exists():
                subprocess.run(
                    ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key)], check=True
                )
        authorized = self.folder / "authorized_keys"
        authorized.write_text(self.client_key.with_suffix(".pub").read_text())
        host_public = host_key.with_suffix(".pub").read_text().split()[:2]
        self.known_hosts.write_text(f"[127.0.0.1]:{self.port} {' '.join(host_public)}\n")
        config = self.folder / "sshd_config"
        config.write_text(
            "\n".join(
                [
                    "ListenAddress 127.0.0.1",
                    f"HostKey {host_key}",
                    f"AuthorizedKeysFile {authorized}",
                    f"PidFile {self.folder / 'sshd.pid'}",
                    "PermitRootLogin prohibit-password",
                    "PasswordAuthentication no",
                    "KbdInteractiveAuthentication no",
                    "UsePAM no",
                    "StrictModes no",
                    "LogLevel ERROR",
                    "",
                ]
            )
        )
        # sshd refuses to start without its privilege-separation folder (systemd makes it).
        Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)
        self._proc = subprocess.Popen(
            [
                self.sshd,
                "-D",
                "-f",
                str(config),
                "-p",
                str(self.port),
                "-E",
                str(self.folder / "sshd.log"),
            ],
            start_new_session=True,
        )
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                log = (self.folder / "sshd.log").read_text(errors="replace")
                raise RuntimeError(f"sshd exited at once: {log.strip()}")
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.5).close()
                return self
            except OSError:
                time.sleep(0.05)
        self.stop()
        raise RuntimeError("sshd did not listen within 10 s")

    @property
    def host(self) -> str:
        return f"{self.user}@127.0.0.1:{self.port}"

    def stop(self) -> None:
        """Kill sshd and all its descendants (the sessions it forked, which leave its group)."""
        if self._proc is None:
            return
        for pid in [*_descendants(self._proc.pid), self._proc.pid]:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        self._proc.wait(timeout=10)
        self._proc = None

    def __enter__(self) -> LoopbackSshd:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _user() -> str:
    import pwd

    return pwd.getpwuid(os.getuid()).pw_name


def _descendants(root: int) -> list[int]:
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        parent = int(stat.rsplit(")", 1)[1].split()[1])
        children.setdefault(parent, []).append(int(entry.name))
    found, stack = [], [root]
    while stack:
        for child in children.get(stack.pop(), []):
            found.append(child)
            stack.append(child)
    return found
