"""The operator's console as an operator sees it: headless Chromium at 1400×900 against Daphne as `make run`
serves it. The lists show their key columns without scrolling sideways, the process page shows the
conversation above the fold, and the dashboard's live state follows a turn as it starts and ends."""

import os
import threading
from decimal import Decimal

import httpx2
import pytest

from agents.models import Message
from lifeloop.models import ActivityRun, JournalEntry, Post
from tests.browser import needs_chromium, sign_in, text, wait_until
from tests.factories import ago, make_llm_call, make_message, make_persona, make_process, make_session

pytestmark = [needs_chromium, pytest.mark.django_db(transaction=True)]

SCREENSHOTS = os.environ.get("TRON_TEST_SCREENSHOTS", "")  # a directory: save each page seen, to look at


@pytest.fixture
def busy_team(transactional_db):
    """Rows as long as real ones get: long caller ids, long answers, big token counts, long results."""
    tony = make_persona(
        name="Tony", role="CTO", system_prompt="You are Tony.", sort_order=1, life_enabled=True
    )
    maya = make_persona(name="Maya", role="CMO", system_prompt="You are Maya.", sort_order=2)
    for i in range(12):
        persona = tony if i % 2 else maya
        process = make_process(
            persona,
            channel="elevenlabs" if i % 3 else "vapi",
            task="Handle incoming voice call from a very important customer about the quarterly roadmap",
            input_tokens=1_234_567 + i,
            output_tokens=98_765 + i,
            cost_usd=Decimal("12.3456789"),
            started_at=ago(minutes=30 - i),
        )
        make_session("req-" + "7f3c2a9e-1b4d-4e8a-9c6f-" + "0" * 12 + str(i), process=process)
        make_message(process, content="Give me a one-line summary of where the launch stands. " * 3)
        make_message(
            process, role=Message.Role.ASSISTANT, content="We ship Friday; the risk is the payment flow. " * 8
        )
        make_llm_call(
            process,
            model="claude-3-5-sonnet-20241022-with-a-long-name",
            provider="openai",
            input_tokens=123_456,
            output_tokens=7_890,
            cost_usd=Decimal("0.4891234"),
            ttft_ms=12_345,
            duration_ms=123_456,
            usage_source="partial",
            finish_reason="cancelled",
        )
        ActivityRun.objects.create(
            persona=persona,
            activity="team_check",
            status="completed",
            process=process,
            result="Checked on Sarah and the platform team: the migration is two days late " * 4,
            started_at=ago(minutes=2),
            finished_at=ago(minutes=1),
        )
        JournalEntry.objects.create(persona=persona, kind="journal", text="A long day of reviews. " * 20)
        Post.objects.create(
            persona=persona, text="Small scopes ship; big ones slip. " * 8, status="awaiting_approval"
        )
    return {"tony": tony, "maya": maya}


def conversation(browser, selector) -> dict | None:
    """A dashboard row's state and text, read in one step (the dashboard swaps its rows every second)."""
    return browser.execute_script(
        "const row = document.querySelector(arguments[0]);"
        "return row && {state: row.dataset.state, text: row.innerText};",
        selector,
    )


def look(browser, daphne, path, name):
    browser.get(f"{daphne.url}{path}")
    if SCREENSHOTS:
        browser.save_screenshot(os.path.join(SCREENSHOTS, f"{name}.png"))


def sideways_overflow(browser) -> dict:
    """How far the page, and a changelist's table box, reach past the window's width (0: they fit)."""
    return browser.execute_script(
        """
        const page = document.documentElement;
        const results = document.querySelector('.results');
        return {page: page.scrollWidth - page.clientWidth,
                results: results ? results.scrollWidth - results.clientWidth : 0};
        """
    )


def column_fits(browser, name) -> bool:
    return browser.execute_script(
        """
        const cell = document.querySelector('#result_list th.column-' + arguments[0]);
        if (!cell) return false;
        const box = cell.getBoundingClientRect();
        return box.width > 0 && box.right <= window.innerWidth && box.left >= 0;
        """,
        name,
    )


LISTS = [
    (
        "/admin/agents/process/",
        "processes",
        ["public_id", "persona", "state", "tokens", "cost", "started_at"],
    ),
    (
        "/admin/agents/llmcall/",
        "llm-calls",
        ["created_at", "persona", "model", "tokens", "cost", "ttft", "duration", "outcome"],
    ),
    ("/admin/agents/callersession/", "sessions", ["caller", "persona", "state", "last_seen_at"]),
    ("/admin/agents/persona/", "personas", ["name", "model_used", "spend_today", "process_count"]),
    (
        "/admin/lifeloop/activityrun/",
        "activity-runs",
        ["persona", "activity", "status", "started_at", "short_result"],
    ),
    ("/admin/lifeloop/post/", "posts", ["created_at", "persona", "status", "short_text"]),
    ("/admin/lifeloop/journalentry/", "journal", ["created_at", "persona", "importance", "short_text"]),
]


