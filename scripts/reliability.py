#!/usr/bin/env python3
"""Every bad-input, corrupt-checkpoint, kill and concurrency case of issue #19 (tests/reliability_cases.yaml),
replayed by the tests that hold it, into reports/reliability.md + .json.

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

import yaml

from nlu.reporting import command_line, machine, machine_line, table, write_report

ROOT = Path(__file__).resolve().parents[1]

CASES = ROOT / "tests" / "reliability_cases.yaml"


def read_cases(path: Path = CASES) -> list[dict]:
    """Each case as {group, case, behaviour, tests}, in the file's order."""
    return [{"group": group, **case} for group, cases in yaml.safe_load(path.read_text()).items() for case in cases]


def run_tests(files: list[str]) -> dict[str, str]:
    """test id (file::name[param]) → passed / failed / skipped, from one pytest run."""
    with tempfile.TemporaryDirectory() as folder:
        report = Path(folder) / "junit.xml"
        subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", f"--junitxml={report}",
                        *[f"tests/{name}" for name in files]], cwd=ROOT, check=False)
        outcomes = {}
        for case in ElementTree.parse(report).iter("testcase"):
            name = f"{case.get('classname').rpartition('.')[2]}.py::{case.get('name')}"
            failed = case.find("failure") is not None or case.find("error") is not None
            outcomes[name] = "failed" if failed else "skipped" if case.find("skipped") is not None else "passed"
    return outcomes


def held_by(test: str, name: str) -> bool:
    """Whether the test id NAME is one that TEST names: itself, a parametrisation of it, or (``file::``) any of the file."""
    return name == test or name.startswith(test) and (test.endswith("::") or name[len(test)] == "[")


def case_outcome(tests: list[str], outcomes: dict[str, str]) -> tuple[str, list[str]]:
    matched = [name for name in outcomes if any(held_by(test, name) for test in tests)]
    missing = [test for test in tests if not any(held_by(test, name) for name in matched)]
    states = {outcomes[name] for name in matched}
    if missing or "failed" in states:
        return "FAILED", matched
    return ("passed" if states == {"passed"} else "partly skipped"), matched


def render(result: dict) -> str:
    lines = ["# Reliability: bad input, corrupt checkpoints, kills, concurrent runs (issue #19)", "",
             f"Made by `{result['command']}`; every case's outcome is its tests' outcome in that run. "
             f"{machine_line(result['machine'])}.", ""]
    rows = [(case["group"], case["case"], case["behaviour"], f"{case['outcome']} ({case['ran']} tests)",
             "<br>".join(f"`{name}`" for name in case["tests"])) for case in result["cases"]]
    lines += table(["group", "case", "what nlu does", "outcome", "tests"], rows, align="lllll")
    counts = {state: sum(case["outcome"] == state for case in result["cases"])
              for state in ("passed", "partly skipped", "FAILED")}
    lines += ["", f"{counts['passed']} of {len(result['cases'])} cases pass, {counts['partly skipped']} partly skipped "
              f"(a test needs root or a shared file), {counts['FAILED']} failed; {result['tests']} tests ran.", ""]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default=str(ROOT / "reports" / "reliability"), help="report path without suffix")
    args = parser.parse_args()
    cases = read_cases()
    outcomes = run_tests(sorted({test.split("::")[0] for case in cases for test in case["tests"]}))
    for case in cases:
        case["outcome"], matched = case_outcome(case["tests"], outcomes)
        case["ran"] = len(matched)
    passed = sum(case["outcome"] == "passed" for case in cases)
    result = {"command": command_line(), "machine": machine(), "cases": cases, "tests": len(outcomes),
              "headline": f"{passed} of {len(cases)} cases of issue #19 pass ({len(outcomes)} tests ran)"}
    write_report(Path(args.out), result, render)
    print(render(result))


if __name__ == "__main__":
    main()
