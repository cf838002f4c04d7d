"""Rebuild FaceScrub from its official lists (`facescrub_actors.txt`, `facescrub_actresses.txt`).

    python -m tfminv.data.download --dataset=facescrub --lists=ACTORS.txt,ACTRESSES.txt

Each list row is `name<TAB>image_id<TAB>face_id<TAB>url<TAB>x1,y1,x2,y2<TAB>sha256` (a header
row and extra trailing columns are accepted). For each row: download the URL with a short
timeout, check the SHA-256 of the bytes against the row's, decode the image, crop the official
bounding box (clipped to the image) and write the crop losslessly as
`<data_dir>/facescrub/<name>/<face_id>.png`, the image-folder layout the FaceScrub reader accepts.

Outcomes are per row and counted: `ok`, `present` (already downloaded: the run resumes), `failed`
(unreachable, HTTP error, not an image, box outside the image), `mismatched` (checksum differs:
the photo changed since FaceScrub was made), `malformed` (a row that does not parse). Nothing is
half-written: each crop is written under a temporary name and renamed, the work happens in
`facescrub.partial/` until every row has been tried once, and `download_report.json` records the
counts and every failed row.
"""

from __future__ import annotations

import concurrent.futures
import dataclasses
import hashlib
import json
import re
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np

from tfminv import io_utils, paths
from tfminv.errors import ConfigError, DataError

FOLDER = "facescrub"
PARTIAL = "facescrub.partial"
REPORT = "download_report.json"
TIMEOUT_S = 5.0
MAX_BYTES = 50 << 20  # larger responses are not photos
OUTCOMES = ("ok", "present", "failed", "mismatched", "malformed")
_HEX64 = re.compile(r"^[0-9a-fA-F]{64}$")
_UNSAFE = re.compile(r"[^A-Za-z0-9 ._'-]+")


@dataclasses.dataclass(frozen=True)
class Row:
    where: str      # list file and line number
    name: str
    face_id: str
    url: str
    box: tuple      # x1, y1, x2, y2
    sha256: str

    def path(self, root: Path) -> Path:
        return root / _UNSAFE.sub("_", self.name).strip() / f"{self.face_id}.png"


def parse_lists(lists) -> tuple[list[Row], list[dict]]:
    """(rows, malformed) from official list files; malformed = [{'where', 'reason'}]."""
    rows, bad = [], []
    for lst in lists:
        lst = Path(lst)
        try:
            lines = lst.read_text(encoding="utf-8", errors="replace").splitlines()
        except OSError as e:
            raise DataError(f"{lst}: cannot read the list ({e}); expected a FaceScrub list file "
                            "(name, image_id, face_id, url, bbox, sha256 per row)") from e
        for i, line in enumerate(lines, 1):
            where = f"{lst.name}:{i}"
            if not line.strip():
                continue
            parts = line.rstrip("\r\n").split("\t")
            if i == 1 and parts[0].strip().lower() == "name":
                continue  # header
            reason = None
            if len(parts) < 6:
                reason = f"{len(parts)} tab-separated fields, expected 6"
            else:
                name, _image_id, face_id, url, box, sha = (p.strip() for p in parts[:6])
                try:
                    box_v = tuple(int(round(float(v))) for v in box.split(","))
                except ValueError:
                    box_v = ()
                if not name or not face_id.isdigit():
                    reason = f"name {name!r} / face_id {face_id!r}; expected a name and an integer"
                elif not url.lower().startswith(("http://", "https://")):
                    reason = f"url {url!r}; expected http(s)://"
                elif len(box_v) != 4 or box_v[2] <= box_v[0] or box_v[3] <= box_v[1]:
                    reason = f"bbox {box!r}; expected x1,y1,x2,y2 with x2 > x1 and y2 > y1"
                elif not _HEX64.match(sha):
                    reason = f"sha256 {sha!r}; expected 64 hex digits"
            if reason:
                bad.append({"where": where, "outcome": "malformed", "reason": reason})
                continue
            rows.append(Row(where, name, face_id, url, box_v, sha.lower()))
    return rows, bad


def _get(url: str, timeout: float) -> bytes:
    req = urllib.request.Request(url, headers={"User-Agent": "tfminv-facescrub/1"})
    with urllib.request.urlopen(req, timeout=timeout) as resp:
        data = resp.read(MAX_BYTES + 1)
    if len(data) > MAX_BYTES:
        raise DataError(f"response larger than {MAX_BYTES >> 20} MB")
    return data


