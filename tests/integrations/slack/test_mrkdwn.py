"""Markdown to Slack's mrkdwn, and long text in parts: the rules as tables."""

import pytest

from integrations.slack.mrkdwn import SLACK_TEXT_LIMIT, split_message, to_mrkdwn


@pytest.mark.parametrize(
    ("markdown", "mrkdwn"),
    [
        ("**bold** and __bold__", "*bold* and *bold*"),
        ("*italic* and _italic_", "_italic_ and _italic_"),
        ("***both***", "*_both_*"),
        ("~~gone~~", "~gone~"),
        ("[the docs](https://x.io/docs)", "<https://x.io/docs|the docs>"),
        ("[**bold** label](https://x.io)", "<https://x.io|bold label>"),
        ('[titled](https://x.io "Title")', "<https://x.io|titled>"),
        ("[a|b](https://x.io)", "<https://x.io|a¦b>"),
        ("![chart](https://x.io/c.png)", "<https://x.io/c.png|chart>"),
        ("<https://x.io/a?b=1&c=2>", "<https://x.io/a?b=1&amp;c=2>"),
        ("# Title", "*Title*"),
        ("### A **bold** title ###", "*A bold title*"),
        ("- one\n* two\n+ three", "• one\n• two\n• three"),
        ("  - nested", "  • nested"),
        ("- [ ] todo\n- [x] done", "• ☐ todo\n• ☑ done"),
        ("1. first\n2. second", "1. first\n2. second"),
        ("> quoted & said", "&gt; quoted &amp; said"),
        ("---", "──────────"),
        ("a < b && c > d", "a &lt; b &amp;&amp; c &gt; d"),
        ("`**not bold** <tag>`", "`**not bold** &lt;tag&gt;`"),
        ("``code with ` tick``", "`code with ` tick`"),
        ("snake_case_name, 2*3*4, a * b", "snake_case_name, 2*3*4, a * b"),
        ("**Note**: read this", "*Note*: read this"),
        ("plain text stays", "plain text stays"),
        ("", ""),
    ],
)
def test_markdown_becomes_mrkdwn(markdown, mrkdwn):
    assert to_mrkdwn(markdown) == mrkdwn


def test_a_code_block_loses_its_language_and_keeps_its_text():
    markdown = "Run:\n```python\nif a < b and **kw:\n    print('[x](y)')\n```\ndone"
    assert to_mrkdwn(markdown) == "Run:\n```\nif a &lt; b and **kw:\n    print('[x](y)')\n```\ndone"


def test_an_unclosed_code_block_is_closed():
    assert to_mrkdwn("```\nx = 1") == "```\nx = 1\n```"


def test_a_table_goes_into_a_code_block():
    markdown = "Numbers:\n| name | value |\n|---|:---:|\n| a | 1 |\n| b & c | 2 |\nafter"
    assert to_mrkdwn(markdown) == (
        "Numbers:\n```\n| name | value |\n|---|:---:|\n| a | 1 |\n| b &amp; c | 2 |\n```\nafter"
    )


def test_a_short_message_is_one_part():
    assert split_message("  hello  ") == ["hello"]
    assert split_message("") == []


def test_parts_break_at_paragraphs_then_lines_then_words():
    paragraphs = "\n\n".join(["a" * 60, "b" * 60, "c" * 60])
    assert split_message(paragraphs, 130) == ["a" * 60 + "\n\n" + "b" * 60, "c" * 60]
    lines = "\n".join(["a" * 60, "b" * 60, "c" * 60])
    assert split_message(lines, 100) == ["a" * 60, "b" * 60, "c" * 60]
    words = " ".join(["word"] * 50)
    parts = split_message(words, 60)
    assert all(len(p) <= 60 for p in parts)
    assert " ".join(parts) == words


def test_a_run_without_spaces_is_cut_hard_but_not_inside_a_link_or_an_escape():
    assert split_message("x" * 250, 100) == ["x" * 96, "x" * 96, "x" * 58]
    link = "y" * 80 + "<https://x.io/" + "z" * 30 + ">"
    assert split_message(link, 100) == ["y" * 80, "<https://x.io/" + "z" * 30 + ">"]
    escaped = "y" * 94 + "&amp;" + "y" * 10
    assert split_message(escaped, 100)[1].startswith("&amp;")


def test_a_part_that_ends_inside_a_code_block_closes_it_and_the_next_reopens_it():
    code = "```\n" + "\n".join(f"line {n}" for n in range(40)) + "\n```\nafter"
    parts = split_message(code, 120)
    assert len(parts) > 2
    for part in parts:
        assert len(part) <= 120
        assert part.count("```") % 2 == 0
    assert parts[0].startswith("```\nline 0") and parts[1].startswith("```\n")
    joined = "\n".join(parts).replace("\n```\n```\n", "\n")
    assert joined == code


def test_every_part_is_within_slacks_limit():
    text = to_mrkdwn("\n\n".join(f"**Point {n}**: " + "detail " * 200 for n in range(20)))
    parts = split_message(text)
    assert all(len(p) <= SLACK_TEXT_LIMIT for p in parts)
    assert "".join(parts).replace("\n", "").replace(" ", "") == text.replace("\n", "").replace(" ", "")
