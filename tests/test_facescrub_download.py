"""Rebuilding FaceScrub from official-format lists, against a local HTTP server on 127.0.0.1
serving real FaceScrub-12 faces (no network): checksums, bbox crops, counted per-row failures,
resume, and a folder the FaceScrub reader builds from."""

from __future__ import annotations

import functools
import hashlib
import http.server
import json
import os
import socket
import subprocess
import sys
import threading

import cv2
import numpy as np
import pytest

from tfminv.data import build, facescrub_lists, records

FS = "facescrub_subset12"


class _Counting(http.server.SimpleHTTPRequestHandler):
    hits: list = []

    def log_message(self, *a):
        pass

    def do_GET(self):
        type(self).hits.append(self.path)
        super().do_GET()


@pytest.fixture()
def server(tmp_path):
    www = tmp_path / "www"
    www.mkdir()
    _Counting.hits = []
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0),
                                          functools.partial(_Counting, directory=str(www)))
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    yield www, f"http://127.0.0.1:{srv.server_address[1]}/"
    srv.shutdown()
    srv.server_close()


def _closed_port() -> int:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


@pytest.fixture()
def lists(data_dir, server, tmp_path):
    """Two official-format lists whose rows are official FaceScrub-12 rows (name, ids, sha256)
    pointed at real FaceScrub faces served locally (upscaled crops, so the box crops a face)."""
    www, url = server
    rows = [l.split("\t") for l in
            (data_dir / FS / "facescrub12_official_rows.tsv").read_text().splitlines()]
    header, rows = rows[0], rows[1:]
    with np.load(data_dir / FS / "facescrub12_official_bbox_crops_64.npz") as z:
        faces, face_ids = z["images_rgb"], z["face_id"]
    by_face = {int(f): i for i, f in enumerate(face_ids)}
    served = [r for r in rows if int(r[2]) in by_face]
    people = {}
    for r in served:
        people.setdefault(r[0], []).append(r)
    (a_name, a_rows), (b_name, b_rows) = list(people.items())[:2]
    expected = {}

    def serve(r, box=(16, 24, 112, 120)):
        img = cv2.resize(faces[by_face[int(r[2])]], (128, 128), interpolation=cv2.INTER_LINEAR)
        ok, buf = cv2.imencode(".png", cv2.cvtColor(img, cv2.COLOR_RGB2BGR))
        data = buf.tobytes()
        (www / f"{r[2]}.png").write_bytes(data)
        x1, y1, x2, y2 = box
        expected[(r[0], r[2])] = img[y1:y2, x1:x2]
        return [r[0], r[1], r[2], f"{url}{r[2]}.png", ",".join(map(str, box)),
                hashlib.sha256(data).hexdigest()]

    html = b"<html><body>Image not found</body></html>"
    (www / "gone.jpg").write_bytes(html)
    actors = [header[:6], serve(a_rows[0]), serve(a_rows[1]),
              # the photo changed since the list was made: the official checksum no longer fits
              [*serve(a_rows[2])[:5], a_rows[2][5]],
              a_rows[3][:3] + [f"{url}missing.jpg"] + a_rows[3][4:6],            # 404
              a_rows[4][:3] + [f"http://127.0.0.1:{_closed_port()}/x.jpg"] + a_rows[4][4:6],
              a_rows[5][:3] + [f"{url}gone.jpg", a_rows[5][4], hashlib.sha256(html).hexdigest()],
              a_rows[6][:5]]                                                     # malformed
    actresses = [serve(b_rows[0]), serve(b_rows[1]),
                 serve(b_rows[2], box=(300, 300, 400, 400)),                     # box outside
                 [b_rows[3][0], b_rows[3][1], "x", b_rows[3][3], "1,2", "zz"]]   # malformed
    pa, pb = tmp_path / "ACTORS.txt", tmp_path / "ACTRESSES.txt"
    pa.write_text("\n".join("\t".join(r) for r in actors) + "\n")
    pb.write_text("\n".join("\t".join(r) for r in actresses) + "\n")
    return [pa, pb], expected, (a_name, b_name)


