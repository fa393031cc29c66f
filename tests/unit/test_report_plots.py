"""Which plots a report draws: only those the results have data for."""

from helpers import latencies, result_document

from portable.report import plots, render_html, rows


def _moe_document(num_experts: int, total_params: int):
    config = {"name": "moe-tiny", "num_experts": num_experts}
    document = result_document({("ort-cpu", 1): latencies(1.0), ("torch", 1): latencies(3.0)},
                               model="moe-tiny", config=config)
    for cell in document["results"]:
        cell["moe"] = {"total_params": total_params, "active_params_per_token": 1000,
                       "expert_load": [[3, 1, 0, 4][:num_experts]] * 2}
        cell["parity"] = {"reference": "golden", "passed": cell["backend"] == "ort-cpu",
                          "max_abs_error": 1e-6 if cell["backend"] == "ort-cpu" else 0.5,
                          "outputs": {"logits": {"tolerance": 1e-4}}}
    return document


def test_single_run_without_a_sweep_draws_only_the_latency_plot():
    document = result_document({("ort-cpu", 1): latencies(1.0), ("cann", 1): "unavailable"})
    assert [p.name for p in plots([document])] == ["latency"]
    assert rows([document])[1][-1] == "unavailable: unavailable"


def test_reference_models_get_moe_and_parity_plots():
    small, large = _moe_document(2, 2_000_000), _moe_document(4, 8_000_000)
    names = [p.name for p in plots([small, large])]
    assert names == ["latency", "moe_scaling", "expert_load", "parity"]
    assert [p.name for p in plots([small])] == ["latency", "expert_load", "parity"]
    assert all(p.png.startswith(b"\x89PNG") for p in plots([small]))


def test_html_escapes_what_it_shows():
    document = result_document({("<script>", 1): "crashed"})
    page = render_html([document], [])
    assert "<script>" not in page and "&lt;script&gt;" in page
