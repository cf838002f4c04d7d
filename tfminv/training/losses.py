"""The custom losses live with the models: `tfminv.models.losses` (re-exported here)."""

from tfminv.models.losses import MaskedMSE, WeightedMSE  # noqa: F401
