"""Models: the custom residual CNN, the timm backbone factory, CLIP / BLIP classifiers, and the HOG + random-forest
pipeline."""

from .backbones import BACKBONES, create_backbone, input_size_of, normalization_of
from .custom_cnn import ResidualCNN
from .spec import FACTORIES, ModelSpec, build_model
from .vision_language import (BLIP_MODELS, PROMPT_SETS, TINY_BLIP, TINY_CLIP, BLIPClassifier, CLIPClassifier,
                              create_blip, create_clip, zero_shot)
from .weights import WeightsError, hub_reachable

__all__ = ["BACKBONES", "BLIP_MODELS", "BLIPClassifier", "CLIPClassifier", "FACTORIES", "ModelSpec", "PROMPT_SETS",
           "ResidualCNN", "TINY_BLIP", "TINY_CLIP", "WeightsError", "build_model", "create_backbone", "create_blip",
           "create_clip", "hub_reachable", "input_size_of", "normalization_of", "zero_shot"]
