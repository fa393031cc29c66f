"""`--dispatch fused` from the command line, and a cached preset resolved without torch."""

import json
import os
import subprocess
import sys

from click.testing import CliRunner

from portable.cli import cli

FAST = ["--warmup", "1", "--iterations", "3", "--min-duration", "0", "--seq", "8"]


def test_bench_fused_on_ort_and_torch_with_parity_and_moe_figures(tiny_cache, tmp_path):
    result = CliRunner().invoke(cli, ["bench", "-b", "cpu", "-b", "torch", "--dispatch", "fused",
                                      "--json", "--no-isolate", "--output", str(tmp_path),
                                      *FAST])
    assert result.exit_code == 0, result.output
    document = json.loads(result.stdout)
    assert document["model"]["config"]["dispatch"] == "fused"
    for cell in document["results"]:
        assert cell["status"] == "ok", cell["error"]
        assert cell["parity"]["passed"]
        assert sum(cell["moe"]["expert_load"][0]) == 8 * document["model"]["config"]["top_k"]


def test_a_cached_preset_resolves_without_importing_torch(tiny_export, tiny_cache):
    code = (
        "import sys\n"
        "from portable.modelsource import resolve\n"
        "source = resolve('moe-tiny')\n"
        "assert 'torch' not in sys.modules, 'torch was imported'\n"
        "print(source.path)\n"
    )
    env = {**os.environ, "PORTABLE_CACHE": str(tiny_cache)}
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == str(tiny_export.onnx_path)
