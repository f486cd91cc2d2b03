"""/metrics of a real annald, read by the Prometheus project's own text-format
parser (Debian's python3-prometheus-client), checked against a known
workload: every family has HELP and TYPE, names follow the conventions, and
the counters say what was done.

Run by ctest (tests/admin/CMakeLists.txt) with ANNALD and ROOT set."""

import asyncio
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
import unittest
import urllib.error
import urllib.request

from prometheus_client.parser import text_string_to_metric_families

ROOT = os.environ["ROOT"]
sys.path.insert(0, os.path.join(ROOT, "clients", "python", "src"))
from annal import Client, Expected, NewEvent  # noqa: E402


class Node:
    def __init__(self):
        self.dir = tempfile.TemporaryDirectory(prefix="annal-metrics-")
        d = self.dir.name
        self.log = open(os.path.join(d, "annald.log"), "wb")
        self.proc = subprocess.Popen(
            [os.environ["ANNALD"], "--data", os.path.join(d, "data"), "--listen", "127.0.0.1:0",
             "--port-file", os.path.join(d, "port"), "--http", "127.0.0.1:0",
             "--http-port-file", os.path.join(d, "hport"), "--log-level", "warn"],
            stdout=self.log, stderr=self.log)
        deadline = time.monotonic() + 30
        while not (os.path.exists(os.path.join(d, "port")) and os.path.exists(os.path.join(d, "hport"))):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("annald did not start: " + open(self.log.name).read())
            time.sleep(0.02)
        self.port = int(open(os.path.join(d, "port")).read())
        self.http = int(open(os.path.join(d, "hport")).read())

    def get(self, path):
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.http}{path}", timeout=10) as r:
                return r.status, r.headers.get("Content-Type"), r.read().decode()
        except urllib.error.HTTPError as e:
            return e.code, e.headers.get("Content-Type"), e.read().decode()

    def stop(self):
        self.proc.send_signal(signal.SIGTERM)
        self.proc.wait(30)
        self.log.close()
        self.dir.cleanup()


class MetricsFormatTest(unittest.TestCase):
    def setUp(self):
        self.node = Node()

    def tearDown(self):
        self.node.stop()

    def workload(self):
        async def main():
            async with await Client.connect(port=self.node.port) as c:
                for i in range(7):
                    await c.append(f"order-{i % 2}", [NewEvent(type="Placed", data=json.dumps({"i": i}).encode()),
                                                      NewEvent(type="Paid", data=b"{}")], Expected.any())
                for _ in range(3):
                    await c.read_stream("order-0")
                try:
                    await c.append("order-0", [NewEvent(type="X", data=b"{}")], Expected.no_stream())
                except Exception:
                    pass
        asyncio.run(asyncio.wait_for(main(), 60))

    def families(self):
        status, ctype, body = self.node.get("/metrics")
        self.assertEqual(status, 200)
        self.assertTrue(ctype.startswith("text/plain; version=0.0.4"), ctype)
        return body, {f.name: f for f in text_string_to_metric_families(body)}

    def value(self, fams, family, sample, **labels):
        for s in fams[family].samples:
            if s.name == sample and all(s.labels.get(k) == v for k, v in labels.items()):
                return s.value
        self.fail(f"no sample {sample} {labels}")

    def test_the_prometheus_parser_reads_every_family_and_the_counters_match_the_workload(self):
        self.workload()
        body, fams = self.families()
        # Every family has a HELP and a TYPE line, and names are snake_case
        # with base units.
        for name, f in fams.items():
            self.assertRegex(name, r"^[a-z_][a-z0-9_]*$")
            self.assertTrue(f.documentation, name)
            self.assertIn(f.type, ("counter", "gauge", "histogram"), name)
            self.assertNotRegex(name, r"_(ms|milliseconds|us|microseconds|kb|mb)$", name)
        for line in body.splitlines():
            if line.startswith("# TYPE ") and line.endswith(" counter"):
                self.assertTrue(line.split()[2].endswith("_total"), line)
        # The parser drops _total from counter family names.
        self.assertEqual(fams["annal_appends"].type, "counter")
        self.assertEqual(self.value(fams, "annal_appends", "annal_appends_total"), 8)
        self.assertEqual(self.value(fams, "annal_events_appended", "annal_events_appended_total"), 14)
        self.assertEqual(self.value(fams, "annal_requests", "annal_requests_total", op="append"), 8)
        self.assertEqual(self.value(fams, "annal_requests", "annal_requests_total", op="read_stream"), 3)
        self.assertEqual(self.value(fams, "annal_errors", "annal_errors_total", code="wrong_expected_revision"), 1)
        self.assertEqual(fams["annal_append_duration_seconds"].type, "histogram")
        self.assertEqual(self.value(fams, "annal_append_duration_seconds", "annal_append_duration_seconds_count"), 8)
        self.assertEqual(self.value(fams, "annal_append_duration_seconds", "annal_append_duration_seconds_bucket",
                                    le="+Inf"), 8)
        self.assertEqual(self.value(fams, "annal_group_commit_events", "annal_group_commit_events_sum"), 14)
        self.assertEqual(self.value(fams, "annal_durable_end_position", "annal_durable_end_position"), 14)
        self.assertEqual(self.value(fams, "annal_writer_failed", "annal_writer_failed"), 0)
        self.assertGreater(self.value(fams, "annal_disk_free_bytes", "annal_disk_free_bytes"), 0)
        # Buckets are cumulative and end at +Inf = count.
        buckets = [s for s in fams["annal_fdatasync_duration_seconds"].samples if s.name.endswith("_bucket")]
        values = [s.value for s in buckets]
        self.assertEqual(values, sorted(values))
        self.assertEqual(buckets[-1].labels["le"], "+Inf")

    def test_health_and_info_answer_json(self):
        status, ctype, body = self.node.get("/health/ready")
        self.assertEqual(status, 200, body)
        self.assertEqual(json.loads(body)["status"], "ready")
        status, _, body = self.node.get("/api/info")
        self.assertEqual(status, 200)
        info = json.loads(body)
        self.assertEqual(info["writer"], "ok")
        self.assertTrue(re.match(r"annal \d", info["server_version"]), info)


if __name__ == "__main__":
    unittest.main(verbosity=2)
