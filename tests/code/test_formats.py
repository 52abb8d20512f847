"""Test formats read into TestCases, and programs taken out of answers."""

from __future__ import annotations

import json

import pytest

from natural_thoughts.code import TestCase, TestFormatError, dump_tests, extract_program, last_fence, read_tests


def test_livecodebench_stdin_and_functional() -> None:
    tests = [{"input": "3\n1 2 3\n", "output": "6\n", "testtype": "stdin"},
             {"input": '[1, 2]\n"ab"', "output": "true", "testtype": "functional"}]
    stdin, call = read_tests(json.dumps(tests), fn_name="check")
    assert stdin == TestCase("stdin", "3\n1 2 3\n", "6\n")
    assert (call.kind, json.loads(call.input), call.expected, call.name) == ("call", [[1, 2], "ab"], "true", "check")


def test_a_functional_test_needs_its_function() -> None:
    with pytest.raises(TestFormatError, match="fn_name"):
        read_tests([{"input": "1", "output": "1", "testtype": "functional"}])


def test_taco_apps_with_and_without_fn_name() -> None:
    calls = read_tests({"input_output": json.dumps({"fn_name": "add", "inputs": [[1, 2]], "outputs": [[3]]})})
    assert calls == [TestCase("call", "[1, 2]", "[3]", "add", wrapped=True)]
    stdin = read_tests({"inputs": ["1 2\n", ["3 4", "5"]], "outputs": ["3\n", ["7", "5"]]})
    assert [(t.kind, t.input, t.expected) for t in stdin] == [("stdin", "1 2\n", "3\n"), ("stdin", "3 4\n5", "7\n5")]


def test_open_r1_verification_info() -> None:
    info = {"language": "python", "test_cases": [{"input": "2\n", "output": "4\n", "type": "stdin_stdout"}]}
    assert read_tests({"verification_info": info}) == [TestCase("stdin", "2\n", "4\n")]
    with pytest.raises(TestFormatError, match="cpp"):
        read_tests({"language": "cpp", "test_cases": []})


def test_humaneval_check_is_called_on_the_entry_point_and_mbpp_calls_itself() -> None:
    humaneval, = read_tests({"test": "def check(candidate):\n    assert candidate(1) == 2\n", "entry_point": "inc"})
    assert humaneval.input.rstrip().endswith("check(inc)")
    mbpp_test = ("def check(candidate):\n    assert candidate(3) == 27\n\n"
                 "def test_check():\n    check(cube)\n\ntest_check()\n")
    mbpp, = read_tests({"test": mbpp_test, "entry_point": "cube"})
    assert mbpp.input == mbpp_test


def test_our_format_round_trips_and_unknown_shapes_are_named() -> None:
    tests = [TestCase("stdin", "1", "1"), TestCase("call", "[1]", "2", "f", wrapped=True),
             TestCase("assert", "assert 1")]
    assert read_tests(dump_tests(tests)) == tests
    with pytest.raises(TestFormatError, match="no known format"):
        read_tests({"cases": []})
    with pytest.raises(TestFormatError, match="not JSON"):
        read_tests("[{")


def test_the_last_fenced_block_is_the_program() -> None:
    answer = "First try:\n```python\nprint(1)\n```\nSample run:\n```text\n1\n```\nBetter:\n```py\nprint(2)\n```\nDone."
    assert last_fence(answer) == "print(2)"
    assert last_fence("no code here") is None
    assert last_fence("cut off:\n```python\nprint(3)\n") == "print(3)"


def test_a_body_is_completed_by_the_prompt_signature() -> None:
    prompt = 'def inc(x: int) -> int:\n    """Add one."""\n'
    assert extract_program("```python\n    return x + 1\n```", prompt, "inc") == prompt + "    return x + 1"
    whole = "```python\ndef inc(x):\n    return x + 1\n```"
    assert extract_program(whole, prompt, "inc") == "def inc(x):\n    return x + 1"
