"""The wheel installs `backends` and `models` inside the portable namespace, with entry points."""

import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_wheel_installs_namespaced_packages(tmp_path):
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
         "-w", str(tmp_path / "dist"), str(ROOT)],
        check=True, capture_output=True,
    )
    wheel = next((tmp_path / "dist").glob("portable-*.whl"))
    names = zipfile.ZipFile(wheel).namelist()
    assert "portable/backends/ort_cpu.py" in names
    assert "portable/models/moe.py" in names
    assert not any(n.startswith(("backends/", "models/", "tests/")) for n in names)

    target = tmp_path / "site"
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "--no-deps", "-q", "--target", str(target),
         str(wheel)],
        check=True, capture_output=True,
    )
    code = (
        "import sys; sys.path.insert(0, sys.argv[1])\n"
        "import portable.backends.ort_cpu as b, portable.models.config as m\n"
        "assert b.__file__.startswith(sys.argv[1]) and m.__file__.startswith(sys.argv[1])\n"
        "from portable import registry\n"
        "print(registry.create('cpu').probe().device)\n"
    )
    proc = subprocess.run([sys.executable, "-c", code, str(target)], cwd=tmp_path,
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "cpu"
