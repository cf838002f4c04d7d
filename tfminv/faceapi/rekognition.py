"""Amazon Rekognition DetectFaces responses -> fixed-length feature vectors for inversion.

The response format is Rekognition's documented one (`DetectFaces` with `Attributes=['ALL']`):
`{"FaceDetails": [{"BoundingBox": {Width, Height, Left, Top}, "AgeRange": {Low, High},
"Smile": {Value, Confidence}, ..., "Gender": {Value: "Male"|"Female", Confidence},
"Emotions": [{Type, Confidence}], "Landmarks": [{Type, X, Y}], "Pose": {Roll, Yaw, Pitch},
"Quality": {...}, "Confidence": ...}]}`; X, Y, Left, Top, Width, Height are ratios of the image
size, confidences are percentages. As in the paper, bounding box, quality and confidence are
discarded (the box is only used to express landmarks relative to the face), landmark
coordinates become ratios of their distance to the box's upper-left corner over the box's width
and height, and the vector is standardised with statistics of the attacker's auxiliary queries.
"""

from __future__ import annotations

import dataclasses
import json

import numpy as np

from tfminv.errors import ConfigError, OracleError

# Boolean attributes: each becomes P(attribute present) = Confidence/100 if Value else 1 - that.
# Gender becomes P(Male).
BOOLEAN_ATTRIBUTES = ("Smile", "Eyeglasses", "Sunglasses", "Gender", "Beard", "Mustache",
                      "EyesOpen", "MouthOpen")
# Documented emotion types (UNKNOWN carries nothing and is left out); absent types count as 0.
EMOTIONS = ("HAPPY", "SAD", "ANGRY", "CONFUSED", "DISGUSTED", "SURPRISED", "CALM", "FEAR")
# The 30 documented landmark types.
ALL_LANDMARKS = (
    "eyeLeft", "eyeRight", "nose", "mouthLeft", "mouthRight",
    "leftEyeBrowLeft", "leftEyeBrowRight", "leftEyeBrowUp",
    "rightEyeBrowLeft", "rightEyeBrowRight", "rightEyeBrowUp",
    "leftEyeLeft", "leftEyeRight", "leftEyeUp", "leftEyeDown",
    "rightEyeLeft", "rightEyeRight", "rightEyeUp", "rightEyeDown",
    "noseLeft", "noseRight", "mouthUp", "mouthDown", "leftPupil", "rightPupil",
    "upperJawlineLeft", "midJawlineLeft", "chinBottom", "midJawlineRight", "upperJawlineRight")
# The five points every face API returns (and the local API predicts).
FIVE_LANDMARKS = ("eyeLeft", "eyeRight", "nose", "mouthLeft", "mouthRight")
POSE = ("Roll", "Yaw", "Pitch")


@dataclasses.dataclass(frozen=True)
class FeatureSchema:
    """Which response fields make up the vector, in this order: age range, boolean attributes,
    emotions, pose, landmarks. A field the schema names but a face lacks raises OracleError;
    `on_no_face` says what a response without any face gives ('error' or 'zeros')."""

    age_range: bool = True
    boolean_attributes: tuple = BOOLEAN_ATTRIBUTES
    emotions: tuple = EMOTIONS
    pose: bool = True
    landmarks: tuple = ALL_LANDMARKS
    on_no_face: str = "error"

    def __post_init__(self):
        object.__setattr__(self, "boolean_attributes", tuple(self.boolean_attributes))
        object.__setattr__(self, "emotions", tuple(self.emotions))
        object.__setattr__(self, "landmarks", tuple(self.landmarks))
        for name, allowed, given in (("boolean_attributes", BOOLEAN_ATTRIBUTES,
                                      self.boolean_attributes),
                                     ("emotions", EMOTIONS, self.emotions),
                                     ("landmarks", ALL_LANDMARKS, self.landmarks)):
            bad = [g for g in given if g not in allowed]
            if bad:
                raise ConfigError(f"feature schema: unknown {name} {bad}; expected some of "
                                  f"{list(allowed)}")
        if self.on_no_face not in ("error", "zeros"):
            raise ConfigError(f"feature schema: on_no_face must be 'error' or 'zeros', "
                              f"got {self.on_no_face!r}")
        if not self.names():
            raise ConfigError("feature schema selects no features")

    def names(self) -> list[str]:
        """Feature names in vector order."""
        out = ["AgeRange.Low", "AgeRange.High"] if self.age_range else []
        out += [f"{a}.p" for a in self.boolean_attributes]
        out += [f"Emotion.{e}" for e in self.emotions]
        out += [f"Pose.{p}" for p in POSE] if self.pose else []
        for lm in self.landmarks:
            out += [f"Landmark.{lm}.x", f"Landmark.{lm}.y"]
        return out

    @property
    def dim(self) -> int:
        return len(self.names())

    def without_landmarks(self) -> "FeatureSchema":
        """The same schema with the landmark features removed (the paper's ablation)."""
        return dataclasses.replace(self, landmarks=())

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "FeatureSchema":
        fields = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(d) - fields)
        if unknown:
            raise ConfigError(f"feature schema: unknown keys {unknown}; expected {sorted(fields)}")
        return cls(**d)


def _get(d: dict, key: str, where: str):
    if not isinstance(d, dict) or key not in d:
        raise OracleError(f"DetectFaces response: {where} has no '{key}' field")
    return d[key]


def _num(v, where: str) -> float:
    try:
        out = float(v)
    except (TypeError, ValueError):
        raise OracleError(f"DetectFaces response: {where} is not a number: {v!r}") from None
    if not np.isfinite(out):
        raise OracleError(f"DetectFaces response: {where} is not finite: {v!r}")
    return out


