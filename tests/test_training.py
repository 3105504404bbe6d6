"""The training loop end to end: loss falls, a killed run resumes exactly, two processes run."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from nlu.data.corpus import read_documents
from nlu.settings import load_settings
from nlu.tasks import pretrain
from nlu.tokenizer import save_tokenizer, train_tokenizer
from nlu.training.loop import EpochSampler, linear_warmup_decay, parameter_groups

ROOT = Path(__file__).resolve().parents[1]
NEWS = ROOT / "data" / "corpus" / "news.txt"


def write_corpus(path: Path, documents) -> Path:
    path.write_text("\n\n".join("\n".join(d.sentences) for d in documents) + "\n")
    return path


@pytest.fixture(scope="module")
def small_corpus(tmp_path_factory):
    """80 real news articles for training, 20 held out, and a tokenizer trained on them."""
    folder = tmp_path_factory.mktemp("corpus")
    documents = read_documents([NEWS])
    train = write_corpus(folder / "train.txt", documents[:80])
    heldout = write_corpus(folder / "heldout.txt", documents[80:100])
    save_tokenizer(train_tokenizer([train], vocab_size=2000), folder / "tokenizer")
    return {"train": train, "heldout": heldout, "tokenizer": folder / "tokenizer"}


def overrides(corpus, output_dir, **extra):
    options = {
        "model.hidden_size": 32, "model.num_layers": 1, "model.num_heads": 2, "model.intermediate_size": 64,
        "model.max_position_embeddings": 64, "data.max_length": 64,
        "data.train_files": f"[{corpus['train']}]", "data.heldout_files": f"[{corpus['heldout']}]",
        "data.tokenizer": corpus["tokenizer"], "training.output_dir": output_dir, "training.batch_size": 16,
        "training.learning_rate": 2e-3, "training.log_every": 5, "training.save_every": 5,
        "training.warmup_ratio": 0.1, "training.cpu": True, **extra,
    }
    return [f"{key}={value}" for key, value in options.items()]


def test_sampler_is_a_seeded_permutation_per_epoch():
    sampler = EpochSampler(50, seed=3)
    first = list(sampler)
    assert sorted(first) == list(range(50)) and list(sampler) == first
    sampler.set_epoch(1)
    assert list(sampler) != first


def test_schedule_warms_up_then_decays_linearly():
    factor = linear_warmup_decay(total_steps=10, warmup_steps=2)
    assert [round(factor(step), 3) for step in range(10)] == [0.5, 1.0, 1.0, 0.875, 0.75, 0.625, 0.5, 0.375, 0.25, 0.125]


def test_no_weight_decay_on_biases_and_layer_norms(tiny_config):
    from nlu.model import ForPreTraining

    model = ForPreTraining(tiny_config)
    decay, no_decay = parameter_groups(model, 0.01)
    names = {id(p): n for n, p in model.named_parameters()}
    assert all(names[id(p)].endswith("weight") and p.ndim == 2 for p in decay["params"])
    assert {names[id(p)] for p in no_decay["params"]} >= {"encoder.embeddings.norm.weight", "mlm_head.bias"}


@pytest.mark.slow
def test_pretraining_loss_falls_below_the_start(small_corpus, tmp_path):
    settings = load_settings(ROOT / "tasks" / "pretrain_news.yaml",
                             overrides(small_corpus, tmp_path / "run", **{"training.max_steps": 200,
                                                                          "training.eval_every": 100}))
    summary = pretrain.run(settings)
    log = [json.loads(line) for line in (tmp_path / "run" / "log.jsonl").read_text().splitlines()]
    train_losses = [record["mlm_loss"] for record in log if record["split"] == "train"]
    assert train_losses[-1] < train_losses[0] - 1.0, train_losses
    evaluations = summary["evaluations"]
    assert evaluations[-1]["mlm_loss"] < evaluations[0]["mlm_loss"]
    assert (tmp_path / "run" / "model" / "model.safetensors").is_file()
    assert (tmp_path / "run" / "pretraining.md").read_text().count("MLM loss") >= 2


def run_cli(arguments, **kwargs):
    return subprocess.Popen([sys.executable, "-m", "nlu.cli", "pretrain", "--config",
                             str(ROOT / "tasks" / "pretrain_news.yaml"), *arguments],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, **kwargs)


@pytest.mark.slow
def test_killed_run_resumes_to_the_same_weights(small_corpus, tmp_path):
    steps = {"training.max_steps": 40, "training.eval_every": 20}
    reference = run_cli(overrides(small_corpus, tmp_path / "whole", **steps))
    assert reference.wait(timeout=300) == 0, reference.stderr.read()

    interrupted = run_cli(overrides(small_corpus, tmp_path / "killed", **steps))
    checkpoints = tmp_path / "killed" / "checkpoints"
    deadline = time.time() + 240
    while not list(checkpoints.glob("step-00000015")) and time.time() < deadline:
        time.sleep(0.05)
    interrupted.send_signal(signal.SIGKILL)
    interrupted.wait()
    assert not (tmp_path / "killed" / "model").exists(), "the run finished before it could be killed"
    resumed = run_cli(overrides(small_corpus, tmp_path / "killed", **steps))
    assert resumed.wait(timeout=300) == 0, resumed.stderr.read()

    whole = load_file(str(tmp_path / "whole" / "model" / "model.safetensors"))
    killed = load_file(str(tmp_path / "killed" / "model" / "model.safetensors"))
    assert whole.keys() == killed.keys()
    for name in whole:
        torch.testing.assert_close(killed[name], whole[name], rtol=0, atol=1e-6, msg=name)
    steps_logged = [json.loads(line)["step"] for line in (tmp_path / "killed" / "log.jsonl").read_text().splitlines()]
    assert steps_logged == sorted(steps_logged) and steps_logged[-1] == 40


@pytest.mark.slow
def test_two_processes_with_torchrun(small_corpus, tmp_path):
    environment = {**os.environ, "OMP_NUM_THREADS": "1"}
    process = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "-m", "nlu.cli", "pretrain",
         "--config", str(ROOT / "tasks" / "pretrain_news.yaml"),
         *overrides(small_corpus, tmp_path / "ddp", **{"training.max_steps": 10, "training.eval_every": 10})],
        capture_output=True, text=True, timeout=300, env=environment,
    )
    assert process.returncode == 0, process.stderr[-3000:]
    summary = json.loads((tmp_path / "ddp" / "pretraining.json").read_text())
    assert summary["processes"] == 2 and summary["steps"] == 10
    assert torch.isfinite(torch.tensor(summary["final_eval"]["mlm_loss"]))

    # Fine-tuning on two processes: the test set is scored and the reports written once, by the main process.
    wnut = ROOT / "data" / "ner" / "wnut16"
    process = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "-m", "nlu.cli", "finetune", "ner",
         "--config", str(ROOT / "tasks" / "wnut16_ner.yaml"), f"init={tmp_path / 'ddp' / 'model'}",
         f"data.train={wnut / 'dev.conll'}", f"data.dev={wnut / 'dev.conll'}", f"data.test={wnut / 'dev.conll'}",
         f"training.output_dir={tmp_path / 'ner'}", "training.max_steps=4", "training.eval_every=4",
         "training.cpu=true"],
        capture_output=True, text=True, timeout=300, env=environment,
    )
    assert process.returncode == 0, process.stderr[-3000:]
    assert process.stdout.count('"test_f1"') == 1  # one summary, printed by the main process
    summary = json.loads((tmp_path / "ner" / "summary.json").read_text())
    assert summary["steps"] == 4 and 0 <= summary["test_f1"] <= 1
    assert (tmp_path / "ner" / "test" / "report.md").is_file()
