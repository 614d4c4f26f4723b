"""The report tests' Prometheus: a synthetic incident backfilled into a real prometheus (see synthetic_incident)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from synthetic_incident import Incident, backfilled_prometheus


@pytest.fixture(scope="session")
def incident(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Incident]:
    with backfilled_prometheus(tmp_path_factory.mktemp("report-prometheus")) as served:
        yield served
