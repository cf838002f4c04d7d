"""Optional client for the real Amazon Rekognition DetectFaces (needs boto3 and AWS credentials).

Never imported by the tests or the other modules. Usage:

    from tfminv.faceapi import aws, rekognition
    oracle = aws.rekognition_oracle(region="us-east-1")     # images -> feature vectors
    feats = oracle(images)                                   # [N, FeatureSchema().dim]

Each image is sent as PNG bytes with Attributes=['ALL']; the response goes through
`rekognition.response_to_vector`. Every image is one billed request: set `budget`.
"""

from __future__ import annotations

import numpy as np

from tfminv.faceapi.rekognition import FeatureSchema, response_to_vector
from tfminv.errors import ConfigError, OracleError


def _client(region: str | None):
    try:
        import boto3
    except ImportError:
        raise ConfigError("the real Rekognition client needs boto3: pip install boto3") from None
    return boto3.client("rekognition", region_name=region)


def _png(image) -> bytes:
    import cv2

    img = np.asarray(image, np.float32)
    img = (np.clip(img.reshape(img.shape[0], img.shape[1], -1), 0, 1) * 255 + 0.5).astype(np.uint8)
    ok, buf = cv2.imencode(".png", img)
    if not ok:
        raise OracleError("could not PNG-encode an image for Rekognition")
    return buf.tobytes()


def detect_faces(images, client=None, region: str | None = None) -> list[dict]:
    """DetectFaces responses (dicts) for images [N, H, W, 1] in [0, 1]."""
    client = client or _client(region)
    out = []
    for img in images:
        try:
            resp = client.detect_faces(Image={"Bytes": _png(img)}, Attributes=["ALL"])
        except Exception as e:  # botocore raises many classes; report the service's message
            raise OracleError(f"Rekognition DetectFaces failed: {e}") from e
        out.append(resp)
    return out


def rekognition_oracle(schema: FeatureSchema | None = None, region: str | None = None,
                       client=None, **kwargs):
    """An Oracle over the real service whose answers are the schema's feature vectors."""
    from tfminv.oracles import CallableOracle

    schema = schema or FeatureSchema(on_no_face="zeros")
    client = client or _client(region)
    kwargs.setdefault("name", "aws-rekognition")
    kwargs.setdefault("batch_size", 16)

    class _AwsOracle(CallableOracle):
        def identity(self):
            return f"aws-rekognition:{region}|{schema.to_dict()}"

    return _AwsOracle(lambda imgs: np.stack([response_to_vector(r, schema)
                                             for r in detect_faces(imgs, client)]),
                      output_dim=schema.dim, **kwargs)
