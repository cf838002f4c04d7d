"""Presentation, in one place: every file a person reads is rendered here from measured data.

- `results`: results.json (rows) -> results.md table, run.json.
- `figures`: PNG image grids (ground truth, then one labelled row per method).
- `plots`: small labelled scatter plots (leakage vs utility) drawn with OpenCV.
- `html_report`: one self-contained HTML page (figures inlined) and its markdown twin.
- `reproduction`: the claim engine (claim, rule, numbers) that renders a folder's claims.py
  (this repository's: experiments/claims.py) to REPRODUCTION.md.

No TensorFlow; OpenCV only where an image is drawn.
"""
