"""The interactive leaderboard page in a real browser (Debian's chromium and chromium-driver, through selenium).

Marker ``browser`` (``make test-browser``; ``.ci/run`` installs the browser with apt and runs these when time allows).
The page is the example leaderboard's, rendered from its saved results; it is opened from ``file://``, with
Chromium's background networking off, so any request the page made would fail and show in the console log.
``SCREENSHOT_TO=docs/leaderboard-page.png`` also writes the screenshot kept in ``docs/``.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from benchmarks.leaderboard import write_leaderboard, write_paper_leaderboard
from benchmarks.spec import CompareConfig
from tests.conftest import ROOT

pytestmark = pytest.mark.browser

CHROMIUM, DRIVER = "/usr/bin/chromium", "/usr/bin/chromedriver"


@pytest.fixture(scope="module")
def pages(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("page")
    for p in (ROOT / "docs" / "example-leaderboard").glob("*.json"):
        shutil.copy(p, folder / p.name)
    write_leaderboard(folder, CompareConfig(baseline="BM25"))
    write_paper_leaderboard(folder, CompareConfig(baseline="BM25"))
    return folder


@pytest.fixture(scope="module")
def driver():
    webdriver = pytest.importorskip("selenium.webdriver")
    from selenium.webdriver.chrome.service import Service

    if not (Path(CHROMIUM).is_file() and Path(DRIVER).is_file()):
        pytest.skip("Debian's chromium and chromium-driver are not installed (apt-get install chromium chromium-driver)")
    opts = webdriver.ChromeOptions()
    for a in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--disable-background-networking", "--disable-component-update",
              "--no-first-run", "--disable-sync", "--disable-extensions", "--window-size=1500,1100"):
        opts.add_argument(a)
    opts.binary_location = CHROMIUM
    opts.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    d = webdriver.Chrome(service=Service(DRIVER), options=opts)
    yield d
    d.quit()


def open_page(driver, path: Path):
    driver.get(path.as_uri())
    driver.get_log("browser")  # start each test with an empty log
    return driver


def errors(driver) -> list[dict]:
    return [e for e in driver.get_log("browser") if e["level"] in ("SEVERE", "WARNING")]


def visible_rows(driver, table: str = "t-0") -> list[str]:
    return [r.get_attribute("data-model") for r in driver.find_elements("css selector", f"#{table} tbody tr") if r.is_displayed()]


def column_values(driver, col: str, table: str = "t-0") -> list[float | None]:
    out = []
    for r in driver.find_elements("css selector", f"#{table} tbody tr"):
        cell = r.find_element("css selector", f"td[data-col='{col}']")
        v = cell.get_attribute("data-v")
        out.append(float(v) if v is not None else None)
    return out


def test_sorting_by_a_column_reorders_the_rows(driver, pages):
    open_page(driver, pages / "leaderboard.html")
    before = visible_rows(driver)
    head = driver.find_element("css selector", "#t-0 th[data-key='scifact']")
    head.click()
    desc = column_values(driver, "scifact")
    got = [v for v in desc if v is not None]
    assert got == sorted(got, reverse=True) and desc[len(got):] == [None] * (len(desc) - len(got))  # best first, missing last
    assert visible_rows(driver) != before and "sorted-desc" in head.get_attribute("class")
    head.click()
    asc = [v for v in column_values(driver, "scifact") if v is not None]
    assert asc == sorted(asc)
    driver.find_element("css selector", "#t-0 th[data-key='model']").click()
    names = visible_rows(driver)
    assert names == sorted(names, key=str.lower, reverse=True) or names == sorted(names, reverse=True)
    assert errors(driver) == []


def test_filters_hide_rows_and_columns(driver, pages):
    open_page(driver, pages / "leaderboard.html")
    every = visible_rows(driver)
    box = driver.find_element("id", "filter-model")
    box.send_keys("minilm")
    shown = visible_rows(driver)
    assert 0 < len(shown) < len(every) and all("minilm" in s.lower() for s in shown)
    box.clear()
    box.send_keys(" ")  # the input event fires; a blank filter shows everything again
    driver.find_element("css selector", "#filter-encoder option[value='bm25']").click()
    assert visible_rows(driver) == ["BM25"]
    driver.find_element("css selector", "#filter-encoder option[value='']").click()
    cell = driver.find_element("css selector", "#t-0 th[data-col='cosqa']")
    assert cell.is_displayed()
    driver.find_element("css selector", ".filter-dataset[value='cosqa']").click()
    assert not cell.is_displayed() and not driver.find_element("css selector", "#t-0 td[data-col='cosqa']").is_displayed()
    assert errors(driver) == []


def test_the_per_query_view_draws_a_pair(driver, pages):
    open_page(driver, pages / "leaderboard.html")
    driver.find_element("css selector", "#cmp-a option[value='BM25+all-MiniLM-L6-v2 (rrf) (fusion)']").click()
    driver.find_element("css selector", "#cmp-b option[value='BM25 (bm25)']").click()
    driver.find_element("css selector", "#cmp-col option[value='scifact']").click()
    driver.find_element("id", "cmp-go").click()
    bars = driver.find_elements("css selector", "#cmp-svg rect.bar")
    text = driver.find_element("id", "cmp-out").text
    assert len(bars) == 300 and "300 queries sorted: mean 0.0319" in text  # SciFact's 300 test queries; fusion - BM25 = 0.7182 - 0.6863
    assert errors(driver) == []


def test_a_click_shows_the_provenance_and_tooltips_explain(driver, pages):
    open_page(driver, pages / "leaderboard.html")
    cell = driver.find_element("css selector", "#t-0 tr[data-model='BM25'] td[data-col='scifact']")
    assert "95% CI [" in cell.get_attribute("title")
    rank = cell.find_element("css selector", ".rank")
    assert "bootstrap interval" in rank.get_attribute("title") and "tier" in rank.get_attribute("title")
    cell.click()
    prov = driver.find_element("id", "prov-body").text
    assert "dataset_checksum" in prov and "git_commit" in prov and "settings" in prov and "total_s" in prov
    fusion = driver.find_element("css selector", "#t-0 tr[data-model='BM25+all-MiniLM-L6-v2 (rrf)'] td[data-col='scifact'] sup.mark")
    assert fusion.text == "▲" and "adjusted" in fusion.get_attribute("title")
    assert errors(driver) == []


def test_the_paper_page_has_table1_and_sorts(driver, pages):
    open_page(driver, pages / "paper.html")
    assert driver.find_element("css selector", "#t1 th[data-key='BEIR-DPR']").is_displayed()
    driver.find_element("css selector", "#t1 th[data-key='BEIR-DPR']").click()
    vals = [v for v in column_values(driver, "BEIR-DPR", table="t1") if v is not None]
    assert vals == sorted(vals, reverse=True) and len(vals) >= 2
    assert errors(driver) == []


def test_screenshot(driver, pages):
    """With SCREENSHOT_TO set: the page filtered to SciFact and NFCorpus, a cell's provenance open and a pair drawn."""
    target = os.environ.get("SCREENSHOT_TO")
    if not target:
        pytest.skip("set SCREENSHOT_TO=docs/leaderboard-page.png to write the docs screenshot")
    open_page(driver, pages / "leaderboard.html")
    for box in driver.find_elements("css selector", ".filter-dataset"):
        if box.get_attribute("value") not in ("nfcorpus", "scifact"):
            box.click()
    driver.find_element("css selector", "#t-0 th[data-key='mean']").click()
    driver.find_element("css selector", "#t-0 tr[data-model='BM25+all-MiniLM-L6-v2 (rrf)'] td[data-col='scifact']").click()
    driver.find_element("css selector", "#cmp-a option[value='BM25+all-MiniLM-L6-v2 (rrf) (fusion)']").click()
    driver.find_element("css selector", "#cmp-b option[value='BM25 (bm25)']").click()
    driver.find_element("css selector", "#cmp-col option[value='scifact']").click()
    driver.find_element("id", "cmp-go").click()
    driver.set_window_size(1500, 1650)
    driver.execute_script("window.scrollTo(0, 0)")
    assert driver.save_screenshot(str(Path(target).resolve())) and errors(driver) == []
