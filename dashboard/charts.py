"""Charts drawn as inline SVG on the server: line/area, horizontal bars, stacked columns, donut, meter.

Nothing is loaded in the browser: each function returns markup ready for a template. Every chart
says what it holds in data attributes (data-chart, data-points, data-bars, data-slices) and every
mark carries a <title> tooltip, so people hovering and tests reading the DOM see the same numbers.
"""

import math
from dataclasses import dataclass, field

from django.utils.html import escape
from django.utils.safestring import mark_safe

PALETTE = ("#2f7ebc", "#e07b39", "#4a9c5d", "#b0413e", "#7d5ba6", "#8c6d46", "#d16ba5", "#5f7c8a", "#c9a227",
           "#3aa6a6")
FONT = 'font-family="system-ui, sans-serif" font-size="11"'


@dataclass
class Series:
    """One line of a line chart; axis "right" gives it its own scale on the right-hand side."""

    name: str
    values: list
    color: str = PALETTE[0]
    area: bool = True
    axis: str = "left"
    format: object = None  # value -> text for ticks and tooltips


@dataclass
class Bar:
    label: str
    value: float
    href: str = ""
    tooltip: str = ""


@dataclass
class Column:
    """One column of a stacked column chart: a label and one value per stack part."""

    label: str
    values: list = field(default_factory=list)


def human_bytes(value):
    value = float(value or 0)
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if abs(value) < 1024 or unit == "TB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{value:.1f} TB"  # pragma: no cover - the loop always returns


def plain_number(value):
    value = value or 0
    if isinstance(value, float) and not value.is_integer():
        return f"{value:,.2f}"
    return f"{int(value):,}"


def _nice_max(value):
    """A round axis maximum at or above value (1, 2, 2.5 or 5 times a power of ten)."""
    if value <= 0:
        return 1
    power = 10 ** math.floor(math.log10(value))
    for factor in (1, 2, 2.5, 5, 10):
        if value <= factor * power:
            return factor * power
    return 10 * power  # pragma: no cover


def _svg(kind, width, height, title, body, chart_id="", **data):
    identifier = f'id="{escape(chart_id)}" ' if chart_id else ""
    attributes = " ".join(f'data-{key.replace("_", "-")}="{escape(value)}"' for key, value in data.items())
    return mark_safe(
        f'<svg {identifier}class="chart chart-{kind}" data-chart="{kind}" {attributes} viewBox="0 0 {width} {height}" '
        f'width="100%" preserveAspectRatio="xMidYMid meet" role="img" aria-label="{escape(title)}" '
        f'xmlns="http://www.w3.org/2000/svg" {FONT}><title>{escape(title)}</title>{body}</svg>'
    )


def line_chart(series, labels, *, title, chart_id="", width=760, height=240, tick_labels=6):
    """Lines (areas by default) over shared x labels; one hover target per x with every series' value."""
    points = len(labels)
    left, right, top, bottom = 64, 56 if any(s.axis == "right" for s in series) else 16, 14, 28
    plot_w, plot_h = width - left - right, height - top - bottom
    scales = {}
    for axis in ("left", "right"):
        values = [v or 0 for s in series if s.axis == axis for v in s.values]
        scales[axis] = _nice_max(max(values, default=0))
    step = plot_w / max(points - 1, 1)

    def x(index):
        return left + index * step

    def y(value, axis):
        return top + plot_h - (value or 0) / scales[axis] * plot_h

    parts = []
    for tick in range(5):
        fraction = tick / 4
        ty = top + plot_h - fraction * plot_h
        parts.append(f'<line class="grid" x1="{left}" x2="{left + plot_w}" y1="{ty:.1f}" y2="{ty:.1f}" '
                     f'stroke="#dde3ea"/>')
        for axis, anchor, tx in (("left", "end", left - 6), ("right", "start", left + plot_w + 6)):
            axis_series = [s for s in series if s.axis == axis]
            if axis_series:
                fmt = axis_series[0].format or plain_number
                parts.append(f'<text x="{tx}" y="{ty + 4:.1f}" text-anchor="{anchor}" fill="#5a6b7b">'
                             f'{escape(fmt(scales[axis] * fraction))}</text>')
    if points:
        every = max(1, math.ceil(points / tick_labels))
        for index in range(0, points, every):
            parts.append(f'<text x="{x(index):.1f}" y="{height - 8}" text-anchor="middle" fill="#5a6b7b">'
                         f'{escape(_short_label(labels[index]))}</text>')
    for number, line in enumerate(series):
        coords = " ".join(f"{x(i):.1f},{y(v, line.axis):.1f}" for i, v in enumerate(line.values))
        name = escape(line.name)
        dash = "" if line.area else ' stroke-dasharray="4 2"'
        if line.area and line.values:
            base = top + plot_h
            parts.append(f'<polygon class="area" points="{left:.1f},{base:.1f} {coords} '
                         f'{x(len(line.values) - 1):.1f},{base:.1f}" fill="{line.color}" fill-opacity="0.18"/>')
        parts.append(
            f'<polyline class="series" data-series="{name}" data-points="{len(line.values)}" '
            f'data-total="{sum(v or 0 for v in line.values)}" points="{coords}" fill="none" '
            f'stroke="{line.color}" stroke-width="{1.5 if line.area else 2}"{dash}><title>{name}</title></polyline>'
        )
        parts.append(f'<g class="legend"><rect x="{left + 8 + number * 150}" y="{top - 10}" width="10" '
                     f'height="10" fill="{line.color}"/><text x="{left + 22 + number * 150}" y="{top - 1}">{name}'
                     f'</text></g>')
    for index, label in enumerate(labels):
        lines = [str(label)] + [
            f"{s.name}: {(s.format or plain_number)(s.values[index] if index < len(s.values) else 0)}"
            for s in series
        ]
        parts.append(f'<rect class="point" x="{x(index) - step / 2:.1f}" y="{top}" width="{max(step, 1):.1f}" '
                     f'height="{plot_h}" fill="transparent"><title>{escape("\n".join(lines))}</title></rect>')
    return _svg("line", width, height, title, "".join(parts), points=points, series=len(series), chart_id=chart_id)


