"""The training loop: loss falls, a killed run resumes exactly, two processes run; the step
reads nothing from the device, evaluation cadence adapts to the data size, precision is chosen
from the hardware and recorded, progress is a setting."""

import json
import os
import re
import signal
import subprocess
import sys
import time
import warnings
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from nlu.data.ner import read_ner_file
from nlu.config import EncoderConfig
from nlu.data.corpus import read_documents
from nlu.errors import ConfigError, DataError
from nlu.model import ForPreTraining, ForSequenceClassification
from nlu.runs import resolve
from nlu.settings import load_settings
from nlu.tasks import pretrain
from nlu.tasks.finetune import early_stop, pad_batch, supervised_step
from nlu.tasks.pretrain import PretrainingTask
from nlu.tokenizer import load_tokenizer, save_tokenizer, train_tokenizer
from nlu.training import loop
from nlu.training.config import TrainingConfig
from nlu.training.loop import EpochSampler, linear_warmup_decay, parameter_groups, train

ROOT = Path(__file__).resolve().parents[1]
NEWS = ROOT / "data" / "corpus" / "news.txt"


class ScriptedTask:
    """A tiny sequence classifier for loop tests: real batches, real losses, and a dev metric
    that follows ``scores`` (one value per evaluation) so that selection and stopping can be
    checked against hand-counted steps. ``losses`` records every micro-batch's loss when asked."""

    sampling_weights = None

    def __init__(self, scores=None, record_losses=False):
        self.scores, self.record_losses = scores, record_losses
        self.evaluations, self.losses, self.tokens = 0, [], 0

    def collate(self, examples):
        return pad_batch(examples, pad_token_id=0)

    def set_epoch(self, epoch):
        pass

    def training_step(self, model, batch):
        loss, figures = supervised_step(model, batch)
        if self.record_losses:
            self.losses.append(loss.item())
            self.tokens += int(batch["attention_mask"].sum())
        return loss, figures

    def evaluate(self, model):
        value = self.scores[self.evaluations] if self.scores else 0.5
        self.evaluations += 1
        return {"f1": value}

    def save_artifacts(self, directory):
        pass


def scripted_examples(count: int) -> list[dict]:
    """``count`` examples of 3–8 tokens with a learnable label (whether token 5 occurs)."""
    generator = torch.Generator().manual_seed(1)
    examples = []
    for _ in range(count):
        ids = torch.randint(1, 20, (int(torch.randint(3, 9, (1,), generator=generator)),), generator=generator).tolist()
        examples.append({"input_ids": ids, "token_type_ids": [0] * len(ids), "label": int(5 in ids)})
    return examples


def scripted_model(dropout: float = 0.1) -> ForSequenceClassification:
    torch.manual_seed(0)
    return ForSequenceClassification(EncoderConfig(
        vocab_size=20, hidden_size=16, num_layers=1, num_heads=2, intermediate_size=32, max_position_embeddings=16,
        hidden_dropout=dropout, attention_dropout=dropout, labels=["no", "yes"]))


def scripted_config(output_dir, **options) -> TrainingConfig:
    """2 examples per batch; ``examples``/2 steps per epoch. Selection: f1, higher is better."""
    defaults = dict(output_dir=str(output_dir), batch_size=2, learning_rate=1e-2, warmup_ratio=0.0, cpu=True,
                    log_every=1000, save_every=1000, select_metric="f1", select_mode="max", progress=False,
                    mixed_precision="no")
    return TrainingConfig(**{**defaults, **options})


def scripted_run(output_dir, examples=24, scores=None, record_losses=False, **options):
    task = ScriptedTask(scores, record_losses)
    result = train(task, scripted_model(), scripted_examples(examples), scripted_config(output_dir, **options))
    return result, task


def read_log(output_dir) -> list[dict]:
    return [json.loads(line) for line in (Path(output_dir) / "log.jsonl").read_text().splitlines()]


