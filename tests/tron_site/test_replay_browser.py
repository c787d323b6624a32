"""Replay as an operator does it, in headless Chromium against Daphne as `make run` serves it: real
conversations with Tony, picked in the process list, a candidate described in the form, the replay run by
a django-q2 worker (the stand-in model answering the candidate differently, and the judge grading), the
comparison page following its progress by itself, then applying the candidate."""

import os

import httpx2
import pytest

from agents.models import Persona, Process, Replay
from tests.browser import needs_chromium, sign_in, text, wait_until
from tests.factories import make_persona
from tests.worker import run_queued

pytestmark = [needs_chromium, pytest.mark.django_db(transaction=True)]

SCREENSHOTS = os.environ.get("TRON_TEST_SCREENSHOTS", "")
GRADES = '{"A": {"grade": 3, "reason": "No date."}, "B": {"grade": 9, "reason": "Gives the date."}}'


@pytest.fixture
def worker_settings(settings, upstream, daphne, monkeypatch):
    """The worker (this test's process) reaches the same stand-in model as the server, and reads the
    tasks the server signed with its key."""
    from django_q.conf import Conf

    monkeypatch.setattr(Conf, "SECRET_KEY", daphne.env["DJANGO_SECRET_KEY"])
    settings.TRON_LLM = "openai"
    settings.OPENAI_BASE_URL = upstream.base_url
    settings.OPENAI_API_KEY = "sk-test"
    settings.TRON_LLM_MAX_RETRIES = 0


def test_an_operator_replays_a_conversation_reads_the_comparison_and_applies_it(
    browser, daphne, operator, upstream, worker_settings
):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select

    make_persona(name="Tony", role="CTO", system_prompt="You are Tony, the CTO.", sort_order=1)
    upstream.reset()
    upstream.queue({"tokens": ["Launch", " is", " soon."]}, {"tokens": ["Payments."]})
    for words in ("When do we launch?", "And the risk?"):
        reply = httpx2.post(
            f"{daphne.url}/v1/chat/completions",
            json={"model": "tony", "messages": [{"role": "user", "content": words}]},
            headers={"X-Request-ID": "ada"},
            timeout=60,
        )
        assert reply.status_code == 200
    process = Process.objects.get()

    sign_in(browser, daphne, operator)
    browser.get(f"{daphne.url}/admin/agents/process/")
    browser.find_element(By.CSS_SELECTOR, f'input[name="_selected_action"][value="{process.pk}"]').click()
    Select(browser.find_element(By.NAME, "action")).select_by_value("replay_conversations")
    browser.find_element(By.CSS_SELECTOR, 'button[name="index"]').click()

    wait_until(browser, lambda: browser.find_elements(By.ID, "id_system_prompt"))
    prompt = browser.find_element(By.ID, "id_system_prompt")
    assert prompt.get_attribute("value") == "You are Tony, the CTO."  # the candidate starts as Tony is
    prompt.clear()
    prompt.send_keys("You are Tony, the CTO. Always give a date.")
    browser.find_element(By.ID, "id_model").send_keys("gpt-4o")
    browser.find_element(By.ID, "id_rubric").send_keys("Does it give a date?")
    browser.find_element(By.NAME, "_save").click()

    wait_until(browser, lambda: browser.find_elements(By.ID, "replay-progress"))
    assert "queued" in text(browser, "#replay-progress")

    # The worker runs the replay; the page follows it by itself.
    upstream.queue(
        {"tokens": ["We", " launch", " on", " 12", " March."], "model": "gpt-4o"},
        {"tokens": ["The", " payment", " flow."], "model": "gpt-4o"},
        {"tokens": [GRADES]},
        {"tokens": [GRADES]},
    )
    assert run_queued() == 1
    wait_until(
        browser, lambda: "completed: 2 of 2 turns answered, 2 graded" in text(browser, "#replay-progress")
    )
    if SCREENSHOTS:
        browser.save_screenshot(os.path.join(SCREENSHOTS, "replay-comparison.png"))

    first = browser.find_elements(By.CSS_SELECTOR, ".turn")[0]
    original = first.find_element(By.CSS_SELECTOR, ".side.original")
    candidate = first.find_element(By.CSS_SELECTOR, ".side.candidate")
    assert "Launch is soon." in original.text and "Grade 3/10: No date." in original.text
    assert "We launch on 12 March." in candidate.text and "Grade 9/10: Gives the date." in candidate.text
    # Side by side: the same height on the screen, the candidate to the right, both inside the window.
    left, right = original.rect, candidate.rect
    assert abs(left["y"] - right["y"]) < 2 and right["x"] >= left["x"] + left["width"]
    assert right["x"] + right["width"] <= browser.execute_script("return window.innerWidth")
    # Totals: tokens in and out, cost, time to first token and the mean grade, for both sides.
    assert text(browser, "#totals-candidate").split("\t")[:4] == ["Candidate", "84", "8", "$0.00029"]
    assert text(browser, "#totals-candidate").endswith("9.0") and text(browser, "#totals-original").endswith(
        "3.0"
    )

    browser.find_element(By.ID, "apply-candidate").click()
    wait_until(browser, lambda: browser.find_elements(By.CSS_SELECTOR, ".messagelist .success"))
    assert "Applied the candidate of replay" in text(browser, ".messagelist")
    tony = Persona.objects.get(name="Tony")
    assert (tony.system_prompt, tony.model) == ("You are Tony, the CTO. Always give a date.", "gpt-4o")
    assert Replay.objects.get().applied_by == operator[0]


def test_the_process_page_draws_each_turns_timeline(browser, daphne, operator, upstream):
    from selenium.webdriver.common.by import By

    make_persona(name="Tony", role="CTO", system_prompt="You are Tony.", tools=["list_team"], sort_order=1)
    upstream.reset()
    upstream.queue(
        {"tokens": [], "tool_calls": [{"id": "c1", "name": "list_team"}], "first_token_delay": 0.2},
        {"tokens": ["Tony", " and", " Maya."], "first_token_delay": 0.3, "token_interval": 0.05},
    )
    reply = httpx2.post(
        f"{daphne.url}/v1/chat/completions",
        json={"model": "tony", "messages": [{"role": "user", "content": "Who is here?"}]},
        headers={"X-Request-ID": "timeline"},
        timeout=60,
    )
    assert reply.status_code == 200
    process = Process.objects.get()

    sign_in(browser, daphne, operator)
    browser.get(f"{daphne.url}/admin/agents/process/{process.pk}/change/")
    timeline = browser.find_element(By.ID, "timeline")
    browser.execute_script("arguments[0].scrollIntoView()", timeline)
    if SCREENSHOTS:
        browser.save_screenshot(os.path.join(SCREENSHOTS, "process-timeline.png"))
    bars = {
        kind: [bar.rect for bar in timeline.find_elements(By.CSS_SELECTOR, f".track .step-{kind}")]
        for kind in ("run", "model", "tool")
    }
    track = timeline.find_element(By.CSS_SELECTOR, ".track").rect
    assert len(bars["model"]) == 2 and len(bars["tool"]) == 1
    first, second = bars["model"]
    tool = bars["tool"][0]
    # In order on the axis, inside the track: the first call, the tool, then the second call, which
    # took most of the turn (its first token 300 ms in, then the words).
    assert first["x"] < tool["x"] < second["x"] and second["width"] > first["width"] > 0
    assert second["x"] + second["width"] <= track["x"] + track["width"] + 1
    assert len(timeline.find_elements(By.CSS_SELECTOR, ".track .first-token")) == 1
