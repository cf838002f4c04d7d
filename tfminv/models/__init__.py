"""Target classifiers, inversion models and the truncation layer (Keras 3)."""

from tfminv.models.classifier import build_classifier
from tfminv.models.joint import build_joint_model
from tfminv.models.inverter import build_decoder, build_inverter, with_release, with_truncation
from tfminv.models.truncation import TopK, Truncation, truncate_np

__all__ = ["Truncation", "TopK", "truncate_np", "build_classifier", "build_inverter",
           "build_decoder", "with_truncation", "with_release", "build_joint_model"]