def test_download_crops_counts_and_resumes(lists, tmp_path):
    (pa, pb), expected, names = lists
    data = tmp_path / "data"
    rep = facescrub_lists.download_facescrub([pa, pb], data_dir=data, timeout=3, workers=4)
    assert rep["counts"] == {"ok": 4, "present": 0, "failed": 4, "mismatched": 1,
                             "malformed": 2}
    folder = data / "facescrub"
    assert not (data / "facescrub.partial").exists() and (folder / "download_report.json").is_file()
    reasons = " ".join(r["reason"] for r in rep["not_ok"])
    assert "HTTP 404" in reasons and "refused" in reasons and "not an image" in reasons
    assert "outside the 128x128 image" in reasons and "6 tab-separated fields" not in reasons
    assert "5 tab-separated fields, expected 6" in reasons and "list says" in reasons
    for (name, face_id), crop in expected.items():
        f = folder / name / f"{face_id}.png"
        if crop.size == 0:
            assert not f.exists()
            continue
        if not f.exists():  # the mismatched row
            continue
        got = cv2.cvtColor(cv2.imread(str(f)), cv2.COLOR_BGR2RGB)
        np.testing.assert_array_equal(got, crop)  # the official box, lossless
    assert sorted(p.name for p in folder.iterdir() if p.is_dir()) == sorted(names)

    # the FaceScrub reader builds from what was written
    out = build.build("facescrub", data_dir=data, records_dir=tmp_path / "r")
    assert [(r["split"], r["count"]) for r in out] == [("all", 4)]
    _, labels, _, meta = records.read_arrays(build.records_path("facescrub", 64,
                                                                tmp_path / "r"), "all")
    assert meta["label_names"] == sorted(names) and sorted(set(labels.tolist())) == [0, 1]

    # resume: rows on disk are not fetched again; failed ones are retried
    _Counting.hits.clear()
    rep2 = facescrub_lists.download_facescrub([pa, pb], data_dir=data, timeout=3, workers=4)
    assert rep2["counts"]["present"] == 4 and rep2["counts"]["ok"] == 0
    assert len(_Counting.hits) == 4  # mismatch, 404, non-image, box outside (closed port: none)


def test_interrupted_download_is_not_a_dataset(lists, tmp_path):
    (pa, pb), _, _ = lists
    data = tmp_path / "data"
    partial = data / "facescrub.partial"
    partial.mkdir(parents=True)
    # the reader does not take the unfinished folder for a dataset
    with pytest.raises(Exception, match="facescrub"):
        build.build("facescrub", data_dir=data, records_dir=tmp_path / "r")
    rep = facescrub_lists.download_facescrub([pa, pb], data_dir=data, timeout=3)
    assert rep["counts"]["ok"] == 4 and not partial.exists()


def test_cli_prints_counts_and_rejects_bad_flags(lists, tmp_path):
    (pa, pb), _, _ = lists
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
    cmd = [sys.executable, "-m", "tfminv.data.download", "--dataset=facescrub",
           f"--lists={pa},{pb}", f"--data_dir={tmp_path / 'd'}", "--timeout=3"]
    res = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=120)
    assert res.returncode == 0, res.stderr
    line = json.loads(res.stdout.strip().splitlines()[-1])
    assert (line["ok"], line["failed"], line["mismatched"], line["malformed"]) == (4, 4, 1, 2)
    bad = subprocess.run(cmd[:4] + ["--lists=", f"--data_dir={tmp_path / 'e'}"],
                         capture_output=True, text=True, env=env, timeout=120)
    assert bad.returncode == 2 and "--lists is empty" in bad.stderr
    missing = subprocess.run(cmd[:4] + [f"--lists={tmp_path / 'nope.txt'}"],
                             capture_output=True, text=True, env=env, timeout=120)
    assert missing.returncode == 2 and "nope.txt: cannot read the list" in missing.stderr
    assert "Traceback" not in bad.stderr + missing.stderr
