"""The console in a real browser: Debian's Chromium, driven by Playwright, on the demo's store.

``retrainctl demo`` runs in a fresh folder, ``retrainctl serve`` serves its store as a separate
process, and Chromium logs in, reads the pages, approves and vetoes through the forms, and is
refused without a token. With ``RETRAIN_SCREENSHOTS=<folder>`` the test also saves the README's
screenshots of the fleet and model pages there.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from controller.adapters.store.store import Store
from controller.web.auth import token_hash

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM = "/usr/bin/chromium"
ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
OWNER, VIEWER = "rc_browser-owner-token", "rc_browser-viewer-token"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    """The demo's store and registry, served by ``retrainctl serve`` with an owner and a viewer token."""
    work = tmp_path_factory.mktemp("console")
    shutil.copytree(ROOT / "configs", work / "configs")
    env = {k: v for k, v in os.environ.items() if not k.startswith("RETRAIN_") and k != "PROMETHEUS_MULTIPROC_DIR"}
    demo = subprocess.run(
        [sys.executable, "-m", "controller", "demo"], cwd=work, env=env, capture_output=True, text=True, timeout=300
    )
    assert demo.returncode == 0, demo.stderr[-2000:]
    assert "retrainctl serve" in demo.stdout  # the demo says how to open the console
    with (work / "configs" / "controller.yaml").open("a") as f:
        f.write(
            "\nconsole:\n  tokens:\n"
            f"    - {{name: risk-owner, role: owner, team: risk, sha256: {token_hash(OWNER)}}}\n"
            f"    - {{name: dashboard, role: viewer, sha256: {token_hash(VIEWER)}}}\n"
        )
    port = _free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "controller", "serve", "--port", str(port)],
        cwd=work,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(f"{url}/healthz", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert server.poll() is None, server.stdout.read() if server.stdout else "serve exited"
            assert time.monotonic() < deadline, "the console did not start within 60 s"
            time.sleep(0.2)
        yield url, work
    finally:
        server.terminate()
        output, _ = server.communicate(timeout=30)
        for secret in (OWNER, VIEWER):
            assert secret not in output  # nothing secret in the server's log
        assert "GET /models/credit-risk" in output  # the access log was there to look at


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    assert Path(CHROMIUM).exists(), "Chromium is missing: apt-get install -y chromium chromium-driver"
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        yield b
        b.close()


def _login(browser: Any, url: str, token: str) -> Any:
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    response = page.goto(f"{url}/")
    assert response.status == 401 and page.locator("input[name=token]").count() == 1
    page.fill("input[name=token]", token)
    page.click("form.login button")
    page.wait_for_url(f"{url}/")
    return page


@pytest.mark.slow
def test_fleet_and_model_pages_show_the_demo_with_charts(browser: Any, served: tuple[str, Path]) -> None:
    url, _ = served
    page = _login(browser, url, VIEWER)
    row = page.locator("tr[data-model=credit-risk]")
    assert row.count() == 1
    assert row.locator(".decision").first.inner_text() == "VETO"  # week 4: a column arrived as nulls
    assert "data_quality_failure" in row.inner_text()
    shots = os.environ.get("RETRAIN_SCREENSHOTS")
    if shots:
        page.screenshot(path=str(Path(shots) / "console-fleet.png"), full_page=True)
    page.click("tr[data-model=credit-risk] a")
    page.wait_for_url(f"{url}/models/credit-risk")
    assert page.locator("section.cards .decision").inner_text() == "VETO"
    charts = page.locator("svg.chart")
    assert charts.count() == 3
    for i in range(3):
        chart = charts.nth(i)
        lines = chart.locator("path.line")
        assert lines.count() >= 1 and "no data yet" not in chart.inner_html()
        box = lines.first.bounding_box()  # laid out by the browser: the line has extent on screen
        assert box is not None and box.get("width", 0) > 100
    assert charts.nth(0).locator("circle.dot").count() >= 3  # the realized and estimated weeks
    assert charts.nth(0).locator("line.mark-trigger").count() == 1  # week 3's TRIGGER
    assert charts.nth(0).locator("line.mark-veto").count() == 1  # week 4's VETO
    assert charts.nth(0).locator("line.mark-retrain").count() == 1
    assert page.locator("table.drift tr").count() > 5
    assert "promoted" in page.locator("section", has_text="Retrains").last.inner_text()
    assert page.locator("form.action").count() == 0  # a viewer gets no action forms
    if shots:
        page.screenshot(path=str(Path(shots) / "console-model.png"), full_page=True)
    page.close()


@pytest.mark.slow
def test_approve_and_veto_with_an_owner_token_refused_without(browser: Any, served: tuple[str, Path]) -> None:
    url, work = served
    anonymous = browser.new_page()
    refused = anonymous.request.post(f"{url}/models/credit-risk/approve", form={"reason": "x", "csrf": "0"})
    assert refused.status == 401
    api = anonymous.request.post(f"{url}/api/models/credit-risk/veto", data={"reason": "x"})
    assert api.status == 401
    anonymous.close()
    viewer = _login(browser, url, VIEWER)
    forbidden = viewer.request.post(
        f"{url}/api/models/credit-risk/veto", data={"reason": "x"}, headers={"Authorization": f"Bearer {VIEWER}"}
    )
    assert forbidden.status == 403
    viewer.close()

    page = _login(browser, url, OWNER)
    page.goto(f"{url}/models/credit-risk")
    page.fill("form[action$=approve] input[name=reason]", "new labels are in")
    page.click("form[action$=approve] button")
    page.wait_for_url("**/models/credit-risk?done=approve")
    assert "approve recorded as risk-owner" in page.locator(".notice").inner_text()
    page.fill("form[action$=veto] input[name=reason]", "quarter-end freeze")
    page.fill("form[action$=veto] input[name=hours]", "12")
    page.click("form[action$=veto] button")
    page.wait_for_url("**/models/credit-risk?done=veto")
    in_force = page.locator("tr.override").all_inner_texts()
    assert any("veto" in r and "risk-owner" in r and "quarter-end freeze" in r for r in in_force)
    assert any("approve" in r and "risk-owner" in r for r in in_force)
    # a forged form (a wrong CSRF token) with the owner's cookie is refused
    forged = page.request.post(f"{url}/models/credit-risk/veto", form={"reason": "forged", "csrf": "0" * 64})
    assert forged.status == 403
    page.close()
    store = Store(f"sqlite:///{work / '.retrain' / 'audit.db'}")
    from controller.adapters.store.tables import utcnow

    kept = [(o.kind, o.author, o.reason) for o in store.overrides_in_force(utcnow(), "credit-risk")]
    store.dispose()
    assert sorted(kept) == [
        ("approve", "risk-owner", "new labels are in"),
        ("veto", "risk-owner", "quarter-end freeze"),
    ]


@pytest.mark.slow
def test_metrics_parse_with_prometheus_client(browser: Any, served: tuple[str, Path]) -> None:
    url, _ = served
    page = browser.new_page()
    response = page.goto(f"{url}/metrics")
    assert response.status == 200
    text = response.text()
    page.close()
    families = {f.name: f for f in text_string_to_metric_families(text)}
    assert {"retrain_checks", "retrain_decisions", "retrain_check_duration_seconds", "retrain_retrains"} <= set(
        families
    )
    assert {"retrain_outbox_items", "retrain_team_budget_left", "retrain_models"} <= set(families)
    models = {s.labels["decision"]: s.value for s in families["retrain_models"].samples}
    assert models["VETO"] == 1