def _pick_face(faces: list) -> dict:
    """The largest face by bounding-box area (the subject of a portrait crop)."""
    def area(f):
        box = f.get("BoundingBox") or {}
        return float(box.get("Width", 0) or 0) * float(box.get("Height", 0) or 0)
    return max(faces, key=area)


def face_to_vector(face: dict, schema: FeatureSchema) -> np.ndarray:
    """One FaceDetails entry -> float32 vector [schema.dim]."""
    out: list[float] = []
    if schema.age_range:
        age = _get(face, "AgeRange", "face")
        out += [_num(_get(age, "Low", "AgeRange"), "AgeRange.Low"),
                _num(_get(age, "High", "AgeRange"), "AgeRange.High")]
    for attr in schema.boolean_attributes:
        field = _get(face, attr, "face")
        value = _get(field, "Value", attr)
        conf = _num(_get(field, "Confidence", attr), f"{attr}.Confidence") / 100.0
        if attr == "Gender":
            if value not in ("Male", "Female"):
                raise OracleError(f"DetectFaces response: Gender.Value must be 'Male' or "
                                  f"'Female', got {value!r}")
            present = value == "Male"
        else:
            if not isinstance(value, bool):
                raise OracleError(f"DetectFaces response: {attr}.Value must be true/false, "
                                  f"got {value!r}")
            present = value
        out.append(conf if present else 1.0 - conf)
    if schema.emotions:
        conf = {}
        for e in _get(face, "Emotions", "face"):
            conf[_get(e, "Type", "Emotions entry")] = _num(_get(e, "Confidence", "Emotions entry"),
                                                           "Emotions.Confidence") / 100.0
        out += [conf.get(e, 0.0) for e in schema.emotions]
    if schema.pose:
        pose = _get(face, "Pose", "face")
        out += [_num(_get(pose, p, "Pose"), f"Pose.{p}") for p in POSE]
    if schema.landmarks:
        box = _get(face, "BoundingBox", "face")
        left, top = _num(_get(box, "Left", "BoundingBox"), "Left"), _num(_get(box, "Top",
                                                                              "BoundingBox"), "Top")
        width = _num(_get(box, "Width", "BoundingBox"), "Width")
        height = _num(_get(box, "Height", "BoundingBox"), "Height")
        if width <= 0 or height <= 0:
            raise OracleError(f"DetectFaces response: BoundingBox has non-positive size "
                              f"{width}x{height}")
        points = {}
        for lm in _get(face, "Landmarks", "face"):
            points[_get(lm, "Type", "Landmarks entry")] = lm
        for name in schema.landmarks:
            if name not in points:
                raise OracleError(f"DetectFaces response: landmark '{name}' missing (present: "
                                  f"{sorted(points)})")
            x = _num(_get(points[name], "X", f"landmark {name}"), f"{name}.X")
            y = _num(_get(points[name], "Y", f"landmark {name}"), f"{name}.Y")
            out += [(x - left) / width, (y - top) / height]
    return np.asarray(out, dtype=np.float32)


def response_to_vector(response, schema: FeatureSchema | None = None) -> np.ndarray:
    """A DetectFaces response (dict or JSON text) -> float32 vector [schema.dim].

    With several faces the largest is used; with none, OracleError or zeros per the schema.
    """
    schema = schema or FeatureSchema()
    if isinstance(response, (str, bytes)):
        try:
            response = json.loads(response)
        except json.JSONDecodeError as e:
            raise OracleError(f"DetectFaces response is not JSON: {e}") from None
    faces = _get(response, "FaceDetails", "response")
    if not isinstance(faces, list):
        raise OracleError(f"DetectFaces response: FaceDetails must be a list, got "
                          f"{type(faces).__name__}")
    if not faces:
        if schema.on_no_face == "zeros":
            return np.zeros(schema.dim, np.float32)
        raise OracleError("DetectFaces response: no face detected (FaceDetails is empty); "
                          "use on_no_face='zeros' to keep such images")
    return face_to_vector(_pick_face(faces), schema)


def responses_to_matrix(responses, schema: FeatureSchema | None = None) -> np.ndarray:
    """Many responses -> float32 matrix [n, schema.dim]."""
    schema = schema or FeatureSchema()
    rows = [response_to_vector(r, schema) for r in responses]
    if not rows:
        return np.zeros((0, schema.dim), np.float32)
    return np.stack(rows)


@dataclasses.dataclass
class Standardizer:
    """Per-feature z-scoring fitted on the attacker's auxiliary queries, applied to victims'.
    Constant features (std < eps) are only centred."""

    mean: np.ndarray
    std: np.ndarray

    @classmethod
    def fit(cls, x, eps: float = 1e-6) -> "Standardizer":
        x = np.asarray(x, dtype=np.float64)
        if x.ndim != 2 or len(x) < 2:
            raise ConfigError(f"Standardizer.fit: expected at least two feature vectors [n, d], "
                              f"got shape {x.shape}")
        std = x.std(axis=0)
        std = np.where(std < eps, 1.0, std)
        return cls(mean=x.mean(axis=0).astype(np.float32), std=std.astype(np.float32))

    def __call__(self, x) -> np.ndarray:
        x = np.asarray(x, dtype=np.float32)
        if x.ndim != 2 or x.shape[1] != len(self.mean):
            raise ConfigError(f"Standardizer: expected feature vectors [n, {len(self.mean)}], "
                              f"got shape {x.shape}")
        return ((x - self.mean) / self.std).astype(np.float32)

    def to_dict(self) -> dict:
        return {"mean": self.mean.tolist(), "std": self.std.tolist()}

    @classmethod
    def from_dict(cls, d: dict) -> "Standardizer":
        return cls(mean=np.asarray(d["mean"], np.float32), std=np.asarray(d["std"], np.float32))