@pytest.mark.parametrize(("path", "name", "columns"), LISTS, ids=[name for _path, name, _columns in LISTS])
def test_each_list_shows_its_key_columns_without_scrolling_sideways(
    browser, daphne, operator, busy_team, path, name, columns
):
    sign_in(browser, daphne, operator)
    look(browser, daphne, path, name)
    wait_until(browser, lambda: browser.find_elements("id", "result_list"))
    assert sideways_overflow(browser) == {"page": 0, "results": 0}
    assert [column for column in columns if not column_fits(browser, column)] == []


def test_the_dashboard_fits_the_screen_with_who_is_talking_first(browser, daphne, operator, busy_team):
    from selenium.webdriver.common.by import By

    sign_in(browser, daphne, operator)
    look(browser, daphne, "/admin/", "dashboard")
    wait_until(browser, lambda: browser.find_elements(By.ID, "conversations"))
    assert sideways_overflow(browser)["page"] == 0
    fold = browser.execute_script("return window.innerHeight")
    first = browser.find_element(By.CSS_SELECTOR, "#conversations tr[data-process]")
    assert first.location["y"] + first.size["height"] <= fold
    assert "12 posts awaiting approval" in text(browser, "#posts-awaiting")
    if SCREENSHOTS:  # the whole page, to look at
        browser.set_window_size(1400, 2600)
        browser.save_screenshot(os.path.join(SCREENSHOTS, "dashboard-whole.png"))


def test_the_process_page_shows_the_conversation_above_the_fold(browser, daphne, operator, busy_team):
    from selenium.webdriver.common.by import By

    process = busy_team["tony"].processes.order_by("started_at").last()
    sign_in(browser, daphne, operator)
    look(browser, daphne, f"/admin/agents/process/{process.pk}/change/", "process-page")
    first, answer = browser.find_elements(By.CSS_SELECTOR, "#transcript .line")[:2]
    fold = browser.execute_script("return window.innerHeight")
    assert first.location["y"] + first.size["height"] <= fold  # the caller's words, whole
    assert answer.location["y"] < fold  # the answer starts on the first screen
    assert "Give me a one-line summary" in first.text and "UTC" in first.text
    assert (
        browser.find_element(By.ID, "transcript").location["y"]
        < browser.find_element(By.ID, "process-details").location["y"]
    )
    assert "Cancelled: the caller left before the answer ended" in text(browser, "#transcript")
    assert sideways_overflow(browser)["page"] == 0


def test_the_dashboard_follows_a_turn_as_it_starts_and_ends(browser, daphne, operator, upstream):
    from selenium.webdriver.common.by import By

    make_persona(name="Tony", system_prompt="You are Tony.", sort_order=1)
    sign_in(browser, daphne, operator)
    wait_until(browser, lambda: browser.find_elements(By.ID, "tron-dashboard"))
    assert text(browser, "#figure-in-turn .value") == "0"

    # A slow model: the turn stays open long enough to be seen, then ends.
    upstream.reset(tokens=["Thinking", " about", " it", "."], first_token_delay=4, token_interval=0.5)
    headers = {"X-Request-ID": "live-state"}
    body = {"model": "tony", "messages": [{"role": "user", "content": "What's next?"}]}
    replies = []
    turn = threading.Thread(
        target=lambda: replies.append(
            httpx2.post(f"{daphne.url}/v1/chat/completions", json=body, headers=headers, timeout=60)
        )
    )
    turn.start()
    try:
        wait_until(browser, lambda: text(browser, "#figure-in-turn .value") == "1")
        row = wait_until(browser, lambda: conversation(browser, "#conversations tr[data-process]"))
        assert row["state"] == "in-turn" and "In a turn now" in row["text"]
        if SCREENSHOTS:
            browser.save_screenshot(os.path.join(SCREENSHOTS, "dashboard-in-turn.png"))
    finally:
        turn.join(timeout=60)
    assert replies and replies[0].status_code == 200
    process_id = replies[0].headers["X-Tron-Process-ID"]

    wait_until(browser, lambda: text(browser, "#figure-in-turn .value") == "0")
    row = conversation(browser, f'#conversations tr[data-process="{process_id}"]')
    assert row["state"] == "waiting" and "Waiting for the caller\nsince" in row["text"]
    assert (
        text(browser, "#figure-processes .value") == "1" and text(browser, "#figure-sessions .value") == "1"
    )
    if SCREENSHOTS:
        browser.save_screenshot(os.path.join(SCREENSHOTS, "dashboard-waiting.png"))
