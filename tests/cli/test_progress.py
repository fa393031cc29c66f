"""Progress goes to stderr: a bar on a terminal, plain lines otherwise, nothing under --json."""

import io
import json

from click.testing import CliRunner
from helpers import add_model
from rich.console import Console

import portable.commands
from portable.cli import cli


def _bench(tmp_path, *extra):
    return CliRunner().invoke(cli, [
        "bench", "-b", "null", "--model", str(add_model(tmp_path / "a.onnx")),
        "--scenario", "throughput", "--batch", "1,2", "--warmup", "0", "--iterations", "2",
        "--min-duration", "0", "--no-isolate", "--output", str(tmp_path / "r.json"), *extra])


def test_plain_lines_when_stderr_is_not_a_terminal(tmp_path):
    result = _bench(tmp_path)
    assert result.exit_code == 0
    assert "bench null · a · batch 1 × seq 128 ..." in result.stderr
    assert "bench null · a · batch 2 × seq 128 ..." in result.stderr


def test_silent_under_json(tmp_path):
    result = _bench(tmp_path, "--json")
    assert result.exit_code == 0
    assert "bench null" not in result.stderr
    assert json.loads(result.stdout)["settings"]["batches"] == [1, 2]  # stdout stays pure JSON


def test_a_bar_on_a_terminal(monkeypatch):
    screen = io.StringIO()
    terminal = Console(file=screen, force_terminal=True, width=100)
    monkeypatch.setattr(portable.commands, "Console", lambda **_: terminal)
    with portable.commands.progress_bar(2) as advance:
        advance("null · batch 1")
        advance("null · batch 2")
    shown = screen.getvalue()
    assert "null · batch 2" in shown and "2/2" in shown and "━" in shown
