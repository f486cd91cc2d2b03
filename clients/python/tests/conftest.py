"""Shared fixtures: the protocol vectors and a real annald on 127.0.0.1.

The node binary is $ANNALD, else build/debug/tools/annald or
build/release/tools/annald of this checkout (scripts/test.sh builds debug)."""

import json
import os
import pathlib
import signal
import subprocess
import sys
import tempfile
import time

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[3]
sys.path.insert(0, str(ROOT / "clients" / "python" / "src"))


def annald_path() -> str:
    if os.environ.get("ANNALD"):
        return os.environ["ANNALD"]
    for build in ("debug", "release"):
        p = ROOT / "build" / build / "tools" / "annald"
        if p.exists():
            return str(p)
    pytest.fail("no annald: build it (scripts/test.sh) or set ANNALD")


@pytest.fixture(scope="session")
def vectors():
    with open(ROOT / "tests" / "vectors" / "protocol.json") as f:
        return json.load(f)["vectors"]


class Node:
    """One annald on a port it picks, data in a temporary directory."""

    def __init__(self, *extra: str):
        self.dir = tempfile.TemporaryDirectory(prefix="annal-py-")
        self.port_file = os.path.join(self.dir.name, "port")
        self.extra = extra
        self.proc = None
        self.port = 0
        self.start()

    def start(self) -> None:
        """Starts annald on the data directory; after a restart, on the same port."""
        if os.path.exists(self.port_file):
            os.remove(self.port_file)
        self.log = open(os.path.join(self.dir.name, "annald.log"), "ab")
        self.proc = subprocess.Popen(
            [annald_path(), "--data", os.path.join(self.dir.name, "data"), "--listen", f"127.0.0.1:{self.port}",
             "--port-file", self.port_file, "--http", "127.0.0.1:0", "--log-level", "warn", *self.extra],
            stdout=self.log, stderr=self.log)
        deadline = time.monotonic() + 30
        while not os.path.exists(self.port_file):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("annald did not start: " + open(self.log.name).read())
            time.sleep(0.02)
        self.port = int(open(self.port_file).read())

    def stop(self, sig: int = signal.SIGTERM) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(sig)
            self.proc.wait(timeout=60)
        self.log.close()

    def close(self) -> None:
        self.stop()
        self.dir.cleanup()


@pytest.fixture
def node():
    n = Node()
    yield n
    n.close()