def _short_label(label):
    # "2026-05-04T13:15:00Z" or "2026-05-04 13:15:00" -> "05-04 13:15": enough to read the axis.
    text = str(label)
    if len(text) >= 16 and text[10] in "T ":
        return f"{text[5:10]} {text[11:16]}"
    return text


def bar_chart(bars, *, title, chart_id="", width=420, value_format=plain_number, bar_height=22):
    """Horizontal bars, largest scale first as given; each bar may link somewhere."""
    label_w, gap = 150, 6
    height = max(1, len(bars)) * (bar_height + gap) + gap
    scale = max((b.value or 0 for b in bars), default=0) or 1
    plot_w = width - label_w - 80
    parts = []
    for index, bar in enumerate(bars):
        by = gap + index * (bar_height + gap)
        length = max((bar.value or 0) / scale * plot_w, 1)
        tip = escape(bar.tooltip or f"{bar.label}: {value_format(bar.value)}")
        mark = (f'<rect class="bar" data-label="{escape(bar.label)}" data-value="{bar.value}" x="{label_w}" '
                f'y="{by}" width="{length:.1f}" height="{bar_height}" fill="{PALETTE[0]}"><title>{tip}</title></rect>')
        text = (f'<text x="{label_w - 6}" y="{by + bar_height * 0.7:.1f}" text-anchor="end">'
                f'{escape(_clip(bar.label, 24))}</text>')
        if bar.href:
            text = f'<a href="{escape(bar.href)}">{text}</a>'
        parts.append(text + mark + f'<text x="{label_w + length + 4:.1f}" y="{by + bar_height * 0.7:.1f}" '
                                   f'fill="#5a6b7b">{escape(value_format(bar.value))}</text>')
    if not bars:
        parts.append(f'<text x="{width / 2}" y="{height / 2 + 10}" text-anchor="middle" fill="#5a6b7b">no data</text>')
        height = 40
    return _svg("bar", width, height, title, "".join(parts), bars=len(bars), chart_id=chart_id)


def _clip(text, length):
    text = str(text)
    return text if len(text) <= length else text[: length - 1] + "…"


def column_chart(columns, *, parts, title, chart_id="", width=760, height=220, tick_labels=8):
    """Stacked vertical columns: `parts` names the stack (bottom first), each column one value per part."""
    left, right, top, bottom = 48, 12, 14, 28
    plot_w, plot_h = width - left - right, height - top - bottom
    count = len(columns)
    scale = _nice_max(max((sum(v or 0 for v in c.values) for c in columns), default=0))
    slot = plot_w / max(count, 1)
    bar_w = max(slot * 0.8, 1)
    marks = []
    for tick in range(5):
        ty = top + plot_h - tick / 4 * plot_h
        marks.append(f'<line class="grid" x1="{left}" x2="{left + plot_w}" y1="{ty:.1f}" y2="{ty:.1f}" '
                     f'stroke="#dde3ea"/><text x="{left - 6}" y="{ty + 4:.1f}" text-anchor="end" fill="#5a6b7b">'
                     f'{plain_number(scale * tick / 4)}</text>')
    for number, name in enumerate(parts):
        marks.append(f'<g class="legend"><rect x="{left + 8 + number * 110}" y="{top - 10}" width="10" height="10" '
                     f'fill="{PALETTE[number]}"/><text x="{left + 22 + number * 110}" y="{top - 1}">{escape(name)}'
                     f'</text></g>')
    every = max(1, math.ceil(count / tick_labels))
    for index, column in enumerate(columns):
        cx = left + index * slot + (slot - bar_w) / 2
        base = top + plot_h
        tip = escape(f"{column.label}\n" + "\n".join(f"{n}: {plain_number(v)}" for n, v in zip(parts, column.values,
                                                                                              strict=True)))
        segments = []
        for number, value in enumerate(column.values):
            h = (value or 0) / scale * plot_h
            base -= h
            segments.append(f'<rect class="segment" data-part="{escape(parts[number])}" data-value="{value}" '
                            f'x="{cx:.1f}" y="{base:.1f}" width="{bar_w:.1f}" height="{h:.1f}" '
                            f'fill="{PALETTE[number]}"/>')
        marks.append(f'<g class="column" data-label="{escape(column.label)}" data-total="{sum(column.values)}">'
                     f'<title>{tip}</title>{"".join(segments)}</g>')
        if index % every == 0:
            marks.append(f'<text x="{cx + bar_w / 2:.1f}" y="{height - 8}" text-anchor="middle" fill="#5a6b7b">'
                         f'{escape(_short_label(column.label))}</text>')
    return _svg("columns", width, height, title, "".join(marks), bars=count, chart_id=chart_id)


