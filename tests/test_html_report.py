"""Self-contained HTML / markdown reports and the OpenCV scatter plots they embed."""

from __future__ import annotations

import base64
import re

import cv2
import numpy as np
import pytest

from tfminv.errors import ConfigError
from tfminv.reporting.html_report import Report, external_references, png_data_uri
from tfminv.reporting.plots import Panel, scatter_panels


def _png(path, value=128, size=(20, 30)):
    img = np.full(size + (3,), value, np.uint8)
    img[:5, :5] = (0, 0, 255)
    assert cv2.imwrite(str(path), img)
    return path


def test_html_embeds_figures_and_escapes_text(tmp_path):
    fig = _png(tmp_path / "fig.png")
    rep = (Report("Audit <model>", subtitle="target `keras:m.keras`")
           .heading("Results").paragraph("a < b & `code`")
           .table(["policy", "mse", "n"], [["topk:3|round:2", 0.0123456, 3], ["label", None, 4]],
                  caption="per policy", formats=[None, ".3f", None])
           .figure(fig, caption="a figure").note("careful").bullets(["one", "two"]).code("x = 1"))
    html_text = rep.to_html()
    assert external_references(html_text) == []
    assert "&lt;model&gt;" in html_text and "a &lt; b &amp; <code>code</code>" in html_text
    assert "<td>0.012</td>" in html_text and "<td>-</td>" in html_text
    uri = re.search(r'src="(data:image/png;base64,[^"]+)"', html_text).group(1)
    decoded = cv2.imdecode(np.frombuffer(base64.b64decode(uri.split(",", 1)[1]), np.uint8),
                           cv2.IMREAD_COLOR)
    np.testing.assert_array_equal(decoded, cv2.imread(str(fig)))
    out = tmp_path / "out"
    rep.write(out / "report.html", out / "report.md")
    assert (out / "report.html").read_text() == html_text
    md = (out / "report.md").read_text()
    assert "| topk:3\\|round:2 | 0.012 | 3 |" in md
    assert "![a figure](../fig.png)" in md
    assert not list(out.glob(".*tmp*"))  # atomic writes leave nothing behind


def test_external_references_are_detected():
    page = ('<img src="http://x/y.png"><a href="#top">t</a><link href="s.css">'
            '<img src="data:image/png;base64,AAAA"><div style="background:url(z.png)">')
    assert external_references(page) == ["http://x/y.png", "s.css", "z.png"]


def test_bad_inputs_raise_config_errors(tmp_path):
    with pytest.raises(ConfigError, match="2 cells, expected 3"):
        Report("t").table(["a", "b", "c"], [[1, 2]])
    (tmp_path / "fake.png").write_bytes(b"not a png")
    with pytest.raises(ConfigError, match="fake.png: not a PNG"):
        png_data_uri(tmp_path / "fake.png")
    with pytest.raises(ConfigError, match="missing.png: cannot read"):
        Report("t").figure(tmp_path / "missing.png").to_html()
    with pytest.raises(ConfigError, match="same length"):
        scatter_panels([Panel([0.1], [0.2, 0.3], ["a"], "x", "y")])
    with pytest.raises(ConfigError, match="no panels"):
        scatter_panels([])


def test_scatter_panels_draws_points_in_the_right_places(tmp_path):
    labels = ["identity", "topk:1", "label"]
    panels = [Panel([0.9, 0.5, 0.1], [0.8, 0.4, 0.2], labels, "utility", "attack accuracy",
                    title="A", x_range=(0, 1), y_range=(0, 1), hlines=[(0.5, "chance")]),
              Panel([0.9, 0.5, 0.1], [0.01, 0.02, 0.03], labels, "utility", "MSE", title="B")]
    path = tmp_path / "plot.png"
    rgb = scatter_panels(panels, path, panel_size=(400, 300))
    assert rgb.shape == (300, 800, 3) and rgb.dtype == np.uint8
    on_disk = cv2.imread(str(path))[:, :, ::-1]
    np.testing.assert_array_equal(on_disk, rgb)
    # panel A: plot area is x in [70, 380], y in [36, 250] (margins of the panel layout)
    def at(xv, yv):
        return rgb[int(round(36 + 214 - yv * 214)), int(round(70 + xv * 310))]
    for (xv, yv) in [(0.9, 0.8), (0.5, 0.4), (0.1, 0.2)]:
        assert at(xv, yv).min() < 240, "no point drawn where one belongs"
    assert (at(0.7, 0.9) == 255).all()  # empty plot area stays white
    # the same label keeps the same colour in both panels: sample the centre pixel colours
    left_colours = {tuple(at(x, y)) for x, y in [(0.9, 0.8), (0.5, 0.4), (0.1, 0.2)]}
    assert len(left_colours) == 3


def test_labels_of_close_reference_lines_and_points_do_not_overlap():
    """Two reference lines a pixel apart keep both labels readable, and no label covers a
    marker (the 471-identity audit plot had 'majority class' over 'chance')."""
    def draw(hlines, point=(0.1, 0.1)):
        panel = Panel([point[0]], [point[1]], ["p"], "x", "y", x_range=(0, 1), y_range=(0, 1),
                      hlines=hlines)
        return scatter_panels([panel], panel_size=(400, 300))

    inside = np.zeros((300, 400), bool)
    inside[38:248, 72:378] = True  # the plot area of this layout, without its frame

    def ink(rgb):
        return (rgb.min(axis=2) < 150) & inside

    def bbox(mask):
        ys, xs = np.nonzero(mask)
        return xs.min(), ys.min(), xs.max(), ys.max()

    rest = ink(draw([(0.5, ""), (0.505, "")]))  # the dashed lines, the point and its label
    one = draw([(0.5, "chance"), (0.505, "")])
    both = draw([(0.5, "chance"), (0.505, "majority class")])
    chance = ink(one) & ~rest
    majority = ink(both) & ~rest & ~chance
    assert chance.sum() > 20 and majority.sum() > 20  # both labels are drawn
    a, b = bbox(chance), bbox(majority)
    assert b[2] < a[0] or b[0] > a[2] or b[3] < a[1] or b[1] > a[3], (a, b)
    np.testing.assert_array_equal(both[chance], one[chance])  # 'chance' is not drawn over
    # a point right where the line's label would go: the label moves off its marker
    x, y = int(round(70 + 0.95 * 310)), int(round(36 + 214 - 0.53 * 214))
    crowded = draw([(0.5, "chance")], point=(0.95, 0.53))[y - 5:y + 6, x - 5:x + 6]
    clean = draw([(0.5, "")], point=(0.95, 0.53))[y - 5:y + 6, x - 5:x + 6]
    np.testing.assert_array_equal(crowded, clean)


def test_grid_labels_have_their_own_column(tmp_path):
    """A label longer than label_width widens the label column: the first image column holds
    the image's pixels only (the committed grids had 'previous_logzero k=100' over it)."""
    from tfminv.reporting.figures import image_grid, label_column_width

    imgs = np.full((2, 16, 16, 1), 0.5, np.float32)
    label = "previous_logzero k=100"
    grid = image_grid([("ground truth", imgs), (label, imgs)], tmp_path / "g.png", scale=2,
                      label_width=40, pad=2)
    width = label_column_width(["ground truth", label], 40)
    assert width > 40 and grid.shape[1] == width + 2 + 2 * (32 + 2)
    first_image = grid[2:2 + 32, width + 2:width + 2 + 32]
    assert (first_image == round(255 * 0.5)).all()  # no text pixel inside the image
    assert (grid[2:2 + 32, :width] < 128).any()  # the label is drawn, in its own column
