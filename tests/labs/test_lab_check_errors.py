"""`lab check` on bad input: no stack, no answers file, answers that are not YAML, a lab that does not exist."""

from __future__ import annotations

import pytest

from lab.labs.common import ANSWERS_FILE, Answers, AnswersError
from lab.labs.lab3_buckets import in_range, widest_gap

from conftest import lab


def test_lab_check_without_a_running_stack_exits_2_and_names_lab_up(tmp_path):
    done = lab(tmp_path / "home", "check", "1")
    assert done.returncode == 2, done.stdout + done.stderr
    assert "the native stack is not up" in done.stdout and "`lab up`" in done.stdout


def test_a_missing_answers_file_says_where_the_template_is(tmp_path):
    done = lab(tmp_path / "home", "check", "1", "--answers", str(tmp_path / "nope.yml"))
    assert done.returncode == 2
    assert f"no answers file at {tmp_path / 'nope.yml'}" in done.stdout and "labs/answers.yml" in done.stdout


def test_answers_that_are_not_yaml_or_not_sections_are_refused_with_the_reason(tmp_path):
    broken = tmp_path / "broken.yml"
    broken.write_text("lab1: [unclosed\n")
    done = lab(tmp_path / "home", "check", "1", "--answers", str(broken))
    assert done.returncode == 2 and "is not valid YAML" in done.stdout, done.stdout
    flat = tmp_path / "flat.yml"
    flat.write_text("lab1: just a string\n")
    with pytest.raises(AnswersError, match="section lab1 must be a mapping"):
        Answers.load(flat)


def test_a_lab_number_outside_1_to_8_is_refused(tmp_path):
    done = lab(tmp_path / "home", "check", "9")
    assert done.returncode == 2 and "there is no lab 9" in done.stdout


def test_the_committed_template_is_blank_for_every_lab_with_answers():
    template = Answers.load(ANSWERS_FILE)
    sections = {name for name in template.document}
    assert sections == {"lab1", "lab2", "lab3", "lab4", "lab5", "lab6", "lab8"}
    assert all(template.get(int(name[3:]), key) is None for name in sections for key in template.document[name])


def test_bucket_bounds_in_range_and_the_widest_gap_are_in_milliseconds():
    assert in_range([0.005, 0.05, 0.075, 0.1, 0.25, 0.5, 1.0, float("inf")]) == [50, 75, 100, 250, 500]
    assert widest_gap([50, 100, 250, 500]) == 250
