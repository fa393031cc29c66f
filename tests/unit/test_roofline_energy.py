"""Rooflines, energy and cost: figures from measurements or counters, never made up."""

import json
import sys

import pytest

from portable import energy, reference, roofline
from portable.adapter import DeviceInfo
from portable.models.config import active_params_per_token, get_preset, total_params
from portable.records import CellResult, Status


def test_model_cost_from_the_config_through_the_reference_hook(tiny_config):
    config = tiny_config.to_dict()
    one = reference.cost(config, batch=1, seq=1)
    big = reference.cost(config, batch=8, seq=128)
    assert one["flops"] >= 2 * active_params_per_token(tiny_config)
    assert one["bytes"] == 4 * active_params_per_token(tiny_config)  # one token reads its experts
    assert big["bytes"] == 4 * total_params(tiny_config)  # many tokens: every weight, once
    assert big["flops"] > 1024 * one["flops"]  # attention grows with seq²


def test_roofline_fraction_against_a_calibration():
    calibration = {"matmul_flops_per_s": 1e9, "bandwidth_bytes_per_s": 1e9}
    compute = roofline.roofline({"flops": 2e6, "bytes": 1e6}, calibration, p50_ms=4.0)
    assert compute["bound"] == "compute" and compute["roofline_ms"] == pytest.approx(2.0)
    assert compute["fraction"] == pytest.approx(0.5)
    memory = roofline.roofline({"flops": 1e6, "bytes": 3e6}, calibration, p50_ms=3.0)
    assert memory["bound"] == "memory" and memory["fraction"] == pytest.approx(1.0)


def test_calibration_is_cached_per_machine(tmp_path, monkeypatch):
    monkeypatch.setattr(roofline, "cache_path", lambda: tmp_path / "calibration.json")
    assert roofline.load_calibration() is None
    figures = {"machine": roofline.machine_key(), "bandwidth_bytes_per_s": 1e10,
               "matmul_flops_per_s": 1e11}
    roofline.save_calibration(figures)
    assert roofline.load_calibration() == figures
    other = {**figures, "machine": {**figures["machine"], "cpu": "another CPU"}}
    roofline.save_calibration(other)
    assert roofline.load_calibration() is None  # another machine's figures are not ours


def test_annotate_adds_rooflines_or_says_how_to_get_them(tmp_path, monkeypatch):
    monkeypatch.setattr(roofline, "cache_path", lambda: tmp_path / "calibration.json")
    config = get_preset("moe-tiny").to_dict()
    cpu, npu = DeviceInfo("cpu", "a CPU"), DeviceInfo("npu:0", "an NPU")
    cells = [CellResult("ort-cpu", {}, "latency", 1, 8, Status.OK, device=cpu,
                        latency={"p50": 1.0}),
             CellResult("cann", {}, "latency", 1, 8, Status.OK, device=npu,
                        latency={"p50": 1.0}),
             CellResult("ort-cpu", {}, "latency", 1, 8, Status.CRASHED)]
    assert "portable calibrate" in roofline.annotate(cells, config)
    assert roofline.annotate(cells, None) is None  # a user's file: nothing to count from
    roofline.save_calibration({"machine": roofline.machine_key(),
                               "bandwidth_bytes_per_s": 1e10, "matmul_flops_per_s": 1e11})
    assert roofline.annotate(cells, config) is None
    assert cells[0].extras["roofline"]["fraction"] > 0
    assert cells[0].extras["roofline"]["device"] == "cpu"
    # the calibration measured this CPU: an NPU's run is not measured against it
    assert "roofline" not in cells[1].extras and "roofline" not in cells[2].extras


def test_real_measurements_are_plausible():
    assert roofline.measure_bandwidth(megabytes=16, repeats=2) > 1e8  # > 0.1 GB/s
    assert roofline.measure_matmul(n=256, repeats=2) > 1e8  # > 0.1 GFLOP/s


def _zone(root, name, uj, max_uj=10**12):
    zone = root / name
    zone.mkdir(parents=True)
    (zone / "energy_uj").write_text(f"{uj}\n")
    (zone / "max_energy_range_uj").write_text(f"{max_uj}\n")
    return zone


@pytest.fixture
def no_nvml(monkeypatch):
    monkeypatch.setitem(sys.modules, "pynvml", None)  # import fails, as on a machine without it


