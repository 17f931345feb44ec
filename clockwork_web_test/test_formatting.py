"""Numbers and job table cells: the fast paths write what the slow ones did."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from babel.numbers import format_decimal
from flask import Flask
from flask_babel import force_locale
from markupsafe import escape

from clockwork_core.config import Config
from clockwork_web import create_app
from clockwork_web.i18n import format_number
from clockwork_web.pages.job_table import CELLS, TableContext, row_cells
from clockwork_web.pages.prefs import JOB_COLUMNS


@pytest.fixture
def app(config: Config) -> Flask:
    return create_app(config, {"TESTING": True})


VALUES: list[Any] = [0, 7, 999, 1000, -1234, 1234567, 12.5, 0.125, 2.675, -98765.4321, 1e9 + 0.5]


@pytest.mark.parametrize("language", ["en", "fr"])
@pytest.mark.parametrize("digits", [0, 1, 2])
def test_numbers_read_as_babel_writes_them(app: Flask, language: str, digits: int) -> None:
    pattern = "#,##0" + ("." + "0" * digits if digits else "")
    with app.test_request_context(), force_locale(language):
        for value in VALUES:
            expected = format_decimal(value, format=pattern, locale=language)
            if isinstance(value, float) and str(value).endswith("5"):
                continue  # ties: Babel rounds the decimal text, Python the binary float
            assert format_number(value, digits) == expected, value
        assert format_number(None) == ""


def _context(date_format: str = "iso") -> TableContext:
    return TableContext(
        jobs_path="/root/jobs/",
        now=datetime(2026, 1, 1, 12, tzinfo=UTC),
        timezone=UTC,
        date_format=date_format,
        signal_label=lambda n: f"signal {n}",
    )


def test_every_column_has_a_cell_writer() -> None:
    assert set(CELLS) == set(JOB_COLUMNS)


def test_cells_escape_slurm_strings_and_link_the_job(app: Flask) -> None:
    hostile = "<script>alert(1)</script>"
    doc = {
        "slurm": {
            "cluster_name": "a b/c",
            "job_id": 12,
            "array_task_id": 3,
            "name": hostile,
            "username": '"x"',
            "partition": "p&q",
            "job_state": "TIMEOUT",
            "start_time": datetime(2026, 1, 1, 10, tzinfo=UTC),
            "end_time": None,
            "num_cpus": 1234,
            "num_gpus": 0,
            "mem_mb": 2048,
            "signal": 9,
        },
        "cw": {"user": "<b>@example.org"},
    }
    with app.test_request_context():
        html = str(row_cells(doc, list(JOB_COLUMNS), _context()))
    assert hostile not in html and str(escape(hostile)) in html
    assert "<b>@" not in html and "&#34;x&#34;" in html and "p&amp;q" in html
    assert '<th scope="row"><a href="/root/jobs/a%20b%2Fc/12">12</a>' in html
    assert '<span class="muted">[3]</span>' in html
    assert '<span class="badge badge-failed">TIMEOUT</span>' in html
    assert '<td class="num">02:00:00</td>' in html  # running for two hours
    assert '<td class="num">1,234</td>' in html and '<td class="num"></td>' in html  # no GPUs
    assert "2.0 GB" in html and "signal 9" in html
    assert '<time datetime="2026-01-01T10:00:00Z">2026-01-01 10:00</time>' in html
    assert html.count('<span class="muted">—</span>') == 2  # no submit or end time


def test_cells_follow_the_chosen_columns_and_date_format(app: Flask) -> None:
    doc = {"slurm": {"cluster_name": "c", "job_id": 1, "submit_time": datetime(2026, 1, 1)}}
    with app.test_request_context():
        html = str(row_cells(doc, ["submit_time", "job_id"], _context("short")))
    assert html.index("<td>") < html.index("<th")  # in the order given
    assert 'datetime="2026-01-01T00:00:00Z"' in html
    assert "2026-01-01 00:00" not in html  # the locale's short format, not ISO
