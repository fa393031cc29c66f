"""Which plots a report draws: only those the results have data for, split by scenario."""

from helpers import latencies, result_document
from report_docs import generate_document

from portable.report_plots import expert_load_plots, plots, text
from portable.report_tables import runs_of


def _moe_document(num_experts: int, total_params: int, model: str = "moe-tiny"):
    config = {"name": model, "num_experts": num_experts}
    document = result_document({("ort-cpu", 1): latencies(1.0), ("torch", 1): latencies(3.0)},
                               model=model, config=config)
    for cell in document["results"]:
        cell["moe"] = {"total_params": total_params, "active_params_per_token": 1000,
                       "expert_load": [([3, 1, 0, 4] * 32)[:num_experts]] * 2}
        cell["parity"] = {"reference": "golden", "passed": cell["backend"] == "ort-cpu",
                          "max_abs_error": 1e-6 if cell["backend"] == "ort-cpu" else 0.5,
                          "outputs": {"logits": {"tolerance": 1e-4}}}
    return document


def _names(*documents):
    return [p.name for p in plots(runs_of(documents))]


def test_single_run_without_a_sweep_draws_only_the_latency_plot():
    document = result_document({("ort-cpu", 1): latencies(1.0), ("cann", 1): "unavailable"})
    assert _names(document) == ["latency-latency"]


def test_reference_models_get_moe_and_parity_plots():
    small, large = _moe_document(2, 2_000_000), _moe_document(4, 8_000_000, "moe-small")
    assert _names(small, large) == ["latency-latency", "moe_scaling", "expert_load-1",
                                    "expert_load-2", "parity"]
    found = plots(runs_of([small]))
    assert [p.name for p in found] == ["latency-latency", "expert_load-1", "parity"]
    assert all(p.png.startswith(b"\x89PNG") for p in found)


def test_expert_load_is_one_plot_per_model_titled_by_it():
    runs = runs_of([_moe_document(128, 1, "moe-base"), _moe_document(4, 1, "moe-tiny")])
    base, tiny = expert_load_plots(runs)
    assert (base.title, tiny.title) == ("moe-base: MoE expert load", "moe-tiny: MoE expert load")


def test_server_and_latency_runs_are_never_joined_on_one_batch_axis():
    sweep = result_document({("ort-cpu", 1): latencies(1.0), ("ort-cpu", 4): latencies(3.0)})
    server = result_document({("ort-cpu", 1): latencies(1.5)})
    server["settings"]["scenario"] = "server"
    server["results"][0].update(scenario="server", server={
        "rate": 50.0, "p99_bound_ms": 10.0, "verdict": "VALID", "under_bound": True,
        "achieved_rate": 49.0, "p99_ms": 3.0, "invalid_reasons": [],
        "trials": [{"rate": 50.0, "under_bound": True, "verdict": "VALID", "p99_ms": 3.0},
                   {"rate": 400.0, "under_bound": False, "verdict": "INVALID", "p99_ms": 40.0}]})
    assert _names(sweep, server) == ["latency-latency", "throughput-latency", "latency-server",
                                     "server-trials"]


def test_generate_batch_list_draws_the_tokens_per_s_against_tpot_tradeoff():
    document = generate_document({("ort-cpu", 1): (5.0, 1.0), ("ort-cpu", 8): (20.0, 2.0)})
    assert _names(document) == ["latency-generate", "generate-tradeoff"]


def test_text_from_files_is_not_read_as_mathtext():
    assert text("$\\frac{1}{0}$\x1b") == "\\$\\frac{1}{0}\\$\\x1b"
    document = result_document({("$\\undefinedmacro$", 1): latencies(1.0)}, model="$x^$")
    assert plots(runs_of([document]))[0].png.startswith(b"\x89PNG")
