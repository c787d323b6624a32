"""Slack's markup read as a persona sees it, and who a message is addressed to."""

import pytest

from integrations.slack.addressee import leading_persona
from integrations.slack.text import plain_text

NAMES = {"U0GRACE01": "Grace Hopper"}


@pytest.mark.parametrize(
    ("slack", "plain"),
    [
        ("<@UBOT> what do you think?", "what do you think?"),
        ("<@UBOT>, what do you think?", "what do you think?"),
        ("hey <@UBOT>: ready?", "hey ready?"),
        ("<@UBOT|tron> hi", "hi"),
        ("ask <@U0GRACE01>", "ask @Grace Hopper"),
        ("ask <@U0NOBODY1>", "ask @U0NOBODY1"),
        ("ask <@U0NOBODY1|nobody>", "ask @nobody"),
        ("in <#C0DESIGN|design> and <#C0OTHER01>", "in #design and #C0OTHER01"),
        ("<!here> and <!channel>", "@here and @channel"),
        ("<!subteam^S0TEAM|@design-team> look", "@design-team look"),
        ("due <!date^1392734382^{date}|Feb 18, 2014>", "due Feb 18, 2014"),
        ("<https://x.io|the doc> and <https://y.io>", "the doc (https://x.io) and https://y.io"),
        ("<mailto:a@b.co|a@b.co>", "a@b.co"),
        ("1 &lt; 2 &amp;&amp; 3 &gt; 2, &amp;lt; stays", "1 < 2 && 3 > 2, &lt; stays"),
        ("<@UBOT>\n```\n  indented\n```", "```\n  indented\n```"),
    ],
)
def test_slack_markup_becomes_plain_text(slack, plain):
    assert plain_text(slack, "UBOT", NAMES.get) == plain


PERSONAS = ["Tony", "Maya", "Alex", "Jordan", "Riley"]


@pytest.mark.parametrize(
    ("text", "persona"),
    [
        ("Maya, what do you think…", "Maya"),
        ("maya: thoughts?", "Maya"),
        ("Hey Jordan, the budget?", "Jordan"),
        ("hi riley — one question", "Riley"),
        ("@alex can you look?", "Alex"),
        ("Tony?", "Tony"),
        ("Tony", "Tony"),
        ("Maya's plan is fine", None),
        ("Mayan art", None),
        ("what does Maya think?", None),
        ("Maya what do you think", None),  # no pause after the name: a sentence about her, maybe
        ("", None),
    ],
)
def test_a_leading_name_addresses_a_persona(text, persona):
    assert leading_persona(text, PERSONAS) == persona
