"""The workshop labs' checks (``lab check N``): one module per lab, each with ``TITLE`` and ``check()``.

``run(number, ...)`` loads the trainee's answers, finds the live stack and returns the exit code:
0 passed, 1 something is missing (each item says what to do next), 2 the stack or the answers
file is not usable (the message says what to start or fix). Pages: docs/labs/.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

MODULES = {1: "lab1_signaling", 2: "lab2_cardinality", 3: "lab3_buckets", 4: "lab4_exporter",
           5: "lab5_incident", 6: "lab6_alerts", 7: "lab7_fix", 8: "lab8_federation"}


def module(number: int) -> Any:
    return importlib.import_module(f"lab.labs.{MODULES[number]}")


def run(number: int, *, answers_file: Path | None = None, prometheus: str | None = None,
        result_file: Path | None = None, echo: Callable[[str], None] = print) -> int:
    """Check lab ``number`` against the running stack; print the report; return the exit code."""
    from lab.labs.common import Answers, AnswersError, LiveStack, PrometheusError, StackNotUp

    if number not in MODULES:
        echo(f"lab check: there is no lab {number}; the labs are 1 to {len(MODULES)} (docs/labs/README.md)")
        return 2
    lab = module(number)
    try:
        answers = Answers.load(answers_file)
        stack = LiveStack.native(prometheus=prometheus)
        stack.require_prometheus()
        verdict = lab.check(answers, stack, result_file=result_file)
    except AnswersError as exc:
        echo(f"lab check {number}: {exc}")
        return 2
    except StackNotUp as exc:
        echo(f"lab check {number} ({lab.TITLE}): {exc}")
        return 2
    except PrometheusError as exc:
        echo(f"lab check {number} ({lab.TITLE}): Prometheus refused the check's own query: {exc}")
        return 2
    echo(verdict.render())
    return 0 if verdict.ok else 1