def test_evaluation_warnings_are_said_with_their_step_and_kept_across_a_resume(tmp_path):
    """The summary counts collapsed evaluations from the history, which a resumed run restores."""
    class Warned(ScriptedTask):
        def evaluate(self, model):
            scores = super().evaluate(model)
            return scores | ({"warning": "predicts only 'no'"} if scores["f1"] == 0 else {})

    options = dict(eval_every=2, save_every=4)
    with pytest.warns(UserWarning, match=r"^dev evaluation at step 2: predicts only 'no' \(the run's summary says"):
        train(Warned([0.0, 0.5]), scripted_model(), scripted_examples(24), scripted_config(tmp_path, max_steps=4, **options))
    with pytest.warns(UserWarning, match=r"^dev evaluation at step 6: predicts only 'no'"):
        result = train(Warned([0.0, 0.6]), scripted_model(), scripted_examples(24),
                       scripted_config(tmp_path, max_steps=8, **options))  # resumed at step 4
    assert [(entry["step"], entry.get("warning")) for entry in result.state.history] == [
        (2, "predicts only 'no'"), (4, None), (6, "predicts only 'no'"), (8, None)]
    assert [entry.get("warning") for entry in read_log(tmp_path) if entry["split"] == "eval"] == [
        "predicts only 'no'", None, "predicts only 'no'", None]


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """Tiny models on a shared 2-core host: one intra-op thread is ~10× faster than two that wait
    for each other."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


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
    model = ForPreTraining(tiny_config)
    decay, no_decay = parameter_groups(model, 0.01)
    names = {id(p): n for n, p in model.named_parameters()}
    assert all(names[id(p)].endswith("weight") and p.ndim == 2 for p in decay["params"])
    assert {names[id(p)] for p in no_decay["params"]} >= {"encoder.embeddings.norm.weight", "mlm_head.bias"}


def test_eval_every_takes_steps_or_a_share_of_an_epoch():
    interval = lambda value: TrainingConfig(eval_every=value).eval_interval(steps_per_epoch=12)  # noqa: E731
    assert [interval(v) for v in (0, 5, "30 steps", "0.5 epoch", "1 epoch", "2 epochs", ".1 epoch")] == \
        [12, 5, 30, 6, 12, 24, 1]
    for bad in ("half", -1, True, 0.5, "0 epochs", "1.5 steps"):
        with pytest.raises(ConfigError, match="training.eval_every must be a number of steps"):
            TrainingConfig(eval_every=bad)


def test_mixed_precision_no_read_by_yaml_as_false_means_fp32():
    assert TrainingConfig(mixed_precision=False).mixed_precision == "no"
    settings = load_settings(None, ["task=ner", "training.mixed_precision=no"])
    assert settings.training.mixed_precision == "no"
    with pytest.raises(ConfigError, match="training.mixed_precision must be auto, no, bf16, fp16; got 'fp8'"):
        TrainingConfig(mixed_precision="fp8")
    assert [TrainingConfig(mixed_precision=word).mixed_precision for word in ("off", "false", "fp32")] == ["no"] * 3


def test_a_refused_choice_names_where_it_was_written(tmp_path):
    """The dataclasses' own checks name the option; the settings layer puts its file:line (or the
    command line) in front, as it does for a value of the wrong type."""
    task = tmp_path / "task.yaml"
    task.write_text("task: ner\ndata:\n  scheme: iob3\n  mode: strict\ntraining:\n  mixed_precision: fp8\n")
    with pytest.raises(ConfigError, match=rf"^{task}:6: training.mixed_precision must be auto, no, bf16, fp16; got 'fp8'$"):
        load_settings(task)
    with pytest.raises(ConfigError, match=rf"^{task}:3: data.scheme must be one of iob2, iob1; got 'iob3'$"):
        resolve(load_settings(task, ["training.mixed_precision=no"]))
    with pytest.raises(ConfigError, match=r"^command line: data.scheme must be one of iob2, iob1; got 'iob4'$"):
        resolve(load_settings(task, ["training.mixed_precision=no", "data.scheme=iob4"]))


def test_early_stopping_waits_while_the_metric_is_at_its_floor(tmp_path):
    """The issue's small-data case: 12 steps per epoch, 10 epochs, an evaluation per epoch, patience 3,
    and a dev F1 of 0 for the first four evaluations. Those used to count (stop at step 48 of 120
    with F1 0); now counting starts once F1 has left 0: best 0.3 at step 72, no better at 84, 96,
    108 → stop at 108."""
    result, task = scripted_run(tmp_path / "run", examples=24, epochs=10, early_stopping_patience=3,
                                scores=[0, 0, 0, 0, 0.2, 0.3, 0.3, 0.3, 0.3, 0.3])
    assert [entry["step"] for entry in result.state.history] == [12, 24, 36, 48, 60, 72, 84, 96, 108]
    assert (result.state.step, result.state.stopped_early, result.state.best_step) == (108, True, 72)
    training = TrainingConfig(early_stopping_patience=3, select_metric="f1")
    assert early_stop(result, training) == {"early stopping": "stopped at step 108: no better dev f1 in 3 evaluations "
                                                              "(training.early_stopping_patience); the model kept is "
                                                              "step 72's"}
    result.state.stopped_early = False  # a run that took its planned steps says nothing
    assert early_stop(result, training) == {}


def test_early_stopping_never_before_min_epochs(tmp_path):
    """Evaluations every half epoch (6 steps), patience 2: without a minimum the run stops at step 18
    (best at 6, none better at 12 and 18); min_epochs=3 holds it to step 36."""
    scores = [0.5] + [0.4] * 9
    result, _ = scripted_run(tmp_path / "short", epochs=10, eval_every="0.5 epoch", early_stopping_patience=2,
                             min_epochs=0, scores=scores)
    assert [entry["step"] for entry in result.state.history] == [6, 12, 18] and result.state.stopped_early
    result, _ = scripted_run(tmp_path / "held", epochs=10, eval_every="0.5 epoch", early_stopping_patience=2,
                             min_epochs=3, scores=scores)
    assert [entry["step"] for entry in result.state.history] == [6, 12, 18, 24, 30, 36] and result.state.step == 36


def test_a_step_that_is_an_epoch_end_a_checkpoint_and_the_last_is_saved_once(tmp_path):
    """Early stopping at an epoch end on a checkpoint step used to save that step twice and crash
    (OSError: Directory not empty: .step-00000008 -> step-00000008)."""
    result, _ = scripted_run(tmp_path / "run", examples=8, epochs=10, save_every=2, early_stopping_patience=1,
                             scores=[0.5, 0.4])
    assert (result.state.step, result.state.stopped_early) == (8, True)
    assert [entry["step"] for entry in result.state.history] == [4, 8]
    checkpoints = sorted(path.name for path in (tmp_path / "run" / "checkpoints").iterdir())
    assert checkpoints == ["step-00000006", "step-00000008"]
    assert [record["step"] for record in read_log(tmp_path / "run") if record["split"] == "eval"] == [4, 8]


def test_logged_loss_is_the_mean_of_the_steps_losses(tmp_path):
    result, task = scripted_run(tmp_path / "run", examples=24, max_steps=6, log_every=3, record_losses=True)
    train_lines = [record for record in read_log(tmp_path / "run") if record["split"] == "train"]
    assert [record["step"] for record in train_lines] == [3, 6]
    assert train_lines[0]["loss"] == pytest.approx(sum(task.losses[:3]) / 3, rel=1e-12)
    assert train_lines[1]["loss"] == pytest.approx(sum(task.losses[3:]) / 3, rel=1e-12)
    assert result.state.tokens_seen == task.tokens


SYNCS = ("item", "tolist", "__int__", "__float__", "__bool__")


@pytest.fixture
def device_reads(monkeypatch):
    """Every read of a tensor's value into Python (a host sync on a GPU), by the file that asked."""
    reads = []
    for name in SYNCS:
        original = getattr(torch.Tensor, name)

        def counted(self, *args, _original=original, _name=name, **kwargs):
            caller = sys._getframe(1)
            reads.append((Path(caller.f_code.co_filename).as_posix(), caller.f_code.co_name, _name))
            return _original(self, *args, **kwargs)

        monkeypatch.setattr(torch.Tensor, name, counted)
    return reads