def fetch_row(row: Row, root: Path, timeout: float) -> dict:
    """Download, check, crop and write one row; returns {'where', 'outcome', 'reason'?}."""
    import cv2

    from tfminv.data.sources import decode_image

    out = {"where": row.where, "url": row.url}
    dest = row.path(root)
    if dest.is_file():
        return {**out, "outcome": "present"}
    try:
        data = _get(row.url, timeout)
    except urllib.error.HTTPError as e:
        return {**out, "outcome": "failed", "reason": f"download: HTTP {e.code} {e.reason}"}
    except (urllib.error.URLError, TimeoutError, OSError, ValueError, DataError) as e:
        return {**out, "outcome": "failed", "reason": f"download: {getattr(e, 'reason', e)}"}
    got = hashlib.sha256(data).hexdigest()
    if got != row.sha256:
        return {**out, "outcome": "mismatched", "reason": f"sha256 {got}, list says {row.sha256}"}
    try:
        img = decode_image(data, row.url)
    except DataError as e:
        return {**out, "outcome": "failed", "reason": f"not an image: {e}"}
    h, w = img.shape[:2]
    x1, y1, x2, y2 = row.box
    x1, y1, x2, y2 = max(0, x1), max(0, y1), min(w, x2), min(h, y2)
    if x2 <= x1 or y2 <= y1:
        return {**out, "outcome": "failed",
                "reason": f"bbox {row.box} outside the {w}x{h} image"}
    crop = np.ascontiguousarray(img[y1:y2, x1:x2])
    if crop.ndim == 3 and crop.shape[-1] >= 3:
        crop = cv2.cvtColor(crop[..., :3], cv2.COLOR_RGB2BGR)
    dest.parent.mkdir(parents=True, exist_ok=True)
    ok, buf = cv2.imencode(".png", crop)
    if not ok:
        return {**out, "outcome": "failed", "reason": "cannot encode the crop as PNG"}
    with io_utils.atomic_path(dest) as tmp:
        Path(tmp).write_bytes(buf.tobytes())
    return {**out, "outcome": "ok"}


def download_facescrub(lists, *, data_dir=None, timeout: float = TIMEOUT_S, workers: int = 8,
                       progress: bool = False) -> dict:
    """Fetch every row of the official lists into <data_dir>/facescrub/<name>/<face_id>.png.

    Returns the report: counts per outcome, the folder, and the rows that did not succeed.
    Rows already on disk are not fetched again (resume); failed rows are retried by a rerun.
    """
    if not lists:
        raise ConfigError("--lists is empty; expected the official FaceScrub list files, e.g. "
                          "--lists=facescrub_actors.txt,facescrub_actresses.txt")
    if timeout <= 0 or workers < 1:
        raise ConfigError(f"timeout={timeout}, workers={workers}; expected > 0 and >= 1")
    rows, bad = parse_lists(lists)
    base = paths.data_dir(data_dir)
    final, partial = base / FOLDER, base / PARTIAL
    root = final if final.is_dir() and not partial.is_dir() else partial
    root.mkdir(parents=True, exist_ok=True)
    seen, dup = set(), []
    unique = []
    for r in rows:  # one file per (name, face_id): a repeated row is fetched once
        key = r.path(root)
        if key in seen:
            dup.append(r)
            continue
        seen.add(key)
        unique.append(r)
    results = []
    with concurrent.futures.ThreadPoolExecutor(max_workers=int(workers)) as pool:
        futures = [pool.submit(fetch_row, r, root, timeout) for r in unique]
        it = concurrent.futures.as_completed(futures)
        if progress:
            from tqdm import tqdm

            it = tqdm(it, total=len(futures), desc="facescrub", unit="row")
        for f in it:
            results.append(f.result())
    results += bad
    counts = {o: sum(1 for r in results if r["outcome"] == o) for o in OUTCOMES}
    report = {"lists": [str(p) for p in lists], "rows": len(rows) + len(bad),
              "duplicate_rows": len(dup), "counts": counts, "folder": str(final),
              "not_ok": sorted((r for r in results if r["outcome"] not in ("ok", "present")),
                               key=lambda r: r["where"])}
    if root == partial:
        if final.exists():
            raise DataError(f"{final} exists next to {partial}; expected one of them (move "
                            f"{final} away to finish the download into it)")
        partial.rename(final)  # every row tried once: the folder is complete as far as it goes
    io_utils.write_json(final / REPORT, report)
    return report
