"""nlu.reporting.command_line: the command a report, a run's settings.yaml and a model card quote
is one a reader can type again, however the process was started."""

import nlu.cli
from nlu.reporting import command_line


def test_the_command_is_written_as_a_reader_would_type_it(monkeypatch, tmp_path):
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    script = tmp_path / "scripts" / "bench.py"
    assert command_line([str(script), "--steps", "3"], root=tmp_path) == "python scripts/bench.py --steps 3"
    assert command_line(["/usr/bin/nlu", "run", "--quick"]) == "nlu run --quick"
    # python -m nlu.cli (and every launcher's worker) has nlu/cli.py as its argv[0]
    cli = nlu.cli.__file__
    assert command_line([cli, "sweep", "tasks/x.yaml", "data.text=a b"]) == "nlu sweep tasks/x.yaml 'data.text=a b'"
    assert command_line([str(tmp_path / "mynlu" / "cli.py"), "--x"], root=tmp_path) == "python mynlu/cli.py --x"
    monkeypatch.setenv("WORLD_SIZE", "")  # set but empty: one process
    assert command_line([cli, "run"]) == "nlu run"
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    monkeypatch.setenv("WORLD_SIZE", "2")
    assert command_line([cli, "finetune", "ner"]) == \
        "OMP_NUM_THREADS=1 nlu finetune ner  # in 2 processes (torchrun / accelerate launch)"
