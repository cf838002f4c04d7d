"""`TrainConfig`: the optimiser and run settings of every training (the authors' defaults)."""

from __future__ import annotations

import dataclasses

from tfminv.errors import ConfigError


@dataclasses.dataclass
class TrainConfig:
    """Optimiser and run settings; defaults are the authors' (batch 128, Adam 2e-4, beta1 0.5,
    beta2 0.999, amsgrad, 100 epochs, seed 1)."""

    epochs: int = 100
    batch_size: int = 128
    learning_rate: float = 2e-4
    beta_1: float = 0.5
    beta_2: float = 0.999
    amsgrad: bool = True
    seed: int = 1
    precision: str = "auto"
    strategy: str = "default"
    # 1 = Keras progress bar on a terminal (one line per epoch when stdout is not one), 2 = one
    # line per epoch, 0 = silent; never part of a cache key
    verbose: int = 1

    def __post_init__(self):
        if int(self.epochs) < 1:
            raise ConfigError(f"epochs (--epochs) must be at least 1, got {self.epochs}")
        if int(self.batch_size) < 1:
            raise ConfigError(f"batch_size (--batch_size) must be at least 1, got "
                              f"{self.batch_size}")
        if not float(self.learning_rate) > 0:
            raise ConfigError(f"learning rate must be > 0, got {self.learning_rate}")

    def key(self) -> dict:
        """The settings that change the trained weights (for cache keys)."""
        from tfminv.training.precision import resolve

        d = dataclasses.asdict(self)
        d.pop("verbose")
        d["precision"] = resolve(self.precision)  # 'auto' keys by the policy it stands for
        return d

    def replace(self, **changes) -> "TrainConfig":
        return dataclasses.replace(self, **changes)

    def optimizer(self):
        import keras

        return keras.optimizers.Adam(learning_rate=self.learning_rate, beta_1=self.beta_1,
                                     beta_2=self.beta_2, amsgrad=self.amsgrad)
