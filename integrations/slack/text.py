"""Slack's message markup, read as a persona should see it.

Slack writes mentions and links in angle brackets: `<@U123>` (a user), `<@U123|ada>` (older payloads),
`<#C123|general>` (a channel), `<!here>` and `<!subteam^S1|@design>` (special mentions), `<!date^…|May 5>`,
`<https://x.io|the site>` and `<mailto:a@b.c|a@b.c>`; and it escapes `&`, `<` and `>` in the rest.
"""

import re
from collections.abc import Callable

_MARKUP = re.compile(r"<([^<>]+)>")


def plain_text(text: str, bot_user_id: str, name_of: Callable[[str], str | None]) -> str:
    """`text` with the bot's own mention removed, other user mentions as `@Name` (`name_of(user_id)`,
    or `@U123` when the bot cannot read the user), channels as `#name`, special mentions as `@here`,
    links as their label and address, and Slack's escapes undone."""

    def replace(match: re.Match) -> str:
        inner = match.group(1)
        target, _, label = inner.partition("|")
        if target.startswith("@"):
            user_id = target[1:]
            name = name_of(user_id) or label.lstrip("@")
            return f"@{name or user_id}"
        if target.startswith("#"):
            return f"#{label or target[1:]}"
        if target.startswith("!"):
            if label:
                return label
            keyword = target[1:].split("^")[0]
            return f"@{keyword}"
        address = target.removeprefix("mailto:")
        if label and label not in (target, address):
            return f"{label} ({address})"
        return address

    if bot_user_id:
        # "<@UBOT> Maya, …", "hey <@UBOT>, …": the mention goes with the space and comma after it.
        own = re.compile(rf"[ \t]*<@{re.escape(bot_user_id)}(\|[^>]*)?>[ \t]*[,:]?[ \t]?")
        text = own.sub(" ", text)
    text = _MARKUP.sub(replace, text)
    text = text.replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&")
    return text.strip()
