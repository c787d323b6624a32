"""Markdown (what models write) to Slack's mrkdwn (what Slack shows), and long text in parts.

Where the two differ: bold is `*x*` (Markdown's `**x**`), italic `_x_` (Markdown's `*x*`), strike `~x~`,
links `<url|text>`, no headings (a heading becomes a bold line), bullets are plain characters, a code
fence carries no language, and `&`, `<` and `>` must be escaped as `&amp;`, `&lt;`, `&gt;`. Code, inline
or fenced, is left as written (escaped only). Tables have no mrkdwn form: they go into a code block,
where their columns stay aligned.
"""

import re

# Slack cuts a message's text at 40,000 characters and asks for at most 4,000 in one message.
SLACK_TEXT_LIMIT = 4000

_FENCE = re.compile(r"^\s*(```|~~~)")
_TABLE_ROW = re.compile(r"^\s*\|.*\|\s*$")
_TABLE_RULE = re.compile(r"^\s*\|?\s*:?-{3,}:?\s*(\|\s*:?-{3,}:?\s*)*\|?\s*$")
_HEADING = re.compile(r"^\s{0,3}#{1,6}\s+(.*?)(\s+#+)?\s*$")
_RULE = re.compile(r"^\s{0,3}([-*_])(\s*\1){2,}\s*$")
_BULLET = re.compile(r"^(\s*)[-*+]\s+(\[[ xX]\]\s+)?(.*)$")
_QUOTE = re.compile(r"^(\s*)>\s?(.*)$")

# Inline pieces that are not prose: code spans, images, links, autolinks (in the order tried).
_INLINE = re.compile(
    r"(?P<code>`+)(?P<code_text>.+?)(?P=code)"
    r"|!\[(?P<alt>[^\]]*)\]\((?P<img>[^)\s]+)(?:\s+\"[^\"]*\")?\)"
    r"|\[(?P<label>[^\]]+)\]\((?P<url>[^)\s]+)(?:\s+\"[^\"]*\")?\)"
    r"|<(?P<auto>(?:https?|mailto):[^>\s]+)>"
)
_BOLD_ITALIC = re.compile(r"\*\*\*(?=\S)(.+?)(?<=\S)\*\*\*")
_BOLD = re.compile(r"(\*\*|__)(?=\S)(.+?)(?<=\S)\1")
_ITALIC = re.compile(r"(?<![\w*])\*(?=[^\s*])([^*\n]*?)(?<=[^\s*])\*(?![\w*])")
_STRIKE = re.compile(r"~~(?=\S)(.+?)(?<=\S)~~")
_BOLD_MARK = "\x01"  # stands for a finished bold `*` while single `*` are made italic


