"""`--cluster` and `--cluster-resources`: bad values are usage errors before anything runs.

The address given is one where nothing listens: none of these may get as far as connecting.
"""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from portable.cli import cli

NOWHERE = ("--cluster", "127.0.0.2:1")


@pytest.mark.parametrize(("args", "message"), [
    (["--cluster-resources", "null={\"NPU\": 1}"], "--cluster-resources needs --cluster"),
    ([*NOWHERE, "--no-isolate"], "drop --no-isolate"),
    ([*NOWHERE, "--cluster-resources", "null={\"NPU\":"], "not JSON"),
    ([*NOWHERE, "--cluster-resources", "null=[1]"], "expected BACKEND="),
    ([*NOWHERE, "--cluster-resources", "null={\"NPU\": -1}"], "expected BACKEND="),
    ([*NOWHERE, "--cluster-resources", "{\"NPU\": 1}"], "expected BACKEND="),
    ([*NOWHERE, "--cluster-resources", "nope={\"NPU\": 1}"], "nope"),
    ([*NOWHERE, "--cluster-resources", "cpu={\"NPU\": 1}"],
     "cpu is not a --backend"),
    (["--cluster", "nowhere"], "expected auto, HOST:PORT or ray://HOST:PORT"),
])
def test_bad_cluster_options_are_usage_errors(args, message, tiny_export, tmp_path):
    result = CliRunner().invoke(cli, ["bench", "-b", "null", "--model", "moe-tiny",
                                      "--output", str(tmp_path / "r.json"), *args])
    assert result.exit_code == 2, result.output
    assert message in result.output
