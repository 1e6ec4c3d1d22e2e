"""The graphs of BENCHMARKS.md, drawn as plain SVG (no plotting library)."""

from __future__ import annotations

import html
import math
from pathlib import Path
from typing import Callable

from catalog import SCENARIOS, SCENARIOS_BY_NAME, SERVERS_BY_NAME

# --------------------------------------------------------------------------
# Graphs, drawn as plain SVG

COLORS = {
    "echo-server": "#d62728",
    "echo-server-copy": "#ff9896",
    "echo-server-sleep": "#e377c2",
    "tokio-current": "#1f77b4",
    "tokio-multi": "#9ecae1",
    "mio-echo": "#2ca02c",
    "socat": "#7f7f7f",
}
FONT = 'font-family="DejaVu Sans, Helvetica, Arial, sans-serif"'


class Svg:
    """Just enough SVG: rectangles, lines and text, in document order."""

    def __init__(self, width: int, height: int):
        self.width, self.height = width, height
        self.items = [f'<rect x="0" y="0" width="{width}" height="{height}" fill="white"/>']

    def rect(self, x: float, y: float, w: float, h: float, fill: str, title: str = "") -> None:
        tip = f"<title>{html.escape(title)}</title>" if title else ""
        self.items.append(f'<rect x="{x:.1f}" y="{y:.1f}" width="{w:.1f}" height="{max(h, 0):.1f}" fill="{fill}">{tip}</rect>')

    def line(self, x1: float, y1: float, x2: float, y2: float, stroke: str = "#000", width: float = 1, dash: str = "") -> None:
        dashes = f' stroke-dasharray="{dash}"' if dash else ""
        self.items.append(f'<line x1="{x1:.1f}" y1="{y1:.1f}" x2="{x2:.1f}" y2="{y2:.1f}" stroke="{stroke}" stroke-width="{width}"{dashes}/>')

    def text(self, x: float, y: float, s: str, size: int = 12, anchor: str = "middle", weight: str = "normal", rotate: float = 0, fill: str = "#000") -> None:
        turn = f' transform="rotate({rotate} {x:.1f} {y:.1f})"' if rotate else ""
        self.items.append(
            f'<text x="{x:.1f}" y="{y:.1f}" font-size="{size}" text-anchor="{anchor}" font-weight="{weight}" fill="{fill}" {FONT}{turn}>{html.escape(s)}</text>'
        )

    def legend(self, x: float, y: float, servers: list[str]) -> None:
        """One swatch and label per server, wrapping onto a new row 20 px
        down where the next would run past the right edge."""
        left = x
        for name in servers:
            label = SERVERS_BY_NAME[name].label
            width = 30 + 7 * len(label)
            if x > left and x + width > self.width - 10:
                x, y = left, y + 20
            self.rect(x, y - 10, 12, 12, COLORS[name])
            self.text(x + 17, y, label, size=12, anchor="start")
            x += width

    def save(self, path: Path) -> None:
        body = "\n".join(self.items)
        path.write_text(
            f'<svg xmlns="http://www.w3.org/2000/svg" width="{self.width}" height="{self.height}" viewBox="0 0 {self.width} {self.height}">\n{body}\n</svg>\n'
        )


def compact(v: float) -> str:
    """1234567 -> 1.23M: bar labels that fit above a bar."""
    for div, suffix in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(v) >= div:
            return f"{v / div:.3g}{suffix}"
    return f"{v:.3g}"


def nice_max(v: float) -> float:
    """The smallest 1, 2 or 5 x 10^n at or above v: a round top for an axis."""
    if v <= 0:
        return 1.0
    exp = 10 ** math.floor(math.log10(v))
    return next(m * exp for m in (1, 2, 5, 10) if m * exp >= v)


