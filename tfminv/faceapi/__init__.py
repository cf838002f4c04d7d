"""Prediction APIs that answer with named face features instead of class probabilities.

`rekognition` turns Amazon Rekognition DetectFaces responses into standardised feature vectors;
`local_api` is a face-attribute model trained on CelebA that answers in the same JSON format, so
the API scenario runs without credentials; `aws` (optional, needs boto3) calls the real service.
"""

from tfminv.faceapi.rekognition import (ALL_LANDMARKS, BOOLEAN_ATTRIBUTES, EMOTIONS, FIVE_LANDMARKS,
                                    FeatureSchema, Standardizer, response_to_vector,
                                    responses_to_matrix)

__all__ = ["ALL_LANDMARKS", "BOOLEAN_ATTRIBUTES", "EMOTIONS", "FIVE_LANDMARKS", "FeatureSchema",
           "Standardizer", "response_to_vector", "responses_to_matrix"]
