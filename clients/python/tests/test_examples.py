"""examples/python/orders.py, run as the README runs it, against a real node."""

import json
import os
import subprocess
import sys

from conftest import ROOT


def run_example(port, state):
    env = dict(os.environ, PYTHONPATH=str(ROOT / "clients" / "python" / "src"))
    out = subprocess.run([sys.executable, str(ROOT / "examples" / "python" / "orders.py"),
                          "--port", str(port), "--state", state, "--orders", "6"],
                         env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


def test_the_order_example_keeps_its_projection_and_checkpoint_across_runs(node, tmp_path):
    state = str(tmp_path / "projection.json")
    # 6 orders, two customers each get orders 0,3 / 1,4 / 2,5; every order
    # gets two items (10 + 20) from two concurrent writers, then is paid.
    assert run_example(node.port, state) == {
        "orders": 6, "revenue": {"customer-0": 60, "customer-1": 60, "customer-2": 60}}
    # A second run resumes the projection from its checkpoint: no event is
    # counted twice, the new orders are added.
    assert run_example(node.port, state)["revenue"] == {
        "customer-0": 120, "customer-1": 120, "customer-2": 120}
    saved = json.load(open(state))
    assert saved["next"] > 0
