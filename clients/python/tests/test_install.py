"""The package installs with pip from the checkout (Debian's setuptools as the
build backend, no index needed), typed, and imports from where it went."""

import shutil
import subprocess
import sys

from conftest import ROOT


def test_pip_installs_the_package_with_its_type_marker(tmp_path):
    # From a copy: a build leaves build/ and *.egg-info behind.
    source = tmp_path / "source"
    shutil.copytree(ROOT / "clients" / "python", source,
                    ignore=shutil.ignore_patterns("tests", "build", "*.egg-info", "__pycache__"))
    target = tmp_path / "site"
    out = subprocess.run(
        [sys.executable, "-m", "pip", "install", "--quiet", "--no-build-isolation", "--no-deps",
         "--no-index", "--target", str(target), str(source)],
        capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stdout + out.stderr
    assert (target / "annal" / "py.typed").exists()
    check = subprocess.run([sys.executable, "-c", "import annal, sys; print(annal.__file__)"],
                           env={"PYTHONPATH": str(target)}, capture_output=True, text=True)
    assert check.returncode == 0, check.stderr
    assert check.stdout.startswith(str(target))
