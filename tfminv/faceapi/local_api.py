"""A local face-attribute API trained on CelebA that answers like Rekognition's DetectFaces.

So the API scenario runs end-to-end without credentials: a small CNN predicts CelebA's 40
attributes and 5 landmarks from a 64x64 grey face crop, and `LocalFaceAPI.detect_faces` wraps
the predictions in the documented DetectFaces JSON format. Only fields with a CelebA
counterpart are answered (see `FIELD_MAP`); `LOCAL_SCHEMA` is the matching feature schema.

Landmark targets: CelebA's landmark file is not part of the shared data, so targets are derived
with OpenCV's own cascades on the training crops: eye centres from `haarcascade_eye.xml` (one
detection in each upper quarter), mouth corners from the left/right edges of the
`haarcascade_smile.xml` box (lower half) at its mid-height, and the nose *placed* (not detected)
at 60% of the way from the eye midpoint to the mouth midpoint. Crops where a cascade finds
nothing contribute no landmark loss (masked). The API treats each crop as one face whose
bounding box is the whole image.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import keras
import numpy as np

from tfminv.cascades import load_cascade, to_uint8
from tfminv.errors import ConfigError, DataError
from tfminv.faceapi.rekognition import FIVE_LANDMARKS, FeatureSchema

# Rekognition field -> (CelebA attribute, negate). Fields without a counterpart are not answered.
FIELD_MAP = {
    "Smile": ("Smiling", False),
    "Eyeglasses": ("Eyeglasses", False),
    "Gender": ("Male", False),
    "Beard": ("No_Beard", True),
    "Mustache": ("Mustache", False),
    "MouthOpen": ("Mouth_Slightly_Open", False),
}
LOCAL_SCHEMA = FeatureSchema(age_range=False, boolean_attributes=tuple(FIELD_MAP), emotions=(),
                             pose=False, landmarks=FIVE_LANDMARKS)
NOSE_FRACTION = 0.6


def derive_landmarks(images, upsample: int = 2) -> np.ndarray:
    """Landmark targets [N, 10] (x, y ratios of the crop for FIVE_LANDMARKS), NaN where a
    cascade found nothing. 'eyeLeft' is the eye on the image's left, as Rekognition's is."""
    import cv2

    eye, smile = load_cascade("haarcascade_eye.xml"), load_cascade("haarcascade_smile.xml")
    imgs = to_uint8(images)
    out = np.full((len(imgs), 10), np.nan, np.float32)
    for i, img in enumerate(imgs):
        h, w = img.shape[0] * upsample, img.shape[1] * upsample
        g = cv2.equalizeHist(cv2.resize(img, (w, h), interpolation=cv2.INTER_LINEAR))
        eyes = eye.detectMultiScale(g[: h // 2], scaleFactor=1.1, minNeighbors=3,
                                    minSize=(w // 9, w // 9), maxSize=(w * 3 // 8, w * 3 // 8))
        left = [e for e in eyes if e[0] + e[2] / 2 < w / 2]
        right = [e for e in eyes if e[0] + e[2] / 2 >= w / 2]
        mouths = smile.detectMultiScale(g[h // 2:], scaleFactor=1.1, minNeighbors=5,
                                        minSize=(w // 5, h // 12))
        if not (left and right and len(mouths)):
            continue
        # the largest detection of each kind
        le = max(left, key=lambda e: e[2] * e[3])
        re = max(right, key=lambda e: e[2] * e[3])
        mo = max(mouths, key=lambda e: e[2] * e[3])
        lx, ly = le[0] + le[2] / 2, le[1] + le[3] / 2
        rx, ry = re[0] + re[2] / 2, re[1] + re[3] / 2
        my = h // 2 + mo[1] + mo[3] / 2
        mlx, mrx = mo[0], mo[0] + mo[2]
        ex, ey = (lx + rx) / 2, (ly + ry) / 2
        nx = ex + NOSE_FRACTION * ((mlx + mrx) / 2 - ex)
        ny = ey + NOSE_FRACTION * (my - ey)
        out[i] = np.array([lx / w, ly / h, rx / w, ry / h, nx / w, ny / h,
                           mlx / w, my / h, mrx / w, my / h], np.float32)
    return out


def _losses():
    from tfminv.models.losses import MaskedMSE

    return {"attributes": keras.losses.BinaryCrossentropy(from_logits=True),
            "landmarks": MaskedMSE()}


def build_attribute_model(num_attributes: int, image_size: int = 64, width: float = 0.25,
                          name: str = "face_attributes"):
    """CNN (the face classifier's trunk) with two heads: attribute logits and 10 landmark ratios."""
    from tfminv.models.classifier import FACE_CHANNELS, conv_blocks

    inputs = keras.Input((image_size, image_size, 1), name="image")
    x = conv_blocks(inputs, FACE_CHANNELS, width)
    x = keras.layers.GlobalAveragePooling2D(name="gap")(x)
    x = keras.layers.Dense(128, activation="relu", name="fc")(x)
    attrs = keras.layers.Dense(num_attributes, dtype="float32", name="attributes")(x)
    marks = keras.layers.Dense(10, activation="sigmoid", dtype="float32", name="landmarks")(x)
    return keras.Model(inputs, {"attributes": attrs, "landmarks": marks}, name=name)


@dataclasses.dataclass
class LocalFaceAPI:
    """DetectFaces-format answers from a trained attribute model."""

    model: object
    attribute_names: tuple
    identity_str: str = "local-face-api"

    def __post_init__(self):
        missing = [a for a, _ in FIELD_MAP.values() if a not in self.attribute_names]
        if missing:
            raise DataError(f"local face API: attribute names lack {missing}")

    def predict(self, images):
        """(attribute probabilities [N, A], landmarks [N, 10]) for images [N, 64, 64, 1]."""
        out = self.model.predict(np.asarray(images, np.float32), batch_size=256, verbose=0)
        probs = 1.0 / (1.0 + np.exp(-np.asarray(out["attributes"], np.float64)))
        return probs.astype(np.float32), np.asarray(out["landmarks"], np.float32)

    def detect_faces(self, images) -> list[dict]:
        """One DetectFaces response (dict) per image."""
        probs, marks = self.predict(images)
        index = {a: i for i, a in enumerate(self.attribute_names)}
        responses = []
        for p, lm in zip(probs, marks):
            face = {"BoundingBox": {"Width": 1.0, "Height": 1.0, "Left": 0.0, "Top": 0.0},
                    "Confidence": 100.0}
            for field, (attr, negate) in FIELD_MAP.items():
                q = float(p[index[attr]])
                q = 1.0 - q if negate else q
                present = q >= 0.5
                conf = 100.0 * (q if present else 1.0 - q)
                if field == "Gender":
                    face[field] = {"Value": "Male" if present else "Female", "Confidence": conf}
                else:
                    face[field] = {"Value": bool(present), "Confidence": conf}
            face["Landmarks"] = [{"Type": t, "X": float(lm[2 * j]), "Y": float(lm[2 * j + 1])}
                                 for j, t in enumerate(FIVE_LANDMARKS)]
            responses.append({"FaceDetails": [face]})
        return responses

    def identity(self) -> str:
        return self.identity_str


def train_local_api(train_set, *, config, workdir, width: float = 0.25, val_fraction=0.1,
                    landmarks=None) -> LocalFaceAPI:
    """Train (or reuse, keyed by workdir) the attribute model on a CelebA ImageSet with attributes.

    landmarks: precomputed `derive_landmarks(train_set.images)` (derived here when None).
    """
    from tfminv.data.splits import holdout
    from tfminv.hashing import short_hash
    from tfminv.training import fit_cached

    if train_set.attributes is None or not train_set.attribute_names:
        raise DataError(f"local face API: {train_set.name or 'training set'} has no attributes "
                        "(CelebA with its attribute file is expected)")
    n = len(train_set)
    if n < 10:
        raise ConfigError(f"local face API: need at least 10 training images, got {n}")
    names = tuple(train_set.attribute_names)
    y_attr = ((np.asarray(train_set.attributes) + 1) // 2).astype(np.float32)
    marks = derive_landmarks(train_set.images) if landmarks is None else np.asarray(landmarks,
                                                                                   np.float32)
    tr, va = holdout(n, val_fraction, config.seed)
    x = train_set.images
    losses = _losses()
    meta = {"width": float(width), "data": short_hash(x),
            "landmarks_found": int(np.isfinite(marks[:, 0]).sum())}
    model = fit_cached(lambda: build_attribute_model(len(names), x.shape[1], width), x[tr],
                       {"attributes": y_attr[tr], "landmarks": marks[tr]}, config=config,
                       workdir=workdir, name="local_api", meta=meta, code="local_api",
                       val=(x[va], {"attributes": y_attr[va], "landmarks": marks[va]}),
                       loss=losses)
    run_dir = Path(model.run_dir)
    return LocalFaceAPI(model=model, attribute_names=names,
                        identity_str=f"local-face-api:{run_dir.name}")


def attribute_accuracy(api: LocalFaceAPI, imageset) -> dict:
    """Accuracy of the API's mapped fields on an ImageSet with CelebA attributes."""
    probs, _ = api.predict(imageset.images)
    index = {a: i for i, a in enumerate(imageset.attribute_names)}
    out = {}
    for field, (attr, _) in FIELD_MAP.items():
        truth = np.asarray(imageset.attributes)[:, index[attr]] > 0
        out[field] = float(((probs[:, api.attribute_names.index(attr)] >= 0.5) == truth).mean())
    return out


def majority_rates(api: LocalFaceAPI, imageset) -> dict:
    """Accuracy of always answering the more common value of each mapped field (a reference)."""
    index = {a: i for i, a in enumerate(imageset.attribute_names)}
    out = {}
    for field, (attr, _) in FIELD_MAP.items():
        p = float((np.asarray(imageset.attributes)[:, index[attr]] > 0).mean())
        out[field] = max(p, 1.0 - p)
    return out


def api_oracle(api: LocalFaceAPI, schema: FeatureSchema = LOCAL_SCHEMA, **kwargs):
    """An Oracle whose 'prediction' is the raw (unstandardised) feature vector of the responses."""
    from tfminv.faceapi.rekognition import responses_to_matrix
    from tfminv.oracles import CallableOracle

    kwargs.setdefault("name", "local-face-api")

    class _FeatureOracle(CallableOracle):
        def identity(self):
            return f"{api.identity()}|{schema.to_dict()}"

    return _FeatureOracle(lambda imgs: responses_to_matrix(api.detect_faces(imgs), schema),
                          output_dim=schema.dim, **kwargs)


def train_feature_inverter(features, images, *, config, workdir, val=None, width: float = 1.0,
                           name: str = "features"):
    """Decoder from standardised feature vectors [N, d] to images (no truncation: features are
    not probabilities). Reused when the same run exists in workdir."""
    from tfminv.hashing import short_hash
    from tfminv.models import build_decoder
    from tfminv.training import fit_cached

    features = np.asarray(features, np.float32)
    images = np.asarray(images, np.float32)
    if features.ndim != 2 or len(features) != len(images):
        raise DataError(f"feature inverter: expected features [N, d] and N images, got "
                        f"{features.shape} and {images.shape}")
    meta = {"width": float(width), "data": short_hash(features, images),
            "val": None if val is None else short_hash(val[0])}
    return fit_cached(lambda: build_decoder(features.shape[1], images.shape[1], width,
                                            name=f"{name}_inverter"),
                      features, images, config=config, workdir=workdir, name=name, meta=meta,
                      code="local_api", val=val, loss="mse")