def reads_by(reads, *suffixes):
    return [read for read in reads if read[0].endswith(suffixes)]


def test_training_steps_read_nothing_from_the_device(device_reads, tiny_config):
    """The tasks' steps return tensors; today's int(...) and .item() waited for the device each step."""
    batch = pad_batch(scripted_examples(4), pad_token_id=0)
    loss, figures = supervised_step(scripted_model(), batch)
    assert set(figures) == {"tokens"} and isinstance(figures["tokens"], torch.Tensor)
    model = ForPreTraining(tiny_config)
    batch = {"input_ids": torch.randint(5, 101, (2, 12)), "attention_mask": torch.ones(2, 12, dtype=torch.long),
             "token_type_ids": torch.zeros(2, 12, dtype=torch.long),
             "mlm_labels": torch.full((2, 12), -100).index_fill_(1, torch.tensor([3, 7]), 9),
             "nsp_labels": torch.tensor([0, 1])}
    loss, figures = PretrainingTask.training_step(None, model, batch)
    assert all(isinstance(value, torch.Tensor) and value.ndim == 0 for value in figures.values())
    assert int(figures["tokens"]) == 24 and float(figures["mlm_accuracy"]) in (0.0, 0.25, 0.5, 0.75, 1.0)
    assert reads_by(device_reads, "nlu/tasks/pretrain.py", "nlu/tasks/finetune.py") == []


