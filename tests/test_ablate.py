"""scripts/ablate.py on top of nlu.runs: every run it plans is valid settings, long inputs keep
every word and entity, ties are judged by the spread, and the report renders from its JSON alone.
(Running, reusing and resuming the planned runs is nlu.runs.run's, tested in test_run_folder.)"""

import json
import statistics
import sys
from pathlib import Path

from nlu.data.ner import NerSentence
from nlu.runs import resolve
from nlu.settings import load_settings

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "scripts"))

import ablate  # noqa: E402


def test_every_planned_run_is_valid_settings_in_its_own_folder(tmp_path):
    args = ablate.parse_args(["--quick", "--runs", str(tmp_path)])
    args.data = {"pretrain": [], "ner": [], "classify": []}
    stages = ablate.plan(args, "rotary-pre", 1, tmp_path / "tokenizer")
    assert set(stages) == {"pretrain", "ner", "classify", "classify-mean", "classify-max"}
    resolved = {name: resolve(load_settings(ablate.TASKS[task], overrides, task=task))
                for name, (task, overrides) in stages.items()}
    for name, settings in resolved.items():
        assert settings.training.output_dir == str(tmp_path / "rotary-pre-seed1" / name)
        assert settings.data["max_length"] == 64 and settings.training.seed == 1 and settings.training.progress is False
    model = resolved["pretrain"].model
    assert (model["position_encoding"], model["norm_placement"], model["max_position_embeddings"]) == ("rotary", "pre", 64)
    assert resolved["pretrain"].training.max_steps == 6 and resolved["ner"].training.max_steps == 6
    assert resolved["classify-mean"].model == {"pooling": "mean"} and resolved["classify"].model == {}
    assert resolved["classify"].init == str(tmp_path / "rotary-pre-seed1" / "pretrain" / "model")


def test_long_sequences_join_tweets_past_the_target_and_keep_every_word():
    tweets = [NerSentence([f"w{i}"], ["B-person" if i == 2 else "O"], "test.conll", 1 + 2 * i) for i in range(5)]
    # 70 + 70 > 128 closes a sequence; the last remainder (10) joins the one before it.
    joined = ablate.long_sequences(tweets, [70, 70, 70, 70, 10], 128)
    assert [s.words for s in joined] == [["w0", "w1"], ["w2", "w3", "w4"]]
    assert joined[1].tags == ["B-person", "O", "O"] and joined[1].line == 5
    assert [s.words for s in ablate.long_sequences(tweets, [200, 1, 1, 1, 1], 128)] == [["w0", "w1", "w2", "w3", "w4"]]


def test_ties_are_gaps_within_the_larger_std():
    entries = {"a": {"mean": 0.50, "std": 0.10}, "b": {"mean": 0.45, "std": 0.02}, "c": {"mean": 0.20, "std": 0.05}}
    assert ablate.ranking(entries, "max") == ("a", ["b"])  # 0.05 <= 0.10
    assert ablate.ranking(entries, "min") == ("c", [])  # 0.25 > 0.05
    assert ablate.ranking({"a": {"mean": 0.5, "std": None}, "b": {"mean": 0.4, "std": None}}, "max") == ("a", [])


def test_the_stability_section_counts_runs_that_fit_below_the_context_free_loss():
    section = {"context_free_loss": 5.0, "learning_rates": [0.01], "final_losses": {"0.01/post": [5.3, 5.4],
                                                                                   "0.01/pre": [2.1, 4.8]},
               "layers": 6, "hidden": 64, "documents": 120, "vocabulary": "v", "steps": 40, "seeds": [0, 1], "command": "c"}
    assert "| 0.01 | 5.30–5.40 | 2.10–4.80 | 0 / 1 of 2 |" in ablate.stability_lines(section)  # 4.8 > 0.9 × 5.0


def test_the_committed_report_renders_from_its_json_with_figures_computed_from_the_runs():
    result = json.loads((ROOT / "reports" / "ablation.json").read_text())
    text = ablate.render(result)
    for variant in result["settings"]["variants"]:
        values = [run["ner_f1"] for run in result["ner"] if run["variant"] == variant]
        assert f"{statistics.mean(values):.4f} ± {statistics.stdev(values):.4f}" in text
    mean_pooling = [r["classify_macro_f1"] for r in result["classify"] if r["pooling"] == "mean"]
    assert f"| mean | {statistics.mean(mean_pooling):.4f} ± {statistics.stdev(mean_pooling):.4f} |" in text
    assert result["command"] in text and "## Recommendation" in text
    assert text.count("\n| ") > 30  # every table rendered: variants, pooling, long inputs, per run
