"""How the control panel writes durations, money and long text: the admin and the dashboard alike."""

from datetime import timedelta


def human_duration(delta: timedelta) -> str:
    """`350 ms`, `42s`, `3m 05s`, `2h 07m`, `4d 03h`."""
    seconds = int(delta.total_seconds())
    if seconds < 1:
        return f"{int(delta.total_seconds() * 1000)} ms"
    days, rest = divmod(seconds, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, seconds = divmod(rest, 60)
    if days:
        return f"{days}d {hours:02d}h"
    if hours:
        return f"{hours}h {minutes:02d}m"
    if minutes:
        return f"{minutes}m {seconds:02d}s"
    return f"{seconds}s"


def usd(value) -> str:
    return f"${value or 0:,.6f}"


def ellipsis(text: str, limit: int) -> str:
    """`text` cut to `limit` characters with an ellipsis: list columns stay narrow however long the value
    (a 255-character caller id); the detail page shows it whole."""
    return text if len(text) <= limit else text[: limit - 1] + "…"
