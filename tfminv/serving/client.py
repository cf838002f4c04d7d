"""Clients for exported inverters served by TF Serving: prediction vectors in, images out.

    client = InverterClient("rest:http://HOST:8501/v1/models/inverter")   # or
    client = InverterClient("grpc:HOST:8500/inverter")
    images = client.reconstruct(predictions)        # float32 [n, H, W, C]

CLI (writes one PNG per row):
    python -m tfminv.serving.client --server=rest:http://HOST:8501/v1/models/inverter \
        --predictions=preds.npy --out_dir=recon/
    python -m tfminv.serving.client --server=grpc:HOST:8500/inverter \
        --target=rest:http://HOST:8501/v1/models/classifier --images=victims.npy --out_dir=recon/
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np

from tfminv.errors import ConfigError, DataError, OracleError
from tfminv.export import INVERTER_INPUT, INVERTER_OUTPUT
from tfminv.io_utils import write_bytes
from tfminv.oracles.base import RetryPolicy


class InverterClient:
    """Reconstruct images from prediction vectors through a served inverter (REST or gRPC)."""

    def __init__(self, server: str, *, timeout: float = 30.0, retries: int = 3,
                 backoff: float = 0.5, batch_size: int = 256, input_key: str = INVERTER_INPUT,
                 output_key: str = INVERTER_OUTPUT, signature_name: str = "serving_default"):
        scheme, sep, rest = server.partition(":")
        retry = RetryPolicy(retries=retries, backoff=backoff)
        if scheme == "rest" and sep:
            from tfminv.oracles.rest import RestPredictor

            self._client = RestPredictor(rest, input_key=None, output_key=output_key,
                                         signature_name=signature_name, timeout=timeout,
                                         retry=retry, name=f"inverter {server}")
        elif scheme == "grpc" and sep:
            from tfminv.oracles.grpc import GrpcPredictor, parse_target

            hostport, model, version = parse_target(rest)
            self._client = GrpcPredictor(hostport, model, version, input_key=input_key,
                                         output_key=output_key, signature_name=signature_name,
                                         timeout=timeout, retry=retry,
                                         name=f"inverter {server}")
        else:
            raise ConfigError(f"inverter server {server!r}: expected "
                              "rest:http://HOST:PORT/v1/models/NAME[/versions/N] or "
                              "grpc:HOST:PORT/NAME[/VERSION]")
        self.server = server
        self.batch_size = int(batch_size)

    def reconstruct(self, predictions) -> np.ndarray:
        """Images [n, H, W, C] for prediction vectors [n, m] (raw: truncation is server-side)."""
        p = np.asarray(predictions, dtype=np.float32)
        if p.ndim != 2 or not np.all(np.isfinite(p)):
            raise DataError(f"{self.server}: expected finite prediction vectors [n, m], "
                            f"got shape {p.shape}")
        outs = []
        for s in range(0, len(p), self.batch_size):
            batch = p[s:s + self.batch_size]
            out = np.asarray(self._client.predict(batch), np.float32)
            if out.ndim != 4 or len(out) != len(batch):
                raise OracleError(f"{self.server}: expected {len(batch)} images [n, H, W, C], "
                                  f"got shape {out.shape}")
            if not np.all(np.isfinite(out)):
                raise OracleError(f"{self.server}: reconstruction contains NaN or Inf")
            outs.append(out)
        return np.concatenate(outs) if outs else np.zeros((0, 0, 0, 0), np.float32)

    def close(self):
        if hasattr(self._client, "close"):
            self._client.close()


def write_pngs(images: np.ndarray, out_dir: str | os.PathLike, prefix: str = "recon") -> list[Path]:
    """Write images [n, H, W, C] in [0, 1] as PNGs (clipped, rounded to 8 bits), atomically."""
    import cv2

    out_dir = Path(out_dir)
    paths = []
    for i, img in enumerate(np.asarray(images)):
        u8 = np.clip(np.rint(img * 255.0), 0, 255).astype(np.uint8)
        u8 = u8[..., 0] if u8.shape[-1] == 1 else cv2.cvtColor(u8, cv2.COLOR_RGB2BGR)
        ok, buf = cv2.imencode(".png", u8)
        if not ok:
            raise DataError(f"cannot encode image {i} of shape {img.shape} as PNG")
        p = out_dir / f"{prefix}_{i:05d}.png"
        write_bytes(p, buf.tobytes())
        paths.append(p)
    return paths


def load_array(path: str, flag: str) -> np.ndarray:
    """Read a .npy, .npz (first array) or .json (nested list) file."""
    p = Path(path)
    if not p.is_file():
        raise ConfigError(f"--{flag}={path}: file not found")
    try:
        if p.suffix == ".npy":
            return np.load(p)
        if p.suffix == ".npz":
            with np.load(p) as z:
                return z[z.files[0]]
        if p.suffix == ".json":
            return np.asarray(json.loads(p.read_text()), np.float32)
    except (ValueError, OSError) as e:
        raise DataError(f"--{flag}={path}: cannot read: {e}") from None
    raise ConfigError(f"--{flag}={path}: expected a .npy, .npz or .json file")


def reconstruct_files(server: str, out_dir, *, predictions: str | None = None,
                      images: str | None = None, target: str | None = None,
                      prefix: str = "recon", timeout: float = 30.0,
                      retries: int = 3) -> list[Path]:
    """The client command's body: reconstruct the prediction vectors of the file
    `predictions` (or of the image file `images`, queried through the classifier spec `target`)
    with the inverter served at `server`, and write one PNG per reconstruction into `out_dir`;
    returns the PNGs' paths. ConfigError (naming the flag) unless exactly one of predictions /
    images is given, images without a target."""
    if bool(predictions) == bool(images):
        raise ConfigError("pass exactly one of --predictions or --images (with --target)")
    if images:
        if not target:
            raise ConfigError("--images needs --target (the classifier to query)")
        from tfminv.oracles import from_spec

        oracle = from_spec(target, timeout=timeout, retries=retries)
        preds = oracle(load_array(images, "images"))
    else:
        preds = load_array(predictions, "predictions")
    client = InverterClient(server, timeout=timeout, retries=retries)
    try:
        recon = client.reconstruct(preds)
    finally:
        client.close()
    return write_pngs(recon, out_dir, prefix)


def main(argv):
    from absl import flags

    F = flags.FLAGS
    if len(argv) > 1:
        raise ConfigError(f"unexpected arguments: {argv[1:]}")
    paths = reconstruct_files(F.server, F.out_dir, predictions=F.predictions, images=F.images,
                              target=F.target, prefix=F.prefix, timeout=F.timeout,
                              retries=F.retries)
    print(f"wrote {len(paths)} images to {F.out_dir}")


def run():
    from absl import flags

    flags.DEFINE_string("server", None, "Served inverter: rest:URL or grpc:HOST:PORT/NAME.")
    flags.DEFINE_string("predictions", None, "Prediction vectors [n, m] (.npy/.npz/.json).")
    flags.DEFINE_string("images", None, "Images [n, H, W, C] in [0, 1] to query --target with.")
    flags.DEFINE_string("target", None, "Classifier target spec (see tfminv.oracles.from_spec).")
    flags.DEFINE_string("out_dir", None, "Folder for the PNGs.")
    flags.DEFINE_string("prefix", "recon", "PNG file name prefix.")
    flags.DEFINE_float("timeout", 30.0, "Seconds per request.")
    flags.DEFINE_integer("retries", 3, "Retries of a failed request (with backoff).")
    flags.mark_flags_as_required(["server", "out_dir"])

    from tfminv import cli

    cli.run(main)


if __name__ == "__main__":
    run()
