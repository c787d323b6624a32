"""Headless Chromium (Debian's `chromium` and `chromedriver`) driven by Selenium, for tests of pages."""

import shutil

import pytest

CHROMIUM = shutil.which("chromium")
CHROMEDRIVER = shutil.which("chromedriver")
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--window-size=1400,900",  # the operator's screen the console is laid out for
]

needs_chromium = pytest.mark.skipif(
    not (CHROMIUM and CHROMEDRIVER),
    reason="needs Debian's chromium and chromium-driver (apt-get install chromium chromium-driver; .ci/run does)",
)


def chromium(user_data_dir):
    """A fresh headless browser. Both paths are given, so Selenium never looks for (or fetches) a driver."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in [*FLAGS, f"--user-data-dir={user_data_dir}"]:
        options.add_argument(flag)
    return webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)


WAIT = 60  # seconds a wait in a page may last: a bound, not a latency check


def sign_in(browser, server, credentials):
    """Sign in to the admin of `server` (tests/daphne.DaphneServer) as (username, password)."""
    from selenium.webdriver.common.by import By

    browser.get(f"{server.url}/admin/login/?next=/admin/")
    browser.find_element(By.NAME, "username").send_keys(credentials[0])
    browser.find_element(By.NAME, "password").send_keys(credentials[1])
    browser.find_element(By.CSS_SELECTOR, "input[type=submit]").click()
    wait_until(browser, lambda: browser.find_elements(By.ID, "user-tools"))  # signed in, on the home page


def wait_until(browser, condition):
    """Wait for `condition()` to be true. A page that swaps its content (the dashboard) may replace an
    element between finding and reading it: such a read is tried again."""
    from selenium.common.exceptions import StaleElementReferenceException
    from selenium.webdriver.support.ui import WebDriverWait

    wait = WebDriverWait(
        browser, WAIT, poll_frequency=0.2, ignored_exceptions=[StaleElementReferenceException]
    )
    return wait.until(lambda driver: condition())


def text(browser, selector):
    """The text of the first element `selector` finds, read in one step (so a swap cannot come between)."""
    found = browser.execute_script(
        "const element = document.querySelector(arguments[0]); return element && element.innerText;", selector
    )
    assert found is not None, f"nothing matches {selector}"
    return found.strip()