def test_the_loop_reads_figures_once_per_log_line(device_reads, tmp_path):
    """12 steps, a log line every 6: two reads of the summed figures and two of the token count,
    instead of a loss.item() and an int(tokens) on each of the 12 steps."""
    scripted_run(tmp_path / "run", examples=24, max_steps=12, log_every=6, eval_every=100)
    reads = reads_by(device_reads, "nlu/training/loop.py", "nlu/tasks/finetune.py")
    assert [(function, kind) for _, function, kind in reads] == [("read", "tolist")] * 4


def test_precision_is_chosen_from_the_hardware_printed_and_saved(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("NLU_CPU_BF16", "1")
    result, _ = scripted_run(tmp_path / "bf16", max_steps=2, mixed_precision="auto")
    assert (result.precision.name, result.precision.reason) == ("bf16", "NLU_CPU_BF16=1")
    saved = json.loads((tmp_path / "bf16" / "trainer_state.json").read_text())
    assert saved["precision"] == {"name": "bf16", "reason": "NLU_CPU_BF16=1"}
    # A second run in the same process, in another precision (Accelerate's state is process-wide).
    monkeypatch.setenv("NLU_CPU_BF16", "0")
    result, _ = scripted_run(tmp_path / "fp32", max_steps=2, mixed_precision="auto")
    assert result.precision.name == "no"
    printed = capsys.readouterr().out
    assert printed.count("precision: bf16 (NLU_CPU_BF16=1)") == 1
    assert printed.count("precision: fp32 (fp32: NLU_CPU_BF16=0)") == 1


def test_progress_is_a_setting_with_a_label(tmp_path, monkeypatch):
    bars, original = [], loop.tqdm
    monkeypatch.setattr(loop, "tqdm", lambda **options: bars.append(options) or original(**options))
    scripted_run(tmp_path / "ner", max_steps=2, progress=True, progress_label="ner-pretrained")
    scripted_run(tmp_path / "quiet", max_steps=2, progress=False)
    scripted_run(tmp_path / "plain", max_steps=2, progress=True)
    assert [(bar["desc"], bar["disable"]) for bar in bars] == [("ner-pretrained", False), ("quiet", True),
                                                               ("plain", False)]


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


def test_a_corpus_written_without_sentence_lines_is_refused_or_named(small_corpus, tmp_path):
    """One document: refused before a vocabulary is trained into the run folder. Whole texts on
    single lines (a paragraph per line): most of each line is cut from its pair, and the pairs
    can only be 'random'; both said."""
    articles = read_documents([NEWS])[:12]
    one = tmp_path / "one.txt"
    one.write_text("\n".join(" ".join(article.sentences) for article in articles) + "\n")
    options = overrides(small_corpus, tmp_path / "run", **{"data.train_files": f"[{one}]", "data.tokenizer": None,
                                                           "data.vocab_size": 500, "training.max_steps": 1})
    with pytest.raises(ConfigError, match="data.duplicates must be 1 or more"):
        pretrain.PretrainData(duplicates=0)
    with pytest.raises(DataError, match=rf"^1 document\(s\) with text in {one}: next-sentence prediction needs 2"):
        pretrain.run(load_settings(ROOT / "tasks" / "pretrain_news.yaml", options))
    assert not (tmp_path / "run").exists()
    paragraphs = tmp_path / "paragraphs.txt"
    paragraphs.write_text("\n\n".join(" ".join(article.sentences) for article in articles) + "\n")
    with pytest.warns(UserWarning) as caught:
        pretrain.build_examples(read_documents([paragraphs]), load_tokenizer(small_corpus["tokenizer"]),
                                pretrain.PretrainData(max_length=64), seed=0)
    messages = [str(warning.message) for warning in caught]
    assert re.match(rf"{paragraphs}: the sentence pairs hold \d+% of the [\d,]+ WordPiece tokens; a line averages "
                    r"\d+ against data.max_length=64 per pair, and what does not fit is cut; nlu does not split", messages[0])
    assert messages[1].startswith(f"{paragraphs}: 12 of the 12 documents are one line, so their next-sentence pairs")
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the shipped layout: one sentence per line
        pretrain.build_examples(read_documents([small_corpus["train"]]), load_tokenizer(small_corpus["tokenizer"]),
                                pretrain.PretrainData(max_length=64), seed=0)


def run_cli(arguments, **kwargs):
    return subprocess.Popen([sys.executable, "-m", "nlu.cli", "pretrain", "--config",
                             str(ROOT / "tasks" / "pretrain_news.yaml"), *arguments],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, **kwargs)


@pytest.mark.slow
def test_killed_run_resumes_to_the_same_weights(small_corpus, tmp_path):
    steps = {"training.max_steps": 40, "training.eval_every": 20}
    one_thread = {**os.environ, "OMP_NUM_THREADS": "1"}  # the two first runs share the cores, same arithmetic
    reference = run_cli(overrides(small_corpus, tmp_path / "whole", **steps), env=one_thread)
    interrupted = run_cli(overrides(small_corpus, tmp_path / "killed", **steps), env=one_thread)
    checkpoints = tmp_path / "killed" / "checkpoints"
    deadline = time.time() + 240
    while not list(checkpoints.glob("step-00000015")) and time.time() < deadline:
        time.sleep(0.05)
    interrupted.send_signal(signal.SIGKILL)
    interrupted.wait()
    assert not (tmp_path / "killed" / "model").exists(), "the run finished before it could be killed"
    resumed = run_cli(overrides(small_corpus, tmp_path / "killed", **steps), env=one_thread)
    assert resumed.wait(timeout=300) == 0, resumed.stderr.read()
    assert reference.wait(timeout=300) == 0, reference.stderr.read()

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
    sentences = (ROOT / "data" / "ner" / "wnut16" / "dev.conll").read_text(encoding="utf-8").split("\n\n")[:150]
    tweets = tmp_path / "tweets.conll"  # 150 real tweets: every split of this run
    tweets.write_text("\n\n".join(sentences) + "\n\n", encoding="utf-8")
    process = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "-m", "nlu.cli", "finetune", "ner",
         "--config", str(ROOT / "tasks" / "wnut16_ner.yaml"), f"init={tmp_path / 'ddp' / 'model'}",
         f"data.train={tweets}", f"data.dev={tweets}", f"data.test={tweets}",
         f"training.output_dir={tmp_path / 'ner'}", "training.max_steps=4", "training.eval_every=4",
         "training.cpu=true"],
        capture_output=True, text=True, timeout=300, env=environment,
    )
    assert process.returncode == 0, process.stderr[-3000:]
    assert process.stdout.count('"test_f1"') == 1  # one summary, printed by the main process
    summary = json.loads((tmp_path / "ner" / "summary.json").read_text())
    metrics = json.loads((tmp_path / "ner" / "test" / "metrics.json").read_text())
    gold = sum(tag.startswith("B-") for sentence in read_ner_file(tweets) for tag in sentence.tags)
    assert summary["steps"] == 4 and metrics["entity_strict"]["averages"]["micro"]["support"] == gold
    assert summary["test_f1"] == metrics["entity_strict"]["averages"]["micro"]["f1"]  # the summary is the file's figure
    assert (tmp_path / "ner" / "test" / "report.md").is_file()
