"""Rekognition DetectFaces adapter on responses in the service's documented format."""

import copy
import json

import numpy as np
import pytest

from tfminv.faceapi import rekognition as rk
from tfminv.errors import ConfigError, OracleError


def _face(left=0.2, top=0.1, width=0.5, height=0.6, smile=True, male=False):
    """A FaceDetails entry shaped like the DetectFaces (Attributes=['ALL']) documentation."""
    landmarks = []
    for i, t in enumerate(rk.ALL_LANDMARKS):
        landmarks.append({"Type": t, "X": left + width * (0.1 + 0.025 * i),
                          "Y": top + height * (0.9 - 0.025 * i)})
    return {
        "BoundingBox": {"Width": width, "Height": height, "Left": left, "Top": top},
        "AgeRange": {"Low": 25, "High": 35},
        "Smile": {"Value": smile, "Confidence": 90.0},
        "Eyeglasses": {"Value": False, "Confidence": 99.0},
        "Sunglasses": {"Value": False, "Confidence": 99.5},
        "Gender": {"Value": "Male" if male else "Female", "Confidence": 80.0},
        "Beard": {"Value": False, "Confidence": 70.0},
        "Mustache": {"Value": False, "Confidence": 60.0},
        "EyesOpen": {"Value": True, "Confidence": 95.0},
        "MouthOpen": {"Value": False, "Confidence": 85.0},
        "Emotions": [{"Type": "HAPPY", "Confidence": 75.0}, {"Type": "CALM", "Confidence": 20.0},
                     {"Type": "SAD", "Confidence": 5.0}],
        "Landmarks": landmarks,
        "Pose": {"Roll": -3.5, "Yaw": 10.0, "Pitch": 2.0},
        "Quality": {"Brightness": 80.0, "Sharpness": 90.0},
        "Confidence": 99.99,
    }


def test_vector_layout_values_and_landmark_ratios():
    schema = rk.FeatureSchema()
    names = schema.names()
    resp = {"FaceDetails": [_face()]}
    v = rk.response_to_vector(json.dumps(resp), schema)
    assert v.shape == (schema.dim,) == (len(names),)
    assert schema.dim == 2 + 8 + 8 + 3 + 2 * 30
    got = dict(zip(names, v))
    assert got["AgeRange.Low"] == 25 and got["AgeRange.High"] == 35
    assert got["Smile.p"] == pytest.approx(0.90)
    assert got["Eyeglasses.p"] == pytest.approx(0.01)
    assert got["Gender.p"] == pytest.approx(0.20)  # Female at 80% -> P(Male) 0.2
    assert got["Emotion.HAPPY"] == pytest.approx(0.75)
    assert got["Emotion.FEAR"] == 0.0  # absent type counts as 0
    assert got["Pose.Yaw"] == 10.0
    # landmark i was placed at box-relative (0.1 + 0.025 i, 0.9 - 0.025 i)
    for i, t in enumerate(rk.ALL_LANDMARKS):
        assert got[f"Landmark.{t}.x"] == pytest.approx(0.1 + 0.025 * i, abs=1e-5)
        assert got[f"Landmark.{t}.y"] == pytest.approx(0.9 - 0.025 * i, abs=1e-5)
    # no bounding box, quality or face confidence in the vector
    assert not any(n.startswith(("BoundingBox", "Quality", "Confidence")) for n in names)


def test_landmarks_are_invariant_to_where_the_face_is():
    a = rk.response_to_vector({"FaceDetails": [_face(left=0.0, top=0.0)]})
    b = rk.response_to_vector({"FaceDetails": [_face(left=0.3, top=0.25)]})
    np.testing.assert_allclose(a, b, atol=1e-5)


def test_without_landmarks_and_largest_face():
    schema = rk.FeatureSchema().without_landmarks()
    assert schema.dim == 21 and not any("Landmark" in n for n in schema.names())
    small, big = _face(width=0.1, height=0.1, male=True), _face(width=0.6, height=0.7)
    v = rk.response_to_vector({"FaceDetails": [small, big]}, schema)
    assert v[schema.names().index("Gender.p")] == pytest.approx(0.2)  # the big (female) face


def test_bad_responses_raise_oracle_errors_naming_the_field():
    schema = rk.FeatureSchema()
    with pytest.raises(OracleError, match="no face"):
        rk.response_to_vector({"FaceDetails": []}, schema)
    zeros = rk.FeatureSchema(on_no_face="zeros")
    assert not rk.response_to_vector({"FaceDetails": []}, zeros).any()
    face = _face()
    del face["Smile"]
    with pytest.raises(OracleError, match="Smile"):
        rk.response_to_vector({"FaceDetails": [face]}, schema)
    face = _face()
    face["Landmarks"] = face["Landmarks"][1:]
    with pytest.raises(OracleError, match="eyeLeft"):
        rk.response_to_vector({"FaceDetails": [face]}, schema)
    with pytest.raises(OracleError, match="not JSON"):
        rk.response_to_vector("{oops", schema)
    face = copy.deepcopy(_face())
    face["Gender"]["Value"] = "Other"
    with pytest.raises(OracleError, match="Gender"):
        rk.response_to_vector({"FaceDetails": [face]}, schema)
    with pytest.raises(ConfigError, match="unknown landmarks"):
        rk.FeatureSchema(landmarks=("thirdEye",))


def test_standardizer_roundtrip_and_constant_features():
    x = np.stack([rk.response_to_vector({"FaceDetails": [_face(smile=s, male=m)]})
                  for s in (True, False) for m in (True, False)])
    std = rk.Standardizer.fit(x)
    z = std(x)
    np.testing.assert_allclose(z.mean(axis=0), 0, atol=1e-5)
    varying = x.std(axis=0) > 0
    np.testing.assert_allclose(z[:, varying].std(axis=0), 1, atol=1e-4)
    assert np.all(z[:, ~varying] == 0)
    again = rk.Standardizer.from_dict(json.loads(json.dumps(std.to_dict())))
    np.testing.assert_allclose(again(x), z)
    with pytest.raises(ConfigError, match="feature vectors"):
        std(x[:, :3])
    schema = rk.FeatureSchema.from_dict(json.loads(json.dumps(rk.FeatureSchema().to_dict())))
    assert schema == rk.FeatureSchema()
