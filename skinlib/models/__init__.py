"""Models: the custom residual CNN, the timm backbone factory, and the HOG + random-forest pipeline."""

from .backbones import BACKBONES, WeightsError, create_backbone, normalization_of
from .custom_cnn import ResidualCNN

__all__ = ["BACKBONES", "ResidualCNN", "WeightsError", "create_backbone", "normalization_of"]
