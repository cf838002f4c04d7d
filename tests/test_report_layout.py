"""The inversion report a person reads: tables that fit a laptop screen, the target named by
its file, no attack top-5 where it is 1.0 by construction (<= 5 classes)."""

from __future__ import annotations

import dataclasses
import json
import re

import numpy as np

from tfminv.reporting import inversion
from tfminv.results import InversionResults, InversionRow


def _result(classes: int, name: str | None = "keras:/models/own_face_classifier.keras"):
    rng = np.random.default_rng(0)
    n = 2 * classes
    victims = rng.random((n, 16, 16, 1)).astype(np.float32)
    policies = ["identity", "topk:3", "label"]
    rows = [InversionRow(policy=p, k=classes, released_entries=float(classes - i), mse=0.03 + i,
                         psnr=15.0, ssim=0.3, beats_mean_aux=True, attack_acc=0.4,
                         attack_acc_top5=1.0 if classes <= 5 else 0.8, utility=0.9,
                         agreement=1.0, aux_val_mse=0.03, seconds=12.0)
            for i, p in enumerate(policies)]
    target = {"identity": "keras:3f9a0c1b2d4e5f60|in=0,1|raw", "input_range": [0, 1],
              "outputs": "probabilities", "outputs_from": "the model's last layer is softmax",
              "classes": classes}
    if name:
        target["name"] = name
    settings = {"target": target, "judge": {"judge": "eval_model", "note": "independent"},
                "image_shape": [16, 16, 1], "classes": classes, "victims": n}
    refs = {"mse_mean_aux": 0.05, "mse_zeros": 0.2, "chance_accuracy": 1 / classes}
    return InversionResults(rows=rows, reconstructions={p: victims for p in policies},
                            baselines=refs, settings=settings, victim_images=victims,
                            victim_labels=np.arange(n) % classes)


def _tables(html_text):
    return [re.findall(r"<th>(.*?)</th>", t) for t in re.findall(r"<table>(.*?)</table>",
                                                               html_text, re.S)]


def test_tables_fit_and_cover_every_column(tmp_path):
    files = _result(12).write_report(tmp_path)
    html_text = files["report.html"].read_text()
    tables = _tables(html_text)
    assert all(len(t) <= 9 for t in tables), [len(t) for t in tables]  # was one of 13
    headers = {h for t in tables for h in t}
    shown = {c for spec in (inversion.LEAKAGE_TABLE, inversion.UTILITY_TABLE) for c, h in spec
             if h in headers}
    assert shown == {f.name for f in dataclasses.fields(InversionRow)}  # nothing dropped
    assert "attack top-5" in headers
    # the target is named by its file, not by the weights hash
    assert "own_face_classifier.keras" in html_text.split("<h2>")[0]
    assert "3f9a0c1b2d4e5f60" not in html_text.split("<h2>")[0]


def test_no_top5_for_five_classes_or_fewer(tmp_path):
    files = _result(5).write_report(tmp_path)
    html_text, md = files["report.html"].read_text(), files["report.md"].read_text()
    assert "attack top-5" not in {h for t in _tables(html_text) for h in t}
    assert "every label is in the top 5" in html_text and "attack top-5 |" not in md
    assert "attack_acc_top5 |" not in files["results.md"].read_text()
    # results.json keeps the measured rows as they are (the data, not the presentation)
    assert "attack_acc_top5" in json.loads(files["results.json"].read_text())[0]
    assert inversion.reported_columns(["attack_acc", "attack_acc_top5"], 6) == [
        "attack_acc", "attack_acc_top5"]


def test_target_without_a_name_falls_back_to_its_identity(tmp_path):
    files = _result(12, name=None).write_report(tmp_path)
    assert "keras:3f9a0c1b2d4e5f60" in files["report.html"].read_text().split("<h2>")[0]
    described = "bundled facescrub classifier (width 0.25, 20 epochs)"
    files = _result(12, name=None).write_report(tmp_path / "b", extra={"target": described})
    assert described in files["report.html"].read_text().split("<h2>")[0]
