"""Models: the custom residual CNN, the timm backbone factory, CLIP / BLIP classifiers, the binary tasks' image
branch, metadata MLP and fusion, and the HOG + random-forest pipeline. Importing the package registers every
factory (:mod:`skinlib.models.factories`)."""

from .backbones import create_backbone, input_size_of, normalization_of
from .custom_cnn import ResidualCNN
from .factories import BACKBONES, FACTORIES, TINY_BLIP, TINY_CLIP, register_model
from .fusion import FusionNet, create_fusion
from .image_branch import ImageClassifier, create_image_model, image_encoder
from .metadata_mlp import MetadataMLP, create_metadata_mlp
from .spec import ModelSpec, build_model
from .vision_language import (BLIP_MODELS, PROMPT_SETS, BLIPClassifier, CLIPClassifier, create_blip, create_clip,
                              zero_shot, zero_shot_many)
from .weights import WeightsError, hub_reachable

__all__ = ["BACKBONES", "BLIP_MODELS", "BLIPClassifier", "CLIPClassifier", "FACTORIES", "FusionNet", "ImageClassifier",
           "MetadataMLP", "ModelSpec", "PROMPT_SETS", "ResidualCNN", "TINY_BLIP", "TINY_CLIP", "WeightsError",
           "build_model", "create_backbone", "create_blip", "create_clip", "create_fusion", "create_image_model",
           "create_metadata_mlp", "hub_reachable", "image_encoder", "input_size_of", "normalization_of",
           "register_model", "zero_shot", "zero_shot_many"]
