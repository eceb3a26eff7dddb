"""Models: the custom residual CNN, the timm backbone factory, CLIP / BLIP classifiers, binary image / metadata /
fusion models, and the HOG + random-forest pipeline."""

from .backbones import BACKBONES, create_backbone, input_size_of, normalization_of
from .custom_cnn import ResidualCNN
from .fusion import (FusionNet, ImageClassifier, MetadataMLP, create_fusion, create_image_model, create_metadata_mlp,
                     image_encoder)
from .spec import FACTORIES, ModelSpec, build_model
from .vision_language import (BLIP_MODELS, PROMPT_SETS, TINY_BLIP, TINY_CLIP, BLIPClassifier, CLIPClassifier,
                              create_blip, create_clip, zero_shot, zero_shot_many)
from .weights import WeightsError, hub_reachable

__all__ = ["BACKBONES", "BLIP_MODELS", "BLIPClassifier", "CLIPClassifier", "FACTORIES", "FusionNet", "ImageClassifier",
           "MetadataMLP", "ModelSpec", "PROMPT_SETS", "ResidualCNN", "TINY_BLIP", "TINY_CLIP", "WeightsError",
           "build_model", "create_backbone", "create_blip", "create_clip", "create_fusion", "create_image_model",
           "create_metadata_mlp", "hub_reachable", "image_encoder", "input_size_of", "normalization_of", "zero_shot",
           "zero_shot_many"]
