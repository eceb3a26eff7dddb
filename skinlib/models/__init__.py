"""Models: the custom residual CNN, the timm backbone factory, and the HOG + random-forest pipeline."""

from .backbones import BACKBONES, WeightsError, create_backbone, normalization_of
from .custom_cnn import ResidualCNN
from .spec import FACTORIES, ModelSpec, build_model

__all__ = ["BACKBONES", "FACTORIES", "ModelSpec", "ResidualCNN", "WeightsError", "build_model", "create_backbone", "normalization_of"]