def bar_panel(svg: Svg, x0: float, y0: float, w: float, h: float, title: str, unit: str,
              groups: list[str], series: list[str], value: Callable[[str, str], float | None], log: bool,
              ceiling: tuple[str, float] | None = None) -> None:
    """Grouped bars in the box (x0, y0, w, h): one group per `groups` item,
    one bar per `series` item, a labelled y axis (linear from 0, or log10),
    and optionally a dashed line for a named ceiling."""
    values = [v for g in groups for s in series if (v := value(g, s)) is not None and v > 0]
    if ceiling:
        values.append(ceiling[1])
    svg.text(x0 + w / 2, y0 - 12, title, size=13, weight="bold")
    if not values:
        svg.text(x0 + w / 2, y0 + h / 2, "not measured", size=12, fill="#777")
        return
    if log:
        lo = 10 ** math.floor(math.log10(min(values)))
        # Headroom above the tallest bar for its rotated value label.
        hi = max(10 ** math.ceil(math.log10(max(values) * 3)), lo * 10)
        ticks = [lo * 10**i for i in range(round(math.log10(hi / lo)) + 1)]
        scale = lambda v: h * (math.log10(v) - math.log10(lo)) / (math.log10(hi) - math.log10(lo))  # noqa: E731
    else:
        hi = nice_max(max(values) * 1.15)
        ticks = [hi * i / 4 for i in range(5)]
        scale = lambda v: h * v / hi  # noqa: E731
    for t in ticks:
        y = y0 + h - scale(t)
        svg.line(x0, y, x0 + w, y, stroke="#ddd")
        svg.text(x0 - 5, y + 4, compact(t), size=10, anchor="end")
    svg.text(x0 - 42, y0 + h / 2, unit + (" (log scale)" if log else ""), size=11, rotate=-90)
    svg.line(x0, y0, x0, y0 + h)
    svg.line(x0, y0 + h, x0 + w, y0 + h)
    group_w = w / len(groups)
    bar_w = group_w * 0.8 / len(series)
    for gi, g in enumerate(groups):
        gx = x0 + gi * group_w + group_w * 0.1
        for si, s in enumerate(series):
            v = value(g, s)
            bx = gx + si * bar_w
            if v is None or v <= 0:
                svg.text(bx + bar_w / 2, y0 + h - 4, "n/a", size=8, fill="#777", rotate=-90)
                continue
            bh = scale(v)
            svg.rect(bx, y0 + h - bh, bar_w - 1, bh, COLORS[s], f"{SERVERS_BY_NAME[s].label}: {v:,.1f} {unit}")
            svg.text(bx + bar_w / 2 + 3, y0 + h - bh - 3, compact(v), size=9, anchor="start", rotate=-90)
        if len(groups) > 1:
            svg.text(x0 + gi * group_w + group_w / 2, y0 + h + 16, g, size=11)
    if ceiling:
        y = y0 + h - scale(ceiling[1])
        svg.line(x0, y, x0 + w, y, stroke="#444", width=1.5, dash="6 4")
        svg.text(x0 + w - 2, y - 4, f"{ceiling[0]} {compact(ceiling[1])}", size=10, anchor="end", fill="#444")


def latency_graph(path: Path, summary: dict, servers: list[str]) -> None:
    """p50/p90/p99/p99.9 per server, one panel per latency scenario."""
    panels = [s for s in ("lat", "msg50") if s in summary]
    pcts = [("p50", "lat_p50_us"), ("p90", "lat_p90_us"), ("p99", "lat_p99_us"), ("p99.9", "lat_p999_us")]
    svg = Svg(520 * max(len(panels), 1) + 40, 440)
    svg.text(svg.width / 2, 24, "Round-trip latency percentiles per server (lower is better)", size=15, weight="bold")
    for i, name in enumerate(panels):
        rows = summary[name]
        shown = [s for s in servers if s in rows]
        bar_panel(
            svg, 90 + i * 520, 70, 430, 270, f"{name}: {SCENARIOS_BY_NAME[name].short}, depth 1", "microseconds",
            [p for p, _ in pcts], shown, lambda g, s: rows[s][dict(pcts)[g]], log=True,
        )
    svg.legend(90, 395, [s for s in servers if any(s in summary[p] for p in panels)])
    svg.save(path)


def throughput_graph(path: Path, summary: dict, servers: list[str], iperf3_mb_per_s: float | None) -> None:
    """One panel per scenario: messages/s, or MB/s for bulk (with the iperf3
    ceiling) and seed."""
    names = [s.name for s in SCENARIOS if s.name in summary]
    cols = 4
    rows_n = max(1, math.ceil(len(names) / cols))
    svg = Svg(cols * 300 + 40, rows_n * 300 + 110)
    svg.text(svg.width / 2, 24, "Throughput per scenario and server (higher is better)", size=15, weight="bold")
    for i, name in enumerate(names):
        scenario = SCENARIOS_BY_NAME[name]
        key, unit = ("mb_per_s", "MB/s") if scenario.bulk or name == "seed" else ("msgs_per_s", "messages/s")
        rows = summary[name]
        x0, y0 = 80 + (i % cols) * 300, 70 + (i // cols) * 300
        ceiling = ("iperf3", iperf3_mb_per_s) if scenario.bulk and iperf3_mb_per_s else None
        bar_panel(
            svg, x0, y0, 200, 220, f"{name}: {SCENARIOS_BY_NAME[name].short}", unit,
            [name], [s for s in servers if s in rows], lambda g, s: rows[s][key], log=False, ceiling=ceiling,
        )
    svg.legend(80, rows_n * 300 + 70, [s for s in servers if any(s in summary[n] for n in names)])
    svg.save(path)
