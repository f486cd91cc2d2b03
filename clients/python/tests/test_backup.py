"""Online backup (protocol v6) against a real annald: a backup taken while
appends go on holds every acknowledged event below its position, and the
node refuses a relative or non-empty destination with a clear error."""

import asyncio
import json
import os
import signal
import subprocess
import tempfile
import time

import pytest

from annal import AnnalError, BackupResult, Client, Code, NewEvent, SyncClient
from conftest import annald_path


def run(coro):
    return asyncio.run(asyncio.wait_for(coro, 120))


def start_node_on(data: str, work: str):
    """annald on an existing data directory (the backup), 127.0.0.1, a port it picks."""
    port_file = os.path.join(work, "copy.port")
    log = open(os.path.join(work, "copy.log"), "ab")
    proc = subprocess.Popen([annald_path(), "--data", data, "--listen", "127.0.0.1:0",
                             "--port-file", port_file, "--log-level", "warn"],
                            stdout=log, stderr=log)
    deadline = time.monotonic() + 30
    while not os.path.exists(port_file):
        assert proc.poll() is None and time.monotonic() < deadline, open(log.name).read()
        time.sleep(0.02)
    return proc, int(open(port_file).read()), log


def ev(n):
    return NewEvent(type="Tick", data=json.dumps({"n": n}).encode())


def test_a_backup_during_appends_holds_every_event_below_its_position(node):
    out = tempfile.TemporaryDirectory(prefix="annal-py-backup-")

    async def main():
        async with await Client.connect(port=node.port) as c:
            acked = []
            stop = asyncio.Event()

            async def writer(w):
                k = 0
                while not stop.is_set():
                    r = await c.append(f"w{w}", [ev(k)])
                    acked.append((r.first_position, f"w{w}", k))
                    k += 1

            writers = [asyncio.create_task(writer(w)) for w in range(3)]
            while len(acked) < 200:
                await asyncio.sleep(0.01)
            dest = os.path.join(out.name, "bk")
            b = await c.backup(dest)
            stop.set()
            await asyncio.gather(*writers)
            assert isinstance(b, BackupResult)
            assert b.dest == os.path.realpath(dest) and b.note == "" and b.linked == 0
            assert b.position > 0 and b.files >= 1 and b.bytes > 0
            manifest = json.load(open(os.path.join(dest, "MANIFEST")))
            assert manifest["position"] == b.position
            assert len(manifest["files"]) == b.files
            return b.position, acked

    position, acked = run(main())
    # The backup is a data directory: a node started on it has exactly the
    # events below the position.
    proc, port, log = start_node_on(os.path.join(out.name, "bk"), out.name)
    try:
        with SyncClient.connect(port=port) as c:
            assert c.info()["durable_end"] == position
            for pos, stream, k in acked:
                page = c.read_all(pos, 1)
                if pos < position:
                    assert [json.loads(e.data)["n"] for e in page.events] == [k]
                    assert page.events[0].stream == stream
                else:
                    assert page.events == []
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=60)
        log.close()
        out.cleanup()


def test_backup_refuses_a_relative_or_non_empty_destination(node):
    out = tempfile.TemporaryDirectory(prefix="annal-py-backup-")
    try:
        with SyncClient.connect(port=node.port) as c:
            c.append("s", [ev(1)])
            with pytest.raises(AnnalError) as e:
                c.backup("relative/bk")
            assert e.value.code == Code.INVALID_ARGUMENT and "absolute" in str(e.value)
            open(os.path.join(out.name, "x"), "w").close()
            with pytest.raises(AnnalError) as e:
                c.backup(out.name)
            assert e.value.code == Code.ALREADY_EXISTS and "not empty" in str(e.value)
    finally:
        out.cleanup()