def donut_chart(slices, *, title, chart_id="", size=200, value_format=plain_number):
    """A donut of (label, value) slices with a legend; zero slices are listed but not drawn."""
    radius, hole = size / 2 - 4, size / 4
    center = size / 2
    total = sum(value or 0 for _, value in slices)
    legend_w = 190
    parts = []
    angle = -math.pi / 2
    for number, (label, value) in enumerate(slices):
        color = PALETTE[number % len(PALETTE)]
        share = (value or 0) / total if total else 0
        tip = escape(f"{label}: {value_format(value)} ({share:.1%})")
        if share >= 0.9999:
            parts.append(f'<circle class="slice" data-label="{escape(label)}" data-value="{value}" cx="{center}" '
                         f'cy="{center}" r="{(radius + hole) / 2}" fill="none" stroke="{color}" '
                         f'stroke-width="{radius - hole}"><title>{tip}</title></circle>')
        elif share > 0:
            end = angle + share * 2 * math.pi
            large = 1 if share > 0.5 else 0
            p1 = (center + radius * math.cos(angle), center + radius * math.sin(angle))
            p2 = (center + radius * math.cos(end), center + radius * math.sin(end))
            p3 = (center + hole * math.cos(end), center + hole * math.sin(end))
            p4 = (center + hole * math.cos(angle), center + hole * math.sin(angle))
            path = (f"M{p1[0]:.2f},{p1[1]:.2f} A{radius},{radius} 0 {large} 1 {p2[0]:.2f},{p2[1]:.2f} "
                    f"L{p3[0]:.2f},{p3[1]:.2f} A{hole},{hole} 0 {large} 0 {p4[0]:.2f},{p4[1]:.2f} Z")
            parts.append(f'<path class="slice" data-label="{escape(label)}" data-value="{value}" d="{path}" '
                         f'fill="{color}"><title>{tip}</title></path>')
            angle = end
        ly = 14 + number * 18
        parts.append(f'<rect x="{size + 12}" y="{ly - 9}" width="10" height="10" fill="{color}"/>'
                     f'<text x="{size + 26}" y="{ly}">{escape(_clip(label, 16))} {share:.0%}</text>')
    if not total:
        parts.append(f'<circle cx="{center}" cy="{center}" r="{(radius + hole) / 2}" fill="none" stroke="#dde3ea" '
                     f'stroke-width="{radius - hole}"/><text x="{center}" y="{center + 4}" text-anchor="middle" '
                     f'fill="#5a6b7b">no data</text>')
    drawn = sum(1 for _, value in slices if value)
    height = max(size, 18 * len(slices) + 10)
    return _svg("donut", size + legend_w, height, title, "".join(parts), slices=drawn, total=total, chart_id=chart_id)


def meter(value, maximum, *, title, chart_id="", width=260, height=40):
    """A horizontal gauge (the security score): filled share of the maximum, colored by how good it is."""
    share = max(0.0, min(1.0, (value or 0) / maximum)) if maximum else 0.0
    color = "#b0413e" if share < 0.5 else "#c9a227" if share < 0.8 else "#4a9c5d"
    body = (f'<rect x="0" y="8" width="{width}" height="18" rx="4" fill="#dde3ea"/>'
            f'<rect class="meter-fill" data-value="{value}" x="0" y="8" width="{share * width:.1f}" height="18" '
            f'rx="4" fill="{color}"><title>{escape(f"{value} of {maximum}")}</title></rect>')
    return _svg("meter", width, height, title, body, value=value, max=maximum, chart_id=chart_id)
