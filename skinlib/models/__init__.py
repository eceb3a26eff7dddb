"""Models: the custom residual CNN, the timm backbone factory, binary image / metadata / fusion models, and the
HOG + random-forest pipeline."""

from .backbones import BACKBONES, WeightsError, create_backbone, normalization_of
from .custom_cnn import ResidualCNN
from .fusion import (FusionNet, ImageClassifier, MetadataMLP, create_fusion, create_image_model, create_metadata_mlp,
                     image_encoder)

__all__ = ["BACKBONES", "FusionNet", "ImageClassifier", "MetadataMLP", "ResidualCNN", "WeightsError", "create_backbone",
           "create_fusion", "create_image_model", "create_metadata_mlp", "image_encoder", "normalization_of"]
