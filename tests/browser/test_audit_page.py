"""The audit trail page in real Chromium, against the real server.

Someone fails to sign in as Bo; an administrator, sent through sign-in by the /audit link,
sees that row in the table, filters by action (the URL keeps the filter), downloads the CSV
of the same filter (fetched with the sign-in token, handed over as a file) and reads it
back. Bo, a member, has no link to the page and is told it is for administrators.
"""

from __future__ import annotations

import csv
import io
import re
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import expect

from tests.browser.conftest import PASSWORD, Server
from tests.browser.pages import PHONE, open_person, sign_in

pytestmark = pytest.mark.browser


def test_admin_reads_filters_and_exports_the_audit_trail(
    browser: Any, contexts: list[Any], server: Server, artifacts: Path
) -> None:
    server.create_user("ada@example.org", "Ada Admin", PASSWORD, admin=True)
    server.emails["ada"], server.names["ada"] = "ada@example.org", "Ada Admin"
    status, _ = server.request(
        "POST", "/api/auth/login", body={"email": "bo@example.org", "password": "not her password"}
    )
    assert status == 401

    page = open_person(browser, contexts, server)
    sign_in(page, server, "ada", path="/audit")
    expect(page.get_by_test_id("audit-page")).to_be_visible()
    expect(page).to_have_url(re.compile(r"/audit$"))
    expect(page.get_by_role("heading", level=1)).to_have_text("Audit trail")
    link = page.get_by_test_id("audit-link")
    expect(link).to_be_visible()
    expect(link).to_have_attribute("aria-current", "page")

    # the failed sign-in is in the table: who was tried, refused, from where
    rows = page.get_by_test_id("audit-row")
    failed = rows.filter(has=page.locator("code", has_text=re.compile(r"^sign-in-failed$")))
    expect(failed).to_have_count(1)
    expect(failed).to_have_attribute("data-outcome", "refused")
    expect(failed).to_contain_text("Bo Berg")
    expect(failed).to_contain_text("bo@example.org")
    expect(failed).to_contain_text("127.0.0.1")
    expect(failed).to_contain_text("wrong password")
    # Ada's own sign-in is there too, newer
    expect(rows.first).to_have_attribute("data-action", "sign-in")
    expect(rows.first).to_contain_text("Ada Admin")

    # filter by action: only those rows, and the address bar keeps the filter
    page.get_by_label("Action").select_option("sign-in-failed")
    page.get_by_test_id("filter-apply").click()
    expect(page).to_have_url(re.compile(r"/audit\?action=sign-in-failed$"))
    expect(rows).to_have_count(1)
    expect(rows).to_have_attribute("data-action", "sign-in-failed")
    expect(page.get_by_test_id("audit-summary")).to_have_text("1 event")
    csv_link = page.get_by_test_id("audit-csv")
    expect(csv_link).to_have_attribute("href", "/api/admin/audit.csv?action=sign-in-failed")
    page.reload()
    expect(page.get_by_label("Action")).to_have_value("sign-in-failed")
    expect(rows).to_have_count(1)

    # the CSV of the same filter, as a downloaded file
    requests: list[Any] = []
    page.on("request", lambda request: requests.append(request))
    with page.expect_download() as info:
        csv_link.click()
    download = info.value
    assert download.suggested_filename == "tertulia-audit.csv"
    saved = artifacts / "tertulia-audit.csv"
    download.save_as(saved)
    table = list(csv.DictReader(io.StringIO(saved.read_text(encoding="utf-8"), newline="")))
    assert [(r["action"], r["outcome"], r["actor_email"]) for r in table] == [
        ("sign-in-failed", "refused", "bo@example.org")
    ]
    assert "bo@example.org" in table[0]["detail"] and table[0]["address"] == "127.0.0.1"
    exports = [r for r in requests if "/api/admin/audit.csv" in r.url]
    assert exports and all("token" not in r.url for r in exports)  # the token stays in a header
    assert exports[0].headers.get("authorization", "").startswith("Bearer ")
    expect(page.get_by_test_id("audit-status")).to_contain_text("The CSV is downloaded (1 event)")

    # the export is itself on the trail
    page.get_by_label("Action").select_option("audit-export")
    page.get_by_test_id("filter-apply").click()
    expect(rows).to_have_count(1)
    expect(rows).to_contain_text("Ada Admin")

    # on a phone the page does not scroll sideways (the table scrolls in its own box)
    page.set_viewport_size(PHONE)
    scroll = page.evaluate("() => document.documentElement.scrollWidth")
    assert scroll <= PHONE["width"], f"the page is {scroll} px wide"

    # Bo is a member: no link, and the page says who may read it
    bo = open_person(browser, contexts, server, viewport=PHONE)
    sign_in(bo, server, "bo", path="/audit")
    expect(bo.get_by_test_id("audit-forbidden")).to_be_visible()
    expect(bo.get_by_role("alert")).to_have_text("Only administrators can read the audit trail.")
    expect(bo.get_by_test_id("audit-link")).to_have_count(0)
