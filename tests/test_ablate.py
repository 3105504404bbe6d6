"""scripts/ablate.py on top of nlu.sweep: its three sweep files make valid runs chained by init,
long inputs keep every word and entity, gaps are judged by the sweeps' noise, and the report renders from
its JSON alone with the sweeps' own figures. (Running and reusing runs is nlu.runs.run's, tested in
test_run_folder; the sweep machinery is test_sweep's.)"""

import json
import statistics
import sys
from pathlib import Path

from nlu.data.ner import NerSentence
from nlu.runs import resolve
from nlu.settings import load_settings
from nlu.sweep import run_overrides, as_overrides

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "scripts"))

import ablate  # noqa: E402


def test_the_sweeps_chain_each_fine_tune_to_its_own_variant_and_seed(tmp_path, monkeypatch):
    monkeypatch.chdir(ROOT)
    full, quick = ablate.sweeps(quick=False), ablate.sweeps(quick=True)
    variants = list(full["pretrain"].rows)
    assert len(variants) == 6 and list(full["ner"].rows) == variants and ablate.REFERENCE in variants
    assert set(full["classify"].rows) == {*variants, *ablate.POOLINGS.values()}
    assert list(quick["ner"].rows) == list(ablate.QUICK_VARIANTS) and quick["ner"].seeds == [1]
    pretrain = resolve(load_settings(full["pretrain"].config, as_overrides(
        run_overrides(full["pretrain"], "rotary + pre-LN", 2, tmp_path)), task="pretrain"))
    assert (pretrain.model["position_encoding"], pretrain.model["norm_placement"]) == ("rotary", "pre")
    assert pretrain.model["max_position_embeddings"] == pretrain.data["max_length"] == ablate.PRETRAIN_LENGTH
    for kind, row in (("ner", "rotary + pre-LN"), ("classify", "rotary + pre-LN"), ("classify", ablate.POOLINGS["mean"])):
        overrides = run_overrides(full[kind], row, 2, tmp_path)
        pretrained_row = "learned_post-LN" if "pooling" in row else "rotary_pre-LN"
        assert overrides["init"] == f"{tmp_path}/ablation_pretrain/{pretrained_row}/seed-2/model"
        assert overrides["data.max_length"] == ablate.PRETRAIN_LENGTH
    assert run_overrides(full["classify"], ablate.POOLINGS["max"], 1, tmp_path)["model.pooling"] == "max"


def test_long_sequences_join_tweets_past_the_target_and_keep_every_word():
    tweets = [NerSentence([f"w{i}"], ["B-person" if i == 2 else "O"], "test.conll", 1 + 2 * i) for i in range(5)]
    # 70 + 70 > 128 closes a sequence; the last remainder (10) joins the one before it.
    joined = ablate.long_sequences(tweets, [70, 70, 70, 70, 10], 128)
    assert [s.words for s in joined] == [["w0", "w1"], ["w2", "w3", "w4"]]
    assert joined[1].tags == ["B-person", "O", "O"] and joined[1].line == 5
    assert [s.words for s in ablate.long_sequences(tweets, [200, 1, 1, 1, 1], 128)] == [["w0", "w1", "w2", "w3", "w4"]]


def test_a_variant_differs_from_berts_only_outside_every_measure_of_noise():
    def difference(mean, low, high, bootstrap=None):
        return {"by_seed": {"mean_difference": mean, "low": low, "high": high, "half_width": (high - low) / 2},
                "bootstrap": bootstrap}
    differences = {"a": difference(0.10, 0.02, 0.18), "b": difference(-0.05, -0.09, -0.01),
                   "c": difference(0.08, 0.01, 0.15, {"mean_difference": 0.08, "low": -0.01, "high": 0.17}),
                   "d": difference(0.01, -0.03, 0.05)}
    assert ablate.against_reference(differences, "max") == (["a (+0.1000)"], ["b (-0.0500)"])  # c: bootstrap holds 0
    assert ablate.against_reference(differences, "min") == (["b (-0.0500)"], ["a (+0.1000)"])
    one_seed = {"a": {"by_seed": {"mean_difference": 0.1, "low": None, "high": None}, "bootstrap": None}}
    assert ablate.against_reference(one_seed, "max") is None
    assert ablate.judged_cell(**differences["c"]) == "+0.0800 ± 0.0700 (outside seed noise, within test-set noise)"


def test_the_stability_section_counts_runs_that_fit_below_the_context_free_loss():
    section = {"context_free_loss": 5.0, "learning_rates": [0.01], "final_losses": {"0.01/post": [5.3, 5.4],
                                                                                   "0.01/pre": [2.1, 4.8]},
               "layers": 6, "hidden": 64, "documents": 120, "vocabulary": "v", "steps": 40, "seeds": [0, 1], "command": "c"}
    assert "| 0.01 | 5.30–5.40 | 2.10–4.80 | 0 / 1 of 2 |" in ablate.stability_lines(section)  # 4.8 > 0.9 × 5.0


def test_the_committed_report_renders_from_its_json_with_the_sweeps_figures():
    result = json.loads((ROOT / "reports" / "ablation.json").read_text())
    text = ablate.render(result)
    ner = json.loads((ROOT / "reports" / "ablation_ner" / "sweep.json").read_text())
    for variant, entry in ner["rows"].items():
        values = [run["figures"]["test_f1"] for run in entry["runs"]]
        assert f"| {variant}{' (BERT)' if variant == ablate.REFERENCE else ''} | " in text
        assert f"{statistics.mean(values):.4f} ± {statistics.stdev(values):.4f}" in text
    classify = json.loads((ROOT / "reports" / "ablation_classify" / "sweep.json").read_text())
    mean_pooling = [run["figures"]["test_macro_f1"] for run in classify["rows"][ablate.POOLINGS["mean"]]["runs"]]
    assert f"| mean | {statistics.mean(mean_pooling):.4f} ± {statistics.stdev(mean_pooling):.4f} |" in text
    assert result["command"] in text and "## Recommendation" in text
    assert text.count("\n| ") > 20  # every table rendered: variants, pooling, long inputs, stability