class FakeNvml:
    """pynvml's calls the meter uses, for two GPUs whose counters advance by 1.5 J and 0.5 J."""

    def __init__(self):
        self.energy_mj = [1000, 2000]
        self.shut_down = False

    def nvmlInit(self):
        pass

    def nvmlDeviceGetCount(self):
        return 2

    def nvmlDeviceGetHandleByIndex(self, index):
        return index

    def nvmlDeviceGetTotalEnergyConsumption(self, handle):
        return self.energy_mj[handle]

    def nvmlShutdown(self):
        self.shut_down = True


def test_rapl_energy_with_wraparound(tmp_path, monkeypatch, no_nvml):
    monkeypatch.setattr(energy, "POWERCAP", tmp_path)
    pkg0 = _zone(tmp_path, "intel-rapl:0", 5_000_000)
    pkg1 = _zone(tmp_path, "intel-rapl:1", 999_000_000, max_uj=1_000_000_000)
    _zone(tmp_path, "intel-rapl:0:0", 0)  # a sub-zone: part of package 0, not added again
    meter = energy.EnergyMeter.start()
    (pkg0 / "energy_uj").write_text("7000000\n")  # +2 J
    (pkg1 / "energy_uj").write_text("1000000\n")  # wrapped: +1 J +1 J
    reading = meter.stop(tokens=400)
    assert reading["available"] and reading["joules"] == pytest.approx(4.0)
    assert reading["joules_per_token"] == pytest.approx(0.01)
    assert "not this process" in reading["source"]


def test_no_counters_is_not_available_with_the_reasons(tmp_path, monkeypatch, no_nvml):
    monkeypatch.setattr(energy, "POWERCAP", tmp_path / "missing")
    reading = energy.EnergyMeter.start().stop(tokens=10)
    assert reading == {"available": False, "reason": reading["reason"]}
    assert "not present" in reading["reason"] and "nvidia-ml-py" in reading["reason"]


def test_nvml_gpu_energy(tmp_path, monkeypatch):
    monkeypatch.setattr(energy, "POWERCAP", tmp_path / "missing")
    nvml = FakeNvml()
    monkeypatch.setitem(sys.modules, "pynvml", nvml)
    meter = energy.EnergyMeter.start()
    nvml.energy_mj = [2500, 2500]
    reading = meter.stop(tokens=100)
    assert reading["available"] and reading["joules"] == pytest.approx(2.0)
    assert reading["source"] == "NVML, 2 GPU(s)" and nvml.shut_down


def test_price_per_hour_gives_cost_per_million_tokens(tmp_path):
    from click.testing import CliRunner
    from onnx_models import multi_input_model

    from portable.cli import cli

    out = tmp_path / "r.json"
    result = CliRunner().invoke(cli, [
        # a model with a sequence: cost is per token
        "bench", "-b", "null", "-o", "delay_ms=1",
        "--model", str(multi_input_model(tmp_path / "m.onnx")),
        "--seq", "4", "--warmup", "1", "--iterations", "5", "--min-duration", "0", "--no-isolate",
        "--price-per-hour", "3.6", "--output", str(out)])
    assert result.exit_code == 0, result.output
    cell = json.loads(out.read_text())["results"][0]
    expected = 3.6 / 3600 / cell["throughput"]["tokens_per_s"] * 1e6
    assert cell["cost"]["per_million_tokens"] == pytest.approx(expected)
    # the run's energy is RAPL's figure on a machine that has it, else "not available"
    assert cell["energy"]["available"] == energy.EnergyMeter.start().available


def test_calibrate_command_measures_once_then_uses_the_cache(tmp_path, monkeypatch):
    from click.testing import CliRunner

    from portable.cli import cli

    monkeypatch.setattr(roofline, "cache_path", lambda: tmp_path / "calibration.json")
    calls = []
    monkeypatch.setattr(roofline, "calibrate", lambda: calls.append(1) or {
        "machine": roofline.machine_key(), "bandwidth_bytes_per_s": 2.5e10,
        "matmul_flops_per_s": 1.5e11})
    first = CliRunner().invoke(cli, ["calibrate"])
    assert first.exit_code == 0 and "memory bandwidth: 25.0 GB/s" in first.stdout
    again = CliRunner().invoke(cli, ["calibrate", "--json"])
    assert json.loads(again.stdout)["matmul_flops_per_s"] == 1.5e11 and len(calls) == 1
    assert CliRunner().invoke(cli, ["calibrate", "--force"]).exit_code == 0 and len(calls) == 2
