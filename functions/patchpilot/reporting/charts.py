"""Inline SVG charts: no script, no external asset, readable in print (text labels, not colour alone)."""

from html import escape

STATUS_COLOURS = {
    "compliant": "#2e7d32",
    "non_compliant": "#c62828",
    "unmanaged": "#6d4c41",
    "scan_in_progress": "#1565c0",
    "install_in_progress": "#ef6c00",
}
_FONT = 'font-family="Helvetica, Arial, sans-serif" font-size="12"'


def status_bar(counts: dict[str, int], width: int = 640) -> str:
    """One horizontal bar split by status, with a labelled legend (count and share)."""
    total = sum(counts.values()) or 1
    x = 0.0
    parts = []
    for status, count in counts.items():
        share = width * count / total
        if count:
            parts.append(
                f'<rect x="{x:.1f}" y="0" width="{share:.1f}" height="28" fill="{STATUS_COLOURS.get(status, "#888")}">'
                f"<title>{escape(status)}: {count}</title></rect>"
            )
        x += share
    legend = []
    for index, (status, count) in enumerate(counts.items()):
        y = 48 + 18 * index
        legend.append(
            f'<rect x="0" y="{y - 10}" width="12" height="12" fill="{STATUS_COLOURS.get(status, "#888")}"/>'
            f'<text x="18" y="{y}" {_FONT}>{escape(status.replace("_", " "))}: {count} '
            f"({100 * count / total:.1f} %)</text>"
        )
    height = 48 + 18 * len(counts)
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" role="img" aria-label="nodes by status" width="{width}" '
        f'height="{height}" viewBox="0 0 {width} {height}">{"".join(parts)}{"".join(legend)}</svg>'
    )


def rate_bars(rates: dict[str, float | None], width: int = 640) -> str:
    """Compliance rate per name (patch group, environment, OS) as labelled horizontal bars on a 0-100 % scale."""
    label_width, bar_width, row = 170, width - 230, 22
    rows = []
    for index, (name, rate) in enumerate(rates.items()):
        y = index * row
        value = rate or 0.0
        colour = "#2e7d32" if value >= 95 else "#ef6c00" if value >= 80 else "#c62828"
        shown = "n/a" if rate is None else f"{rate:.1f} %"
        rows.append(
            f'<text x="0" y="{y + 15}" {_FONT}>{escape(name[:26])}</text>'
            f'<rect x="{label_width}" y="{y + 3}" width="{bar_width}" height="14" fill="#eee"/>'
            f'<rect x="{label_width}" y="{y + 3}" width="{bar_width * value / 100:.1f}" height="14" fill="{colour}"/>'
            f'<text x="{label_width + bar_width + 6}" y="{y + 15}" {_FONT}>{shown}</text>'
        )
    height = max(row * len(rates), row)
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" role="img" aria-label="compliance rate" width="{width}" '
        f'height="{height}" viewBox="0 0 {width} {height}">{"".join(rows)}</svg>'
    )


def trend_line(points: list[tuple[str, float | None]], width: int = 640, height: int = 180) -> str:
    """The fleet compliance rate over past refreshes and cycles (0-100 %), labelled first and last."""
    known = [(label, rate) for label, rate in points if rate is not None]
    if not known:
        empty = f'<text x="0" y="16" {_FONT}>no history yet</text>'
        return f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="24">{empty}</svg>'
    left, bottom, top = 40, height - 24, 10
    step = (width - left - 20) / max(len(known) - 1, 1)
    coords = [(left + i * step, bottom - (bottom - top) * rate / 100) for i, (_, rate) in enumerate(known)]
    path = " ".join(f"{x:.1f},{y:.1f}" for x, y in coords)
    grid = "".join(
        f'<line x1="{left}" x2="{width - 10}" y1="{bottom - (bottom - top) * p / 100:.1f}" '
        f'y2="{bottom - (bottom - top) * p / 100:.1f}" stroke="#ddd"/>'
        f'<text x="0" y="{bottom - (bottom - top) * p / 100 + 4:.1f}" {_FONT}>{p} %</text>'
        for p in (0, 50, 100)
    )
    dots = "".join(
        f'<circle cx="{x:.1f}" cy="{y:.1f}" r="3" fill="#1565c0"><title>{escape(label)}: {rate:.1f} %</title></circle>'
        for (x, y), (label, rate) in zip(coords, known, strict=True)
    )
    labels = (
        f'<text x="{left}" y="{height - 6}" {_FONT}>{escape(known[0][0])}</text>'
        f'<text x="{width - 10}" y="{height - 6}" text-anchor="end" {_FONT}>{escape(known[-1][0])}: '
        f"{known[-1][1]:.1f} %</text>"
    )
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" role="img" aria-label="compliance trend" width="{width}" '
        f'height="{height}" viewBox="0 0 {width} {height}">{grid}'
        f'<polyline points="{path}" fill="none" stroke="#1565c0" stroke-width="2"/>{dots}{labels}</svg>'
    )
