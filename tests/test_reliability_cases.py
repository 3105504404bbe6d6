"""tests/reliability_cases.yaml names the tests that hold each case of issue #19: every name must be a
test that exists, or the reliability report would mark a case FAILED only when it is next re-made."""

import ast
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "scripts"))
import reliability  # noqa: E402  (scripts/ is not a package)


def functions_in(path: Path) -> set[str]:
    return {node.name for node in ast.walk(ast.parse(path.read_text())) if isinstance(node, ast.FunctionDef)
            and node.name.startswith("test_")}


def test_every_test_a_case_names_exists():
    cases = reliability.read_cases()
    assert len(cases) == 19 and cases[0]["group"] == "silent wrong results" and all(case["behaviour"] for case in cases)
    missing = []
    for test in (test for case in cases for test in case["tests"]):
        file, _, name = test.partition("::")
        path = ROOT / "tests" / file
        if not path.is_file() or name and name not in functions_in(path):
            missing.append(test)
    assert missing == []


def test_a_case_is_held_only_by_the_tests_it_names():
    outcomes = {"a.py::test_x": "passed", "a.py::test_x[1]": "passed", "a.py::test_xy": "failed", "b.py::test_z": "skipped"}
    assert reliability.case_outcome(["a.py::test_x"], outcomes) == ("passed", ["a.py::test_x", "a.py::test_x[1]"])
    assert reliability.case_outcome(["a.py::"], outcomes)[0] == "FAILED"  # the file's every test, test_xy failed
    assert reliability.case_outcome(["a.py::test_x", "b.py::test_z"], outcomes)[0] == "partly skipped"
    assert reliability.case_outcome(["a.py::test_gone"], outcomes) == ("FAILED", [])
