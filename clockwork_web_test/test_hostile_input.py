"""Hostile query strings and path segments answer a 4xx with a message, never a 500.

Each case here once answered 500: a date that leaves the calendar once moved
to UTC (OverflowError), an integer past 64 bits reaching BSON or ``skip()``,
a query argument named like one of ``url_for``'s own (TypeError). The API
answers JSON ``{"error": {"code", "message"}}``; pages an HTML error page (or
the search form with its message).
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

import api_fixtures
import pytest
from api_fixtures import ALICE, Api
from flask.testing import FlaskClient

from clockwork_web.errors import MAX_URI_BYTES, BadRequest
from clockwork_web.jobs.query import MAX_PAGE, parse_datetime, parse_int, parse_page

# the shared fixtures, under the names the tests ask for
api = api_fixtures.api
api_config = api_fixtures.api_config

#: In year 0 and in year 10000 once converted to UTC.
EDGE_DATES = ("0001-01-01T00:00:00+01:00", "9999-12-31T23:59:59-10:00")
#: Past 2**64.
HUGE = "99999999999999999999"


def session_client(api: Api, email: str) -> FlaskClient:
    """A browser logged in as ``email`` (the session cookie, as test_pages does)."""
    client = api.app.test_client()
    with client.session_transaction() as session:
        session["user_email"] = email
    return client


def api_error(response: Any, status: int = 400) -> str:
    """The message of a JSON error answer, after checking its status."""
    assert response.status_code == status, response.get_data(as_text=True)[:300]
    body = response.get_json()
    assert body["error"]["message"], body
    return body["error"]["message"]


def page_error(response: Any, status: int = 400) -> str:
    """The HTML of an error page (or a page showing its error), after checking its status."""
    assert response.status_code == status, response.get_data(as_text=True)[:300]
    assert response.mimetype == "text/html"
    text = response.get_data(as_text=True)
    assert "Traceback" not in text
    return text


# --------------------------------------------------------------------------- dates


def test_dates_off_the_calendar_in_utc_are_a_400(api: Api) -> None:
    browser = session_client(api, ALICE)
    for date in EDGE_DATES:
        value = quote(date)
        for param in ("submitted_before", "submitted_after"):
            assert param in api_error(api.get(ALICE, f"/api/v1/jobs?{param}={value}"))
            assert "out of range" in page_error(browser.get(f"/jobs?{param}={value}"))
            export = browser.get(f"/jobs/export.csv?{param}={value}")
            assert "out of range" in page_error(export)
        start = api.get(ALICE, f"/api/v1/stats/usage?start={value}&end=2024-01-01")
        assert "start" in api_error(start)
        end = api.get(ALICE, f"/api/v1/stats/usage?start=2024-01-01&end={value}")
        assert "end" in api_error(end)
    # only what cannot be converted is refused: year 1 and year 9999 in UTC are dates
    for query in (
        "submitted_after=0001-01-01T00:00:00Z",
        "submitted_before=9999-12-31T23:59:59Z",
        "submitted_after=0001-01-01T00:00:00-01:00",
    ):
        response = api.get(ALICE, f"/api/v1/jobs?{quote(query, safe='=')}")
        assert response.status_code == 200, (query, response.get_json())
        assert browser.get(f"/jobs?{quote(query, safe='=')}").status_code == 200, query
    for period in ("start=0001-01-01&end=0001-06-01", "start=9999-06-01&end=9999-12-31T23:59:59Z"):
        response = api.get(ALICE, f"/api/v1/stats/usage?{quote(period, safe='=&')}")
        assert response.status_code == 200, (period, response.get_json())


def test_parse_datetime_names_the_parameter() -> None:
    with pytest.raises(BadRequest, match=r"^end: .*out of range"):
        parse_datetime(EDGE_DATES[1], "end")


# --------------------------------------------------------------------------- integers


@pytest.mark.parametrize(
    ("value", "accepted"),
    [
        ("1", 1),
        ("+7", 7),
        (str(MAX_PAGE), MAX_PAGE),
        (str(MAX_PAGE + 1), None),
        ("0", None),
        ("-1", None),
        (HUGE, None),
        ("9" * 5000, None),  # past Python's int() digit limit: still a 400
        ("1e3", None),
        ("", 1),
        (None, 1),
    ],
)
def test_parse_page(value: str | None, accepted: int | None) -> None:
    if accepted is None:
        with pytest.raises(BadRequest, match=r"^page: "):
            parse_page(value)
    else:
        assert parse_page(value) == accepted


def test_parse_int_refuses_a_number_of_any_length() -> None:
    with pytest.raises(BadRequest, match="must be between 0 and"):
        parse_int(HUGE, "job_id")


def test_page_numbers_past_64_bits_are_a_400(api: Api) -> None:
    assert "page" in api_error(api.get(ALICE, f"/api/v1/submissions?page={HUGE}"))
    assert "per_page" in api_error(api.get(ALICE, f"/api/v1/submissions?per_page={HUGE}"))
    assert "page" in api_error(api.get(ALICE, f"/api/v1/jobs?page={HUGE}"))
    browser = session_client(api, ALICE)
    assert "page" in page_error(browser.get(f"/submissions?page={HUGE}"))


def test_job_ids_past_64_bits_are_a_400(api: Api) -> None:
    assert "job_id" in api_error(api.get(ALICE, f"/api/v1/jobs/testcluster/{HUGE}"))
    monitor = api.get(ALICE, f"/monitor/slurm_job_id/{HUGE}?cluster=testcluster")
    assert "job_id" in api_error(monitor)
    browser = session_client(api, ALICE)
    assert "job_id" in page_error(browser.get(f"/jobs/testcluster/{HUGE}"))
    # a job id that is a number still finds the job, or says it is not there
    assert browser.get("/jobs/testcluster/100").status_code == 200
    assert browser.get("/jobs/testcluster/424242").status_code == 404


# --------------------------------------------------------------------------- url_for


#: Names ``url_for`` takes for itself; the search page once passed them on to it.
URL_FOR_NAMES = (
    "fmt=x",
    "_anchor=x",
    "_method=POST",
    "endpoint=x",
    "_external=1&_scheme=javascript",
    "_external=1&_scheme=javascript&cluster=testcluster",
)


def test_url_for_arguments_in_the_query_string_are_refused(api: Api) -> None:
    browser = session_client(api, ALICE)
    for query in URL_FOR_NAMES:
        text = page_error(browser.get(f"/jobs?{query}"))
        assert "unknown parameter" in text, query
        assert "javascript:" not in text, query


# --------------------------------------------------------------------------- 414


def test_an_over_long_uri_is_a_414(api: Api) -> None:
    long_value = "x" * MAX_URI_BYTES
    assert "URI" in api_error(api.get(ALICE, f"/api/v1/jobs?name={long_value}"), 414)
    page_error(session_client(api, ALICE).get(f"/jobs?name={long_value}"), 414)
    # just under the bound: an ordinary 400 for a value too long
    short = "x" * (MAX_URI_BYTES - len("/api/v1/jobsname="))
    assert api.get(ALICE, f"/api/v1/jobs?name={short}").status_code == 400
