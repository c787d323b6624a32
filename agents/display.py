"""How the control panel writes durations, money, counts and long text: the admin and the dashboard alike."""

from datetime import timedelta
from decimal import Decimal

SIGNIFICANT = 4  # digits of an amount under a dollar: $0.0125, $0.000015


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


def milliseconds(value) -> str:
    """A latency: `85 ms`, `1.2 s`, `14 s`; `-` for none."""
    if value is None:
        return "-"
    if value < 1000:
        return f"{value:.0f} ms"
    return f"{value / 1000:.1f} s" if value < 10_000 else f"{value / 1000:.0f} s"


def usd(value) -> str:
    """Money, one way everywhere: `$12.35` and `$1,234.00` from a dollar up; below it at most four
    significant digits and at least two decimals (`$0.40`, `$0.0125`, `$0.000015`); `$0.00` for nothing.
    Whether a zero means free or unpriced is said beside it (agents.spend.cost_text)."""
    amount = Decimal(str(value or 0))
    if amount == 0 or abs(amount) >= 1:
        return f"${amount:,.2f}"
    decimals = max(2, SIGNIFICANT - 1 - amount.adjusted())
    digits = f"{abs(amount):.{decimals}f}".rstrip("0")
    whole, fraction = digits.split(".")
    return f"{'-' if amount < 0 else ''}${whole}.{fraction.ljust(2, '0')}"


def compact(count) -> str:
    """A count that fits a narrow column: `950`, `9,950`, `12.3k`, `4.5M`."""
    count = int(count or 0)
    if abs(count) < 10_000:
        return f"{count:,}"
    if abs(count) < 1_000_000:
        return f"{count / 1000:.1f}k".replace(".0k", "k")
    return f"{count / 1_000_000:.1f}M".replace(".0M", "M")


def ellipsis(text: str, limit: int) -> str:
    """`text` cut to `limit` characters with an ellipsis: list columns stay narrow however long the value
    (a 255-character caller id); the detail page shows it whole."""
    return text if len(text) <= limit else text[: limit - 1] + "…"
