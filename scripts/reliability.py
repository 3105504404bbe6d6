#!/usr/bin/env python3
"""Every bad-input, corrupt-checkpoint, kill and concurrency case of issue #19, replayed by the
tests that hold it, into reports/reliability.md + .json.

    python scripts/reliability.py            # runs the tests below (slow ones included, ~3 min quiet)

Each case names the tests that reproduce it; the outcome of a case is the outcome of its tests
in this run (pytest's JUnit XML), so the report cannot claim a case the code does not pass.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import xml.etree.ElementTree as ElementTree
from pathlib import Path

from nlu.reporting import command_line, machine, machine_line, table, write_report

ROOT = Path(__file__).resolve().parents[1]

# (group, case as a user meets it, what nlu does now, tests that hold it: file::name, a name prefix
# matches every parametrisation)
CASES = [
    (
        "silent wrong results",
        "CoNLL file with CR-only line endings",
        "read line by line like \\n and \\r\\n; errors name the editor's line",
        [
            "test_bad_input.py::test_conll_line_endings",
            "test_bad_input.py::test_cr_only_conll_error_names_the_right_line",
            "test_bad_input.py::test_conll_mixed_line_endings_count_lines_like_an_editor",
        ],
    ),
    (
        "silent wrong results",
        "model folder without tokenizer.json (tokenizer_config.json kept)",
        "refused: `tokenizer.json is missing`",
        ["test_unigram.py::test_load_tokenizer_refuses_a_folder_without_its_vocabulary"],
    ),
    (
        "silent wrong results",
        "TSV text starting with a quote swallows rows",
        "TSV has no quoting unless data.tsv_quotes=true: 4 rows in, 4 out",
        ["test_bad_input.py::test_tsv_quotes_are_text_and_every_row_is_read", "test_bad_input.py::test_tsv_quotes_on_request"],
    ),
    (
        "silent wrong results",
        'CSV field `"He said "hi" there"` rewritten',
        "RFC 4180: malformed quoting is a file:line:column error",
        [
            "test_bad_input.py::test_csv_malformed_quoting_is_an_error_not_a_rewrite",
            "test_bad_input.py::test_csv_valid_rfc4180_quoting_is_decoded",
        ],
    ),
    (
        "silent wrong results",
        "truncated random_states_0.pkl in the newest checkpoint",
        "falls back to the previous checkpoint, or errors; never silent",
        [
            "test_checkpoints_resume.py::test_truncated_random_states_are_never_skipped_silently",
            "test_checkpoints_resume.py::test_a_damaged_newest_checkpoint_falls_back_to_the_previous_one_exactly",
        ],
    ),
    (
        "silent wrong results",
        "one-class classification data; all-O NER data",
        "refused with the reason unless data.allow_single_class / allow_no_entities",
        [
            "test_bad_input.py::test_one_class_training_data_is_refused_unless_allowed",
            "test_bad_input.py::test_ner_training_data_without_entities_is_refused_unless_allowed",
            "test_bad_input.py::test_a_tag_map_that_drops_every_entity_is_refused_too",
        ],
    ),
    (
        "silent wrong results",
        "NUL bytes and a BOM in predict --file input",
        "a BOM at the start is dropped; NUL or a later BOM is a file:line error",
        [
            "test_bad_input.py::test_corpus_and_predict_input_refuse_nul_and_inner_bom",
            "test_bad_input.py::test_bom_at_the_start_is_dropped_everywhere",
            "test_bad_input.py::test_refused_bytes_name_file_line_and_column",
        ],
    ),
    (
        "runs that damage each other",
        "two identical commands on one run folder",
        "advisory lock: the second names the owner's pid and exits 2",
        ["test_run_folder.py::test_a_second_command_on_a_held_folder_names_the_owner_and_exits"],
    ),
    (
        "runs that damage each other",
        "a step that is a checkpoint step and the last one is saved twice (OSError)",
        "saved once",
        [
            "test_training.py::test_a_step_that_is_an_epoch_end_a_checkpoint_and_the_last_is_saved_once",
            "test_checkpoints_resume.py::test_replacing_a_directory_that_exists_is_safe",
        ],
    ),
    (
        "runs that damage each other",
        "kill -9 of torchrun leaves its workers running",
        "workers get SIGTERM when their launcher dies",
        ["test_run_folder.py::test_torchrun_workers_stop_when_their_launcher_is_killed"],
    ),
    (
        "runs that damage each other",
        "a failed validation has already written settings.yaml",
        "validated before the folder exists; a failed start leaves no folder",
        [
            "test_run_folder.py::test_validation_fails_before_the_run_folder_exists",
            "test_run_folder.py::test_bad_data_found_while_reading_leaves_no_folder_and_the_corrected_command_is_accepted",
            "test_run_folder.py::test_a_typo_with_an_existing_run_folder_is_an_unknown_key_not_a_changed_setting",
        ],
    ),
    (
        "runs that damage each other",
        "corrupt newest model.safetensors / optimizer.bin / trainer_state.json",
        "the newest checkpoint that verifies is resumed, the skipped one named",
        [
            "test_checkpoints_resume.py::test_a_damaged_newest_checkpoint_falls_back_to_the_previous_one_exactly",
            "test_checkpoints_resume.py::test_a_checkpoint_without_its_manifest_is_not_complete",
            "test_checkpoints_resume.py::test_a_save_that_dies_before_the_manifest_publishes_nothing",
            "test_checkpoints_resume.py::test_files_and_renames_are_on_disk_before_the_checkpoint_counts",
        ],
    ),
    (
        "one line, not a traceback",
        "predict --file missing / a directory / invalid UTF-8; predict classify on an NER model",
        "`nlu: error: FILE[:LINE]: problem`, exit 2",
        [
            "test_predict.py::test_cli_refuses_a_model_of_the_other_task_and_bad_files",
            "test_bad_input.py::test_missing_path_and_directory_are_one_line_errors",
        ],
    ),
    (
        "one line, not a traceback",
        "training.batch_size=1.5; training.max_steps=[1; model.layer_norm_eps=1e-12",
        "named with where the value came from; 1e-12 is a float",
        [
            "test_run_folder.py::test_bad_values_are_named_with_where_they_came_from",
            "test_run_folder.py::test_yaml_words_and_numbers_arrive_as_the_declared_type",
        ],
    ),
    (
        "one line, not a traceback",
        "a read-only output folder; a full disk",
        "one line naming the problem (tested on real tmpfs mounts)",
        [
            "test_storage_errors.py::test_a_read_only_file_system_is_one_line",
            "test_storage_errors.py::test_a_full_disk_is_one_line",
            "test_run_folder.py::test_an_unwritable_place_for_the_run_folder_is_one_line",
        ],
    ),
    (
        "one line, not a traceback",
        "bad data under torchrun",
        "printed once (rank 0); torchrun then adds its own child-failure summary",
        ["test_run_folder.py::test_bad_data_under_torchrun_is_reported_once_and_leaves_no_folder"],
    ),
    (
        "already right, kept",
        "wrong columns, non-IOB2 tags, invalid UTF-8, corrupt safetensors, pickle payloads",
        "file:line errors; weights-only loading",
        [
            "test_ner_data.py::test_read_conll_errors_name_file_and_line",
            "test_ner_data.py::test_stray_i_tag_in_iob2_file_hints_the_command_line_syntax",
            "test_ner_data.py::test_read_conll_reports_bad_bytes_and_missing_files",
            "test_bad_input.py::test_csv_quoted_field_keeps_its_own_line_breaks",
            "test_checkpoint.py::",
            "test_checkpoints_resume.py::test_pickled_code_is_refused_even_with_a_matching_manifest",
        ],
    ),
]


def run_tests(files: list[str]) -> dict[str, str]:
    """test id (file::name[param]) → passed / failed / skipped, from one pytest run."""
    with tempfile.TemporaryDirectory() as folder:
        report = Path(folder) / "junit.xml"
        subprocess.run(
            [
                sys.executable,
                "-m",
                "pytest",
                "-q",
                "-p",
                "no:cacheprovider",
                f"--junitxml={report}",
                *[f"tests/{name}" for name in files],
            ],
            cwd=ROOT,
            check=False,
        )
        outcomes = {}
        for case in ElementTree.parse(report).iter("testcase"):
            name = f"{case.get('classname').rpartition('.')[2]}.py::{case.get('name')}"
            failed = case.find("failure") is not None or case.find("error") is not None
            outcomes[name] = "failed" if failed else "skipped" if case.find("skipped") is not None else "passed"
    return outcomes


def case_outcome(tests: list[str], outcomes: dict[str, str]) -> tuple[str, list[str]]:
    matched = [
        name
        for name in outcomes
        if any(name == test or name.startswith(test) and (test.endswith("::") or name[len(test)] == "[") for test in tests)
    ]
    missing = [test for test in tests if not any(name == test or name.startswith(test) for name in matched)]
    states = {outcomes[name] for name in matched}
    if missing or "failed" in states:
        return "FAILED", matched
    return ("passed" if states == {"passed"} else "partly skipped"), matched


def render(result: dict) -> str:
    lines = [
        "# Reliability: bad input, corrupt checkpoints, kills, concurrent runs (issue #19)",
        "",
        f"Made by `{result['command']}`; every case's outcome is its tests' outcome in that run. "
        f"{machine_line(result['machine'])}.",
        "",
    ]
    rows = [
        (
            case["group"],
            case["case"],
            case["behaviour"],
            f"{case['outcome']} ({case['ran']} tests)",
            "<br>".join(f"`{name}`" for name in case["tests"]),
        )
        for case in result["cases"]
    ]
    lines += table(["group", "case", "what nlu does", "outcome", "tests"], rows, align="lllll")
    counts = {
        state: sum(case["outcome"] == state for case in result["cases"]) for state in ("passed", "partly skipped", "FAILED")
    }
    lines += [
        "",
        f"{counts['passed']} of {len(result['cases'])} cases pass, {counts['partly skipped']} partly skipped "
        f"(a test needs root or a shared file), {counts['FAILED']} failed; {result['tests']} tests ran.",
        "",
    ]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default=str(ROOT / "reports" / "reliability"), help="report path without suffix")
    args = parser.parse_args()
    files = sorted({test.split("::")[0] for *_, tests in CASES for test in tests})
    outcomes = run_tests(files)
    cases = []
    for group, case, behaviour, tests in CASES:
        outcome, matched = case_outcome(tests, outcomes)
        cases.append(
            {"group": group, "case": case, "behaviour": behaviour, "outcome": outcome, "tests": tests, "ran": len(matched)}
        )
    passed = sum(case["outcome"] == "passed" for case in cases)
    result = {"command": command_line(), "machine": machine(), "cases": cases, "tests": len(outcomes),
              "headline": f"{passed} of {len(cases)} cases of issue #19 pass ({len(outcomes)} tests ran)"}
    write_report(Path(args.out), result, render)
    print(render(result))


if __name__ == "__main__":
    main()
