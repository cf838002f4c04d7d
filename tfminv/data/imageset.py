"""In-memory image set: greyscale float images, integer labels and optional attributes."""

from __future__ import annotations

import dataclasses

import numpy as np


@dataclasses.dataclass
class ImageSet:
    """Images float32 [N, H, W, 1] in [0, 1], labels int64 [N], names of the label values.

    `attributes` (int8 [N, A] in {-1, +1}) and `attribute_names` are set only for datasets that
    carry them (CelebA with its attribute file); `metadata` is the records' metadata.json.
    """

    images: np.ndarray
    labels: np.ndarray
    label_names: tuple = ()
    name: str = ""
    attributes: np.ndarray | None = None
    attribute_names: tuple = ()
    metadata: dict = dataclasses.field(default_factory=dict, repr=False, compare=False)

    def __post_init__(self):
        if len(self.images) != len(self.labels):
            raise ValueError(f"ImageSet {self.name!r}: {len(self.images)} images but "
                             f"{len(self.labels)} labels")
        if self.attributes is not None and len(self.attributes) != len(self.labels):
            raise ValueError(f"ImageSet {self.name!r}: {len(self.attributes)} attribute rows but "
                             f"{len(self.labels)} labels")
        self.label_names = tuple(self.label_names)
        self.attribute_names = tuple(self.attribute_names)

    def __len__(self) -> int:
        return len(self.labels)

    @property
    def image_size(self) -> int:
        return int(self.images.shape[1]) if self.images.ndim >= 3 else 0

    def subset(self, indices, name: str | None = None) -> "ImageSet":
        """A new ImageSet with the rows at `indices` (an index array or a boolean mask)."""
        idx = np.asarray(indices)
        return dataclasses.replace(
            self,
            images=self.images[idx],
            labels=self.labels[idx],
            attributes=None if self.attributes is None else self.attributes[idx],
            name=self.name if name is None else name,
        )
