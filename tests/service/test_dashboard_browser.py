"""The dashboard in a real browser: Debian's headless chromium driven by Playwright.

Opens the dashboard of the session's finished job, checks the front plot draws one point
per front point, clicks a candidate, downloads its export, and saves a screenshot of the
job page (``HWSEARCH_SCREENSHOT=path`` writes it there, as for ``docs/dashboard.png``).

Chromium comes from apt (``make browser``, which ``.ci/run`` calls); Playwright's own
browser downloads are never used. Without chromium the test is skipped with the reason,
except under ``CI=true`` where it fails.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

CHROMIUM = os.environ.get("HWSEARCH_CHROMIUM", "/usr/bin/chromium")


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    if not (Path(CHROMIUM).exists() or shutil.which(CHROMIUM)):
        reason = f"chromium not found at {CHROMIUM} (install it with `make browser`)"
        if os.environ.get("CI", "").lower() not in {"", "0", "false", "no"}:
            pytest.fail(reason)
        pytest.skip(reason)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(
            executable_path=CHROMIUM,
            args=["--no-sandbox", "--disable-gpu", "--disable-background-networking"],
        )
        try:
            yield launched
        finally:
            launched.close()


def test_dashboard_shows_the_front_and_exports_a_candidate(
    api: Any, browser: Any, tmp_path: Path
) -> None:
    server, job_id = api
    front = server.store.latest_front(job_id)
    page = browser.new_page(viewport={"width": 1400, "height": 900}, accept_downloads=True)
    try:
        # Without a token the page asks for one and shows no data.
        page.goto(f"{server.url}/")
        page.wait_for_selector("#message:has-text('API token')")
        assert page.locator("#jobs tbody tr").count() == 0

        page.fill("#token", server.read_token)
        page.click("#login button")
        page.wait_for_selector(f"#jobs tbody tr[data-job-id='{job_id}']")
        row = page.locator(f"#jobs tbody tr[data-job-id='{job_id}']")
        assert "finished" in row.inner_text() and "tiny-service" in row.inner_text()

        row.click()
        page.wait_for_selector("#front-plot circle.point")
        assert page.locator("#job-state").inner_text() == "finished"
        points = page.locator("#front-plot circle.point")
        assert points.count() == len(front.points)
        drawn = {
            int(points.nth(i).get_attribute("data-candidate-id")) for i in range(points.count())
        }
        assert drawn == {p.candidate_id for p in front.points}
        assert page.locator("#front-plot circle.point.measured").count() == len(front.points)
        assert page.locator("#hv-plot polyline.hv").count() == 1
        assert "not comparable" in page.locator("#hv-note").inner_text()

        # Round ticks inside the values' natural bounds: accuracy never above 1, latency
        # never below 0; and a colour scale with its legend.
        for axis in ("x", "y"):
            ticks = [
                float(t) for t in page.locator(f"#front-plot text.{axis}-tick").all_text_contents()
            ]
            _assert_round(ticks)
            if axis == "x":  # latency_ms
                assert ticks[0] >= 0
            else:  # accuracy
                assert ticks[0] >= 0 and ticks[-1] <= 1
        legend = page.locator("#front-plot g.colour-legend")
        assert legend.count() == 1 and legend.locator("rect").count() == 1
        colour_metric = page.locator("#c-metric").input_value()
        assert legend.locator("text.legend-title").text_content() == colour_metric
        values = [
            c.metrics[colour_metric].value
            for c in (server.store.get_candidate(job_id, p.candidate_id) for p in front.points)
        ]
        low = float(legend.locator("text.legend-min").text_content() or "nan")
        assert low == pytest.approx(min(values), rel=0.01)

        # Another pair of objectives redraws the same points.
        assert page.locator("#front-plot text.x-label").text_content() == "latency_ms"
        assert page.locator("#front-plot text.y-label").text_content() == "accuracy"
        page.select_option("#x-metric", "macs")
        assert page.locator("#front-plot circle.point").count() == len(front.points)
        assert page.locator("#front-plot text.x-label").text_content() == "macs"
        page.select_option("#x-metric", "latency_ms")

        chosen = front.points[0].candidate_id
        page.locator(f"#front-plot circle[data-candidate-id='{chosen}']").click()
        page.wait_for_selector("#candidate-config")
        config = json.loads(page.locator("#candidate-config").inner_text())
        assert config == server.store.get_candidate(job_id, chosen).config
        assert page.locator("#candidate-metrics", has_text="measured").count() == 1

        shot = os.environ.get("HWSEARCH_SCREENSHOT")
        page.screenshot(path=shot or str(tmp_path / "dashboard.png"), full_page=True)

        with page.expect_download() as download_info:
            page.click("button[data-export='json']")
        download = download_info.value
        assert download.suggested_filename == f"job{job_id}-candidate{chosen}.json"
        saved = tmp_path / download.suggested_filename
        download.save_as(saved)
        exported = json.loads(saved.read_text())
        assert exported["candidate_id"] == chosen and exported["config"] == config
    finally:
        page.close()


def test_dashboard_plots_predictions_against_measurements(
    browser: Any, nb201_active_spec: Any, serve_store: Any, tmp_path: Path
) -> None:
    from hwsearch.db import Store
    from hwsearch.records import JobState
    from hwsearch.search.driver import Driver
    from hwsearch.search.spec import parse_spec

    store = Store.open(f"sqlite:///{tmp_path / 'active.db'}")
    job = Driver(parse_spec(nb201_active_spec()), store).run()
    stopped = store.create_job(
        name="stopped", family="mlp", target="cpu", spec={"budget": {"evaluations": 48}}
    ).id
    store.set_job_state(stopped, JobState.RUNNING)
    store.set_job_state(stopped, JobState.INTERRUPTED, error="interrupted (Ctrl-C)")
    pairs = {
        metric: sum(
            p.metric == metric and p.measured is not None for p in store.list_predictions(job.id)
        )
        for metric in ("accuracy", "latency_ms")
    }
    with serve_store(store) as server:
        page = browser.new_page(viewport={"width": 1400, "height": 900})
        try:
            page.goto(f"{server.url}/dashboard/#token={server.read_token}")
            page.goto(f"{server.url}/dashboard/#/jobs/{job.id}")
            page.wait_for_selector("#pred-plot circle.prediction")
            assert page.locator("#p-metric").input_value() == "accuracy"
            assert page.locator("#pred-plot circle.prediction").count() == pairs["accuracy"]
            assert "Spearman" in page.locator("#p-score").inner_text()
            page.select_option("#p-metric", "latency_ms")
            assert page.locator("#pred-plot circle.prediction").count() == pairs["latency_ms"]
            assert page.locator("#pred-plot text.x-label").text_content() == "measured latency_ms"

            # Measured against the budget, predictions said apart: never "105 of 100".
            budget = job.spec["budget"]["evaluations"]
            predicted = store.count_predicted(job.id)
            assert predicted > 0
            counts = page.locator("#job-counts").inner_text()
            measured = job.evaluations - predicted
            assert f"{measured} of {budget} measured" in counts and measured <= budget
            assert f"{predicted} settled by prediction" in counts

            # A job stopped at 14 of 48 shows 14/48, interrupted, not a full bar.
            page.goto(f"{server.url}/dashboard/#/")
            row = page.locator(f"#jobs tbody tr[data-job-id='{stopped}']")
            row.wait_for()
            assert "interrupted" in row.locator(".state").inner_text()
            assert "0/48" in row.inner_text()
            width = row.locator(".bar > span").evaluate("node => node.style.width")
            assert width == "0%"
        finally:
            page.close()
    store.close()


def _assert_round(ticks: list[float]) -> None:
    """Evenly spaced by 1, 2, 2.5 or 5 times a power of ten, each a multiple of the step."""
    import math

    assert len(ticks) >= 2
    step = ticks[1] - ticks[0]
    mantissa = step / 10 ** math.floor(math.log10(step))
    assert any(math.isclose(mantissa, m, rel_tol=1e-6) for m in (1, 2, 2.5, 5)), ticks
    for tick in ticks:
        assert math.isclose(tick / step, round(tick / step), abs_tol=1e-6), ticks
