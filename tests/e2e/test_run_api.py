"""The README's three-line script runs a matrix through the core pipeline, as written."""

import re
import subprocess
import sys
from pathlib import Path

README = Path(__file__).resolve().parents[2] / "README.md"


def test_the_readme_script_runs_as_a_plain_script(tmp_path, tiny_export):
    block = re.search(r"three lines:\n\n```python\n(.*?)```", README.read_text(), re.S)
    assert block, "the README shows the three-line script"
    script = tmp_path / "matrix.py"  # no `if __name__ == "__main__"` guard, as users write
    script.write_text(block.group(1))
    assert len(block.group(1).strip().splitlines()) == 3
    done = subprocess.run([sys.executable, str(script)], capture_output=True, text=True,
                          timeout=300, cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-2000:]
    code, p50s = done.stdout.split(" ", 1)
    assert code == "0" and p50s.count(",") == 1  # one p50 per backend
