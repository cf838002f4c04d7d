"""Open an HTML report in headless Chromium, save a screenshot, and check it rendered.

    python bench/screenshot_report.py experiments/audit_facescrub/report.html \
        --out=/tmp/report.png [--width=1200 --height=2000]

Needs the Debian `chromium` package (`apt-get install -y chromium`). The browser runs with a
throw-away profile, no network access beyond file://, and no sandbox (for containers). The
script fails if Chromium is missing, exits non-zero or writes no image, if the report refers
to anything outside itself, or if the screenshot is blank (a single colour): the report must
be readable from the one file alone.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

CANDIDATES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")


def find_browser() -> str | None:
    for name in CANDIDATES:
        path = shutil.which(name)
        if path:
            return path
    return None


def screenshot(html: Path, out: Path, width: int = 1200, height: int = 2000,
               timeout: float = 120.0) -> np.ndarray:
    """Render `html` to `out` (PNG) with headless Chromium; return the image (BGR uint8)."""
    import cv2

    browser = find_browser()
    if browser is None:
        raise SystemExit("no Chromium found: install the Debian package (apt-get install -y chromium)")
    html = html.resolve()
    if not html.is_file():
        raise SystemExit(f"{html}: no such report")
    out = out.resolve()
    out.parent.mkdir(parents=True, exist_ok=True)
    if out.exists():
        out.unlink()
    with tempfile.TemporaryDirectory(prefix="chromium-profile-") as profile:
        cmd = [browser, "--headless", "--no-sandbox", "--disable-gpu",
               "--disable-background-networking", "--disable-component-update", "--disable-sync",
               "--no-first-run", "--hide-scrollbars", f"--user-data-dir={profile}",
               f"--screenshot={out}", f"--window-size={width},{height}", html.as_uri()]
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    if proc.returncode != 0 or not out.exists():
        raise SystemExit(f"chromium failed (exit {proc.returncode}):\n{proc.stderr[-2000:]}")
    img = cv2.imread(str(out))
    if img is None or img.shape[:2] != (height, width):
        raise SystemExit(f"{out}: expected a {width}x{height} screenshot, got "
                         f"{None if img is None else img.shape}")
    return img


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("html", type=Path)
    ap.add_argument("--out", type=Path, default=None, help="PNG path (default: beside the html)")
    ap.add_argument("--width", type=int, default=1200)
    ap.add_argument("--height", type=int, default=2000)
    args = ap.parse_args(argv)

    from tfminv.reporting.html_report import external_references

    refs = external_references(args.html.read_text(encoding="utf-8"))
    if refs:
        raise SystemExit(f"{args.html} is not self-contained: it refers to {refs[:5]}")
    out = args.out or args.html.with_name(args.html.stem + "_screenshot.png")
    img = screenshot(args.html, out, args.width, args.height)
    grey = img.mean(axis=2)
    if grey.std() < 1.0:
        raise SystemExit(f"{out}: the screenshot is blank (one colour)")
    non_white = float((grey < 250).mean())
    print(f"wrote {out} ({args.width}x{args.height}); {non_white:.1%} of pixels not white")
    return 0


if __name__ == "__main__":
    sys.exit(main())
