"""``smolserve operator`` as real processes, restarted like a kubelet restarts a container.

``Supervised`` keeps one operator process running: whenever it exits (a test SIGKILLs it),
the next one starts at once. To keep restarts fast, the next process is always started ahead
as a *spare* that has done its imports (kopf, the Kubernetes client: most of a start-up) and
waits on its stdin; a restart tells it to go. It is still a new process: it lists everything,
fills its indexes and resumes every SmolServe from scratch, as a restarted pod would.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
# The spare: import what `smolserve operator` imports, wait for the word, then run it.
SPARE = (
    "import sys\n"
    "import smolserve.cli, smolserve.operator.runner\n"
    "if sys.stdin.readline():\n"
    "    sys.exit(smolserve.cli.main(sys.argv[1:]))\n"
)


def operator_env(kubeconfig: Path, **extra: str) -> dict[str, str]:
    """The environment of an operator process: this checkout's package, the API to talk to."""
    path = os.pathsep.join(filter(None, [str(REPO / "operator"), os.environ.get("PYTHONPATH")]))
    return {**os.environ, "PYTHONPATH": path, "KUBECONFIG": str(kubeconfig), **extra}


class Supervised:
    """One ``smolserve operator ARGS`` process at a time, restarted whenever it exits."""

    def __init__(self, args: list[str], env: dict[str, str], logdir: Path) -> None:
        self.args = ["operator", *args]
        self.env = env
        self.logdir = logdir
        self.logs: list[Path] = []
        self.exits: list[int] = []  # the exit status of every process that ended
        self.restarts = 0
        self._lock = threading.Lock()
        self._current: subprocess.Popen[bytes] | None = None
        self._killed: set[int] = set()
        self._spare = self._spawn()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, name="supervisor", daemon=True)

    def _spawn(self) -> subprocess.Popen[bytes]:
        log = self.logdir / f"operator-{len(self.logs)}.log"
        self.logs.append(log)
        with log.open("wb") as out:
            return subprocess.Popen(
                [sys.executable, "-c", SPARE, *self.args],
                env=self.env,
                stdin=subprocess.PIPE,
                stdout=out,
                stderr=subprocess.STDOUT,
            )

    def _go(self) -> None:
        """The spare becomes the running process; a new spare starts its imports."""
        spare, self._spare = self._spare, self._spawn()
        assert spare.stdin is not None
        spare.stdin.write(b"go\n")
        spare.stdin.flush()
        with self._lock:
            self._current = spare

    def start(self) -> Supervised:
        self._go()
        self._thread.start()
        return self

    def _watch(self) -> None:
        while not self._stop.is_set():
            with self._lock:
                current = self._current
            if current is not None and current.poll() is not None and not self._stop.is_set():
                self.exits.append(current.returncode)
                self.restarts += 1
                self._go()
            time.sleep(0.01)

    @property
    def pid(self) -> int | None:
        with self._lock:
            return self._current.pid if self._current is not None else None

    def kill(self) -> bool:
        """SIGKILL the running process (the supervisor starts the next one); False when none
        is running (the last one died, the next is not started yet)."""
        with self._lock:
            current = self._current
            if current is None or current.pid in self._killed or current.poll() is not None:
                return False
            os.kill(current.pid, signal.SIGKILL)
            self._killed.add(current.pid)
            return True

    def stop(self) -> None:
        """Stop supervising; end the running process (SIGTERM) and the spare."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(5)
        for proc in (self._current, self._spare):
            if proc is None or proc.poll() is not None:
                continue
            proc.terminate()
            try:
                proc.wait(20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        if self._spare.stdin is not None:
            self._spare.stdin.close()

    def log_text(self) -> str:
        return "".join(p.read_text(errors="replace") for p in self.logs if p.exists())


def start_operator(args: list[str], env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    """One ``smolserve operator ARGS`` process, its output in ``log`` (not restarted)."""
    with log.open("wb") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "smolserve.cli", "operator", *args],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