def escape(text: str) -> str:
    """The three characters Slack reads as markup, escaped as Slack asks."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def to_mrkdwn(markdown: str) -> str:
    """`markdown` as Slack's mrkdwn (see the module's docstring)."""
    out: list[str] = []
    lines = markdown.replace("\r\n", "\n").split("\n")
    fence = None
    index = 0
    while index < len(lines):
        line = lines[index]
        opening = _FENCE.match(line)
        if fence is not None:
            if opening and opening.group(1) == fence and not line.strip()[3:].strip():
                out.append("```")
                fence = None
            else:
                out.append(escape(line))
        elif opening:
            fence = opening.group(1)
            out.append("```")  # Slack would show a language name as the code's first word
        elif _is_table(lines, index):
            end = index
            while end < len(lines) and _TABLE_ROW.match(lines[end]):
                end += 1
            out.extend(["```", *(escape(row.strip()) for row in lines[index:end]), "```"])
            index = end
            continue
        else:
            out.append(_line(line))
        index += 1
    if fence is not None:
        out.append("```")  # an answer cut off inside its code block still closes it
    return "\n".join(out).strip("\n")


def _is_table(lines: list[str], index: int) -> bool:
    return (
        index + 1 < len(lines)
        and bool(_TABLE_ROW.match(lines[index]))
        and bool(_TABLE_RULE.match(lines[index + 1]))
        and "|" in lines[index + 1]
    )


def _line(line: str) -> str:
    if match := _HEADING.match(line):
        title = _inline(match.group(1)).replace("*", "")
        return f"*{title}*" if title else ""
    if _RULE.match(line):
        return "──────────"
    if match := _BULLET.match(line):
        indent, task, rest = match.groups()
        box = ("☑ " if "x" in task.lower() else "☐ ") if task else ""
        return f"{indent}• {box}{_inline(rest)}"
    if match := _QUOTE.match(line):
        return f"{match.group(1)}&gt; {_inline(match.group(2))}"
    return _inline(line)


def _inline(text: str) -> str:
    """One line's prose: emphasis converted and everything escaped; code spans, links and images made
    into Slack's forms."""
    parts = []
    position = 0
    for match in _INLINE.finditer(text):
        parts.append(_emphasis(escape(text[position : match.start()])))
        if match.group("code"):
            parts.append(f"`{escape(match.group('code_text'))}`")
        elif match.group("img"):
            parts.append(_link(match.group("img"), match.group("alt")))
        elif match.group("url"):
            label = _emphasis(escape(match.group("label"))).replace("*", "").replace("_", " ").strip()
            parts.append(_link(match.group("url"), label))
        else:
            parts.append(_link(match.group("auto"), ""))
        position = match.end()
    parts.append(_emphasis(escape(text[position:])))
    return "".join(parts)


def _link(url: str, label: str) -> str:
    url = escape(url)
    label = label.replace("|", "¦").strip()
    return f"<{url}|{label}>" if label and label != url else f"<{url}>"


def _emphasis(text: str) -> str:
    text = _BOLD_ITALIC.sub(lambda m: f"{_BOLD_MARK}_{m.group(1)}_{_BOLD_MARK}", text)
    text = _BOLD.sub(lambda m: f"{_BOLD_MARK}{m.group(2)}{_BOLD_MARK}", text)
    text = _ITALIC.sub(r"_\1_", text)
    text = _STRIKE.sub(r"~\1~", text)
    return text.replace(_BOLD_MARK, "*")


def split_message(text: str, limit: int = SLACK_TEXT_LIMIT) -> list[str]:
    """`text` in parts of at most `limit` characters, cut at a paragraph, else a line, else a word (a
    hard cut only for a run with no space at all, never inside a link or an escape). A part that ends
    inside a code block closes it, and the next part opens it again."""
    text = text.strip()
    if limit < 16:
        raise ValueError("limit is too small to split a message")
    parts: list[str] = []
    reopen = False
    while text:
        prefix = "```\n" if reopen else ""
        room = limit - len(prefix)
        if len(text) <= room and not _opens_fence(prefix + text):
            parts.append(prefix + text)
            break
        cut = _cut_at(text, room - 4)  # room for a closing fence
        part, text = prefix + text[:cut].rstrip(), text[cut:].lstrip("\n ")
        reopen = _opens_fence(part)
        parts.append(part + "\n```" if reopen else part)
    return [part for part in parts if part.strip()]


def _opens_fence(text: str) -> bool:
    """Whether `text` ends inside a code block (an odd number of fences)."""
    return text.count("```") % 2 == 1


def _cut_at(text: str, room: int) -> int:
    if len(text) <= room:
        return len(text)
    window = text[:room]
    for separator in ("\n\n", "\n", " "):
        at = window.rfind(separator)
        if at > room // 3:
            return at
    # No good break: a hard cut, moved back so it splits no `<url|label>` and no `&amp;`.
    cut = room
    opened, closed = window.rfind("<"), window.rfind(">")
    if opened > closed and opened > 0:
        cut = opened
    amp = window.rfind("&", 0, cut)
    if amp > cut - 6 and ";" not in window[amp:cut] and amp > 0:
        cut = amp
    return cut
