"""The pages in a real Chromium (Debian's), driven by Playwright.

The app is served on a loopback port over a generated data set, and people
sign in through the real OpenID Connect provider process (they type their
email on its page and press "Sign in"). Covered: filter and sort the job
search, open a job and edit a prop, create and revoke a token, switch
language and theme, an admin disabling a user; then axe-core on every page in
both languages and both themes (no serious or critical violation).
Screenshots land in ``artifacts/screenshots/`` (git-ignored).
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from clockwork_core.config import ClusterConfig, Config
from clockwork_core.db import ensure_indexes, get_client
from test_common.oidc import OidcProvider, oidc_provider, with_overrides  # noqa: F401
from test_common.webapp import serve

pytestmark = pytest.mark.browser

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
SHOTS = Path(__file__).resolve().parent.parent / "artifacts" / "screenshots"
ADMIN = "admin@example.org"
STAFF = "staff@example.org"
STUDENT = "student@example.org"
CLUSTERS = ("mila", "narval", "beluga")
TIMEOUT_MS = 15_000

if not os.path.exists(CHROMIUM):
    pytest.skip("Debian's chromium is not installed (/usr/bin/chromium)", allow_module_level=True)

sync_api = pytest.importorskip("playwright.sync_api")


class Site:
    """The served app: its URL and database."""

    def __init__(self, url: str, db: Any) -> None:
        self.url = url
        self.db = db


@pytest.fixture(scope="module")
def site(
    mongo_uri: str,
    oidc_provider: OidcProvider,  # noqa: F811
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Site]:
    from clockwork_core.config import load_config
    from clockwork_web import create_app
    from test_common.datagen import load_dataset

    name = "cw_test_browser"
    client = get_client(mongo_uri)
    client.drop_database(name)
    db = client[name]
    ensure_indexes(db)
    load_dataset(db, n_jobs=600, n_users=12, seed=21, clusters=list(CLUSTERS))
    base: Config = load_config(
        env={},
        overrides={
            "database.uri": mongo_uri,
            "database.name": name,
            "web.secret_key": "browser-tests-" + os.urandom(8).hex(),
        },
    )
    cfg = with_overrides(base, oidc_provider.config_overrides())
    cfg = cfg.model_copy(update={"clusters": {c: ClusterConfig() for c in CLUSTERS}})
    app = create_app(cfg)
    with serve(app) as url:
        web = cfg.web.model_copy(update={"base_url": url})
        app.config["CLOCKWORK"] = cfg.model_copy(update={"web": web})
        yield Site(url, db)
    client.drop_database(name)


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    with sync_api.sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


@pytest.fixture
def new_page(browser: Any) -> Iterator[Any]:
    contexts = []

    def make(color_scheme: str = "light") -> Any:
        context = browser.new_context(
            viewport={"width": 1280, "height": 900}, color_scheme=color_scheme, locale="en-US"
        )
        context.set_default_timeout(TIMEOUT_MS)
        contexts.append(context)
        page = context.new_page()
        page.on("dialog", lambda dialog: dialog.accept())
        return page

    yield make
    for context in contexts:
        context.close()


def login(page: Any, site: Site, email: str) -> None:
    """Sign in through the real provider: its page, the email, "Sign in"."""
    page.goto(site.url + "/login")
    page.click("#login-oidc")
    page.fill("#email", email)
    page.click("#sign-in")
    page.wait_for_url(re.compile(re.escape(site.url) + r"/(\?.*)?$"))
    assert page.locator("h1").first.inner_text() in ("My jobs", "Mes tâches")


def shot(page: Any, name: str) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / f"{name}.png"), full_page=True)


def set_prefs(site: Site, email: str, **settings: str) -> None:
    site.db.users.update_one(
        {"email": email}, {"$set": {f"settings.{k}": v for k, v in settings.items()}}
    )


@pytest.fixture(autouse=True)
def _reset_people(site: Site) -> Iterator[None]:
    yield
    site.db.users.update_many(
        {"email": {"$in": [ADMIN, STAFF, STUDENT]}}, {"$set": {"status": "enabled", "settings": {}}}
    )


# --------------------------------------------------------------------------- journeys


def test_search_sort_open_a_job_and_edit_a_prop(site: Site, new_page: Any) -> None:
    page = new_page()
    login(page, site, STUDENT)
    shot(page, "dashboard")
    page.click("nav.main-nav >> text=Jobs")
    page.select_option("#f-state", "FAILED")
    page.click("#apply-filters")
    page.wait_for_url(re.compile(r"state=FAILED"))
    rows = page.locator("#jobs-table tbody tr")
    assert rows.count() > 0
    for badge in page.locator("#jobs-table tbody .badge").all_inner_texts():
        assert badge in {
            "BOOT_FAIL",
            "CANCELLED",
            "DEADLINE",
            "FAILED",
            "NODE_FAIL",
            "OUT_OF_MEMORY",
            "PREEMPTED",
            "REVOKED",
            "SPECIAL_EXIT",
            "TIMEOUT",
        }
    # sort by job id, ascending then descending, by clicking its header
    page.click("#jobs-table thead >> text=Job ID")
    page.wait_for_url(re.compile(r"sort=job_id"))
    header = page.locator("#jobs-table thead th", has_text="Job ID")
    first_order = header.get_attribute("aria-sort")
    ids = [int(x) for x in page.locator("#jobs-table tbody th a").all_inner_texts()]
    assert ids == sorted(ids, reverse=first_order == "descending")
    page.click("#jobs-table thead >> text=Job ID")
    page.wait_for_function(
        "(o) => document.querySelector('#jobs-table thead th[aria-sort]:not([aria-sort=none])')"
        ".getAttribute('aria-sort') !== o",
        arg=first_order,
    )
    assert "state=FAILED" in page.url
    shot(page, "jobs")
    # keyboard: the first job link is reachable and opens the job page
    link = page.locator("#jobs-table tbody th a").first
    job_id = link.inner_text()
    link.focus()
    page.keyboard.press("Enter")
    page.wait_for_url(re.compile(rf"/jobs/\w+/{job_id}$"))
    assert job_id in page.locator("h1").inner_text()
    page.fill("#new-prop-name", "experiment")
    page.fill("#new-prop-value", "lr=0.01 <b>")
    page.click("#save-props")
    page.wait_for_url(re.compile(r"#props$"))
    assert page.locator("#props-form input[name=value]").first.input_value() == "lr=0.01 <b>"
    shot(page, "job")


def test_tokens_language_and_theme(site: Site, new_page: Any) -> None:
    page = new_page()
    login(page, site, STUDENT)
    page.goto(site.url + "/settings")
    page.fill("#t-name", "laptop")
    page.click("#create-token")
    token = page.locator("#new-token").inner_text()
    assert token.startswith("cw_")
    shot(page, "settings-new-token")
    page.goto(site.url + "/settings")  # a later visit never shows the token again
    assert token not in page.content()
    row = page.locator("#tokens-table tbody tr", has_text="laptop")
    row.locator("button", has_text="Revoke").click()
    page.wait_for_selector("#no-tokens")
    assert site.db.api_tokens.count_documents({"user_email": STUDENT}) == 0
    # language
    page.click("#switch-language")
    page.wait_for_function("document.documentElement.lang === 'fr'")
    assert page.locator("nav.main-nav").inner_text().startswith("Tableau de bord")
    # theme: follows the system until picked
    assert page.evaluate("document.documentElement.dataset.theme") == "system"
    page.click("#switch-theme")
    page.wait_for_function("document.documentElement.dataset.theme === 'dark'")
    background = page.evaluate("getComputedStyle(document.body).backgroundColor")
    assert background == "rgb(15, 19, 24)"
    shot(page, "settings-fr-dark")


def test_an_admin_disables_a_user(site: Site, new_page: Any) -> None:
    student = new_page()
    login(student, site, STUDENT)
    admin = new_page()
    login(admin, site, ADMIN)
    admin.click("nav.main-nav >> text=Admin")
    admin.fill("#u-q", "student")
    admin.press("#u-q", "Enter")
    admin.click(f"#users-table >> text={STUDENT}")
    shot(admin, "admin-user")
    admin.click("#disable-user")
    admin.wait_for_selector("#enable-user")
    assert "disabled" in admin.locator("#user-status").inner_text()
    assert site.db.users.find_one({"email": STUDENT})["status"] == "disabled"
    response = student.goto(site.url + "/jobs")
    assert response.status == 403
    admin.goto(site.url + "/admin/audit")
    assert admin.locator("#audit-table tbody tr", has_text="user.status").count() >= 1


# --------------------------------------------------------------------------- accessibility


def _pages(site: Site) -> list[tuple[str, str, str]]:
    """(name, who, path) of every page."""
    job = site.db.jobs.find_one(
        {"cw.user": STUDENT, "slurm.array_job_id": {"$ne": None}}
    ) or site.db.jobs.find_one({"cw.user": STUDENT})
    node = site.db.nodes.find_one({"slurm.cluster_name": "mila"})["slurm"]
    j = job["slurm"]
    return [
        ("login", "", "/login"),
        ("dashboard", STUDENT, "/"),
        ("jobs", STUDENT, "/jobs?fold=1"),
        ("jobs-staff", STAFF, "/jobs?state=RUNNING&sort=name"),
        ("job", STUDENT, f"/jobs/{j['cluster_name']}/{j['job_id']}"),
        ("nodes", STUDENT, "/nodes"),
        ("node", STAFF, f"/nodes/mila/{node['name']}"),
        ("gpus", STUDENT, "/gpus"),
        ("clusters", STUDENT, "/clusters"),
        ("cluster", STUDENT, "/clusters/mila"),
        ("user", STUDENT, f"/users/{STUDENT}"),
        ("settings", STUDENT, "/settings"),
        ("admin-users", ADMIN, "/admin/users"),
        ("admin-user", ADMIN, f"/admin/users/{STUDENT}"),
        ("admin-audit", ADMIN, "/admin/audit"),
    ]


def test_axe_finds_nothing_serious_on_any_page(site: Site, browser: Any) -> None:
    from axe_playwright_python.sync_playwright import Axe

    axe = Axe()
    problems: list[str] = []
    sessions: dict[tuple[str, str], Any] = {}
    try:
        for language in ("en", "fr"):
            for theme in ("light", "dark"):
                for email in (ADMIN, STAFF, STUDENT):
                    set_prefs(site, email, language=language, theme=theme)
                for name, who, path in _pages(site):
                    # a visitor's language comes from the browser: one context each
                    key = (who, theme, "" if who else language)
                    if key not in sessions:
                        context = browser.new_context(
                            viewport={"width": 1280, "height": 900},
                            color_scheme=theme,
                            locale="fr-FR" if language == "fr" else "en-US",
                        )
                        context.set_default_timeout(TIMEOUT_MS)
                        page = context.new_page()
                        if who:
                            login(page, site, who)
                        sessions[key] = (context, page)
                    context, page = sessions[key]
                    page.goto(site.url + path)
                    assert page.evaluate("document.documentElement.lang") == language, path
                    if who:
                        assert page.evaluate("document.documentElement.dataset.theme") == theme
                    page.wait_for_load_state("load")
                    results = axe.run(page)
                    for violation in results.response["violations"]:
                        if violation.get("impact") in ("serious", "critical"):
                            targets = [n["target"] for n in violation["nodes"][:3]]
                            problems.append(
                                f"{name} [{language}/{theme}] {violation['id']}: "
                                f"{violation['help']} {targets}"
                            )
                    shot(page, f"{name}-{language}-{theme}")
    finally:
        for context, _page in sessions.values():
            context.close()
    assert not problems, "accessibility problems:\n" + "\n".join(problems)
