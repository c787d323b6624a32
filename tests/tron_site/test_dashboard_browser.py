"""The admin's home page in headless Chromium, served by Daphne as `make run` serves it: it renders its
figures and its chart, styled, and updates itself when a chat turn happens."""

import httpx2
import pytest

from tests.browser import needs_chromium, sign_in, text, wait_until
from tests.factories import ago, make_llm_call, make_persona, make_process

pytestmark = [needs_chromium, pytest.mark.django_db(transaction=True)]


def test_the_dashboard_shows_its_figures_and_chart_and_updates_on_a_new_turn(
    browser, daphne, operator, upstream
):
    from selenium.webdriver.common.by import By

    tony = make_persona(name="Tony", system_prompt="You are Tony.", sort_order=1)
    maya = make_persona(name="Maya", system_prompt="You are Maya.", sort_order=2)
    make_llm_call(make_process(maya, status="completed"), cost_usd="0.25", created_at=ago(days=2))
    make_llm_call(make_process(tony, status="completed"), cost_usd="0.50", created_at=ago(days=1))
    upstream.reset()

    sign_in(browser, daphne, operator)
    wait_until(browser, lambda: browser.find_elements(By.ID, "tron-dashboard"))

    # Styled: the admin's CSS arrived through the server (an unstyled header has no background).
    header = browser.find_element(By.ID, "header")
    assert header.value_of_css_property("background-color") not in ("rgba(0, 0, 0, 0)", "transparent")
    assert text(browser, "#figure-processes .value") == "0"
    assert text(browser, "#figure-spend .value") == "$0.00"
    bars = browser.find_elements(By.CSS_SELECTOR, "#spend-chart rect.bar")
    assert len(bars) == 2
    assert browser.find_element(By.ID, "spend-chart").size["height"] > 0
    assert "No conversation is open and nothing is running." in text(browser, "#conversations")

    reply = httpx2.post(
        f"{daphne.url}/v1/chat/completions",
        json={"model": "maya", "messages": [{"role": "user", "content": "Hi Maya"}]},
        headers={"X-Request-ID": "browser-test"},
        timeout=30,
    )
    assert reply.status_code == 200
    process_id = reply.headers["X-Tron-Process-ID"]

    # No reload: the page fetches its figures again by itself.
    wait_until(browser, lambda: browser.find_elements(By.CSS_SELECTOR, f'tr[data-process="{process_id}"]'))
    assert text(browser, "#figure-processes .value") == "1"
    assert text(browser, "#figure-sessions .value") == "1"
    row = text(browser, f'tr[data-process="{process_id}"]')
    assert "Maya" in row and "req-browser-test" in row
    assert text(browser, "#figure-spend .value") != "$0.00"  # gpt-4o-mini is priced
    assert "Maya" in text(browser, "#spend-today")
    assert len(browser.find_elements(By.CSS_SELECTOR, "#spend-chart rect.bar")) == 3
