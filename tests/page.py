"""Drive raydist's web page in Debian's chromium (headless, through selenium and chromedriver)."""

from __future__ import annotations

import os
import shutil

import pytest

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
DRIVER = shutil.which("chromedriver") or "/usr/bin/chromedriver"
WAIT_S = 120


def browser():
    if not (os.path.exists(CHROMIUM) and os.path.exists(DRIVER)):
        pytest.skip("chromium and chromedriver are not installed: apt-get install chromium chromium-driver")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    opts = webdriver.ChromeOptions()
    opts.binary_location = CHROMIUM
    for arg in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--window-size=1400,1100",
    ):
        opts.add_argument(arg)
    opts.add_argument("--autoplay-policy=no-user-gesture-required")
    return webdriver.Chrome(service=Service(DRIVER), options=opts)


def browse(url: str, token: str, row: tuple[str, str, str], screenshot: str | None = None) -> None:
    """Open the page with the token link, upload `row`'s file and see it first among the
    neighbours, play the first neighbour, open its clip view, click a clip on the map."""
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    path, cid, label = row
    driver = browser()
    try:
        wait = WebDriverWait(driver, WAIT_S)
        driver.get(f"{url}/?token={token}")
        wait.until(lambda d: "indexed" in d.find_element(By.ID, "about").text)
        wait.until(lambda d: d.execute_script("return points.length") > 0)
        assert "clips, PCA" in driver.find_element(By.ID, "map-note").text

        driver.find_element(By.ID, "file").send_keys(path)
        wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, "#hits li"))
        hits = driver.find_elements(By.CSS_SELECTOR, "#hits li")
        assert hits[0].find_element(By.CSS_SELECTOR, ".id").text == cid
        assert hits[0].find_element(By.CSS_SELECTOR, ".label").text == label
        assert float(hits[0].find_element(By.CSS_SELECTOR, ".distance").text.split()[-1]) < 1e-4

        driver.execute_script("document.querySelector('#hits audio').play()")
        wait.until(lambda d: d.execute_script("return document.querySelector('#hits audio').currentTime") > 0)

        hits[0].find_element(By.CSS_SELECTOR, "button.view").click()
        wait.until(lambda d: d.execute_script("return document.getElementById('view').dataset.events") is not None)
        assert driver.find_element(By.ID, "clip-id").text == cid
        assert driver.find_element(By.ID, "clip").is_displayed()

        # a clip on the map: click where the page drew it; its neighbours and view follow
        x, y, other = driver.execute_script(
            "const c = document.getElementById('map'), p = points.find(q => q.id !== arguments[0]);"
            "const [x, y] = scale(c)(p), b = c.getBoundingClientRect();"
            "return [x * b.width / c.width - b.width / 2, y * b.height / c.height - b.height / 2, p.id];",
            cid,
        )
        ActionChains(driver).move_to_element_with_offset(
            driver.find_element(By.ID, "map"), int(x), int(y)
        ).click().perform()
        wait.until(lambda d: d.find_element(By.ID, "clip-id").text == other)
        wait.until(lambda d: d.find_element(By.CSS_SELECTOR, "#hits li .id").text == other)
        if screenshot:
            driver.set_window_size(1400, 1500)
            driver.execute_script("window.scrollTo(0, 0)")
            driver.save_screenshot(screenshot)
    finally:
        driver.quit()
