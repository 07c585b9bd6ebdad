"""The SVG charts: one mark per value, labels escaped, empty data drawn as such."""

import xml.etree.ElementTree as ET

from dashboard import charts
from dashboard.tests.conftest import SVG, marks


def parse(markup):
    return ET.fromstring(str(markup))


def test_a_line_chart_has_one_point_per_label_in_every_series():
    labels = [f"2026-11-22T{hour:02d}:00:00Z" for hour in range(24)]
    svg = parse(charts.line_chart([
        charts.Series("received", list(range(24))),
        charts.Series("clients", [1] * 24, axis="right", area=False),
    ], labels, title="t", chart_id="c"))
    assert svg.get("id") == "c"
    assert svg.get("data-points") == "24"
    lines = marks(svg, "polyline", "series")
    assert [line.get("data-points") for line in lines] == ["24", "24"]
    assert [len(line.get("points").split()) for line in lines] == [24, 24]
    assert lines[0].get("data-total") == str(sum(range(24)))
    assert len(marks(svg, "rect", "point")) == 24


def test_the_highest_value_of_a_line_is_drawn_highest():
    svg = parse(charts.line_chart([charts.Series("x", [1, 9, 3])], ["a", "b", "c"], title="t"))
    ys = [float(pair.split(",")[1]) for pair in marks(svg, "polyline", "series")[0].get("points").split()]
    assert ys.index(min(ys)) == 1


def test_a_tooltip_names_the_time_and_each_value():
    svg = parse(charts.line_chart([charts.Series("received", [2048], format=charts.human_bytes)],
                                  ["2026-11-22T10:00:00Z"], title="t"))
    tip = marks(svg, "rect", "point")[0].find(f"{SVG}title").text
    assert tip == "2026-11-22T10:00:00Z\nreceived: 2.0 KB"


def test_bar_lengths_follow_the_values_and_labels_are_escaped():
    svg = parse(charts.bar_chart([charts.Bar("<b>big</b>", 10), charts.Bar("small", 5)], title="t"))
    bars = marks(svg, "rect", "bar")
    assert svg.get("data-bars") == "2"
    assert [bar.get("data-label") for bar in bars] == ["<b>big</b>", "small"]
    assert float(bars[0].get("width")) == 2 * float(bars[1].get("width"))


def test_an_empty_bar_chart_says_no_data():
    svg = parse(charts.bar_chart([], title="t"))
    assert svg.get("data-bars") == "0"
    assert "no data" in "".join(svg.itertext())


def test_stacked_columns_hold_each_part_and_the_total():
    svg = parse(charts.column_chart([charts.Column("10:00", [7, 3]), charts.Column("11:00", [0, 0])],
                                    parts=["allowed", "blocked"], title="t"))
    columns = marks(svg, "g", "column")
    assert len(columns) == 2
    assert columns[0].get("data-total") == "10"
    assert [seg.get("data-value") for seg in columns[0].iter(f"{SVG}rect")] == ["7", "3"]


def test_a_donut_draws_only_slices_with_a_value():
    svg = parse(charts.donut_chart([("TCP", 30), ("UDP", 10), ("GRE", 0)], title="t"))
    slices = [node for node in svg.iter() if "slice" in node.get("class", "")]
    assert svg.get("data-slices") == "2"
    assert [s.get("data-label") for s in slices] == ["TCP", "UDP"]
    assert "TCP 75%" in "".join(svg.itertext())


def test_a_single_slice_donut_is_a_full_ring():
    svg = parse(charts.donut_chart([("TCP", 5)], title="t"))
    assert len([n for n in svg.iter(f"{SVG}circle") if n.get("class") == "slice"]) == 1


def test_the_meter_fills_its_share_of_the_width():
    svg = parse(charts.meter(25, 100, title="t", width=200))
    assert float(marks(svg, "rect", "meter-fill")[0].get("width")) == 50.0


def test_human_bytes():
    assert [charts.human_bytes(v) for v in (0, 1023, 1536, 5 * 1024**3)] == ["0 B", "1023 B", "1.5 KB", "5.0 GB"]
