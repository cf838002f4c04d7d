"""tfminv: measure how much a classifier's predictions leak about its inputs.

Implements training-based model inversion with truncation alignment (Yang et al., CCS 2019).
Importing the package is cheap: TensorFlow is imported only by the modules that need it.
"""

__version__ = "0.1.0"
