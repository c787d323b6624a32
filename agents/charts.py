"""Charts drawn on the server as SVG: no script library, nothing loaded from elsewhere."""

from datetime import timedelta

from django.utils.html import format_html, format_html_join

from .display import compact, usd

# Colours that read on the admin's light and dark themes; a persona keeps its colour (by id).
PALETTE = ["#417690", "#e6a23c", "#5cb85c", "#d9534f", "#8e6bbf", "#20a8a8", "#b0708f", "#7a8b99"]
WIDTH, HEIGHT = 720, 240
LEFT, RIGHT, TOP, BOTTOM = 64, 8, 12, 28
SPARK_WIDTH, SPARK_HEIGHT = 96, 20


def colour(persona_id: int) -> str:
    return PALETTE[persona_id % len(PALETTE)]


def spend_chart(rows: list[dict], *, days: int, today, tokens: bool = False) -> str:
    """A stacked bar per UTC day (the last `days`, ending `today`), one segment per persona, from the
    rows of `spend.daily_usage`: their cost, or their tokens with `tokens` (when nothing cost money, a
    chart of $0 would say nothing). Every bar and segment carries a <title> with its figures."""
    fmt = compact if tokens else usd
    first = today - timedelta(days=days - 1)
    slots = [first + timedelta(days=i) for i in range(days)]
    per_day: dict = {day: {} for day in slots}
    personas: dict[int, str] = {}
    for row in rows:
        if row["day"] in per_day:
            value = (
                (row["input_tokens"] or 0) + (row["output_tokens"] or 0) if tokens else row["cost_usd"] or 0
            )
            segments = per_day[row["day"]]
            segments[row["persona_id"]] = segments.get(row["persona_id"], 0) + value
            personas[row["persona_id"]] = row["persona_name"]
    top = max((sum(s.values()) for s in per_day.values()), default=0) or 1
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM
    slot_w = plot_w / days
    bars = []
    for i, day in enumerate(slots):
        x = LEFT + i * slot_w + slot_w * 0.15
        y = TOP + plot_h
        total = sum(per_day[day].values())
        for persona_id, value in sorted(per_day[day].items(), key=lambda item: personas[item[0]]):
            height = plot_h * float(value) / float(top)
            y -= height
            bars.append(
                format_html(
                    '<rect class="bar" x="{}" y="{}" width="{}" height="{}" fill="{}"><title>{} {}: {}</title></rect>',
                    f"{x:.1f}",
                    f"{y:.1f}",
                    f"{slot_w * 0.7:.1f}",
                    f"{height:.1f}",
                    colour(persona_id),
                    day.isoformat(),
                    personas[persona_id],
                    fmt(value) + (" tokens" if tokens else ""),
                )
            )
        bars.append(
            format_html(
                '<text class="day" x="{}" y="{}" text-anchor="middle">{}<title>{}: {}</title></text>',
                f"{LEFT + i * slot_w + slot_w / 2:.1f}",
                HEIGHT - 10,
                day.strftime("%m-%d"),
                day.isoformat(),
                fmt(total) + (" tokens" if tokens else ""),
            )
        )
    legend = format_html_join(
        "",
        '<span class="legend-item"><span class="swatch" style="background:{}"></span>{}</span>',
        ((colour(pid), name) for pid, name in sorted(personas.items(), key=lambda item: item[1])),
    )
    axis = format_html(
        '<line class="axis" x1="{l}" y1="{b}" x2="{r}" y2="{b}"/>'
        '<text class="tick" x="{tx}" y="{ty}" text-anchor="end">{top}</text>'
        '<text class="tick" x="{tx}" y="{b}" text-anchor="end">0</text>',
        l=LEFT,
        r=WIDTH - RIGHT,
        b=TOP + plot_h,
        tx=LEFT - 6,
        ty=TOP + 10,
        top=fmt(top) if personas else "0",
    )
    label = "Tokens" if tokens else "Spend"
    return format_html(
        '<svg id="spend-chart" viewBox="0 0 {} {}" role="img" aria-label="{} per day and persona, last {} days">'
        '{}{}</svg><p class="legend">{}</p>',
        WIDTH,
        HEIGHT,
        label,
        days,
        axis,
        format_html_join("", "{}", ((bar,) for bar in bars)),
        legend,
    )


def sparkline(values: list, titles: list[str], *, css_class: str) -> str:
    """A row of small bars, one per value (an hour), each with its <title>: a figure's last hours in a
    table cell. The tallest bar fills the height; all zero, the row is flat."""
    top = max(values, default=0) or 1
    slot = SPARK_WIDTH / max(len(values), 1)
    bars = format_html_join(
        "",
        '<rect class="{}" x="{}" y="{}" width="{}" height="{}"><title>{}</title></rect>',
        (
            (
                "some" if value else "none",
                f"{i * slot:.1f}",
                f"{SPARK_HEIGHT - max(1.0, SPARK_HEIGHT * value / top):.1f}",
                f"{slot * 0.8:.1f}",
                f"{max(1.0, SPARK_HEIGHT * value / top):.1f}",
                title,
            )
            for i, (value, title) in enumerate(zip(values, titles, strict=True))
        ),
    )
    return format_html(
        '<svg class="spark {}" viewBox="0 0 {} {}" width="{}" height="{}" role="img">{}</svg>',
        css_class,
        SPARK_WIDTH,
        SPARK_HEIGHT,
        SPARK_WIDTH,
        SPARK_HEIGHT,
        bars,
    )
