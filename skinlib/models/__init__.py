"""Models: the custom residual CNN, the timm backbone factory, CLIP / BLIP classifiers, the binary tasks' image
branch, metadata MLP and fusion, and the HOG + random-forest pipeline.

The names below are loaded on first use (PEP 562), so that ``skinlib.models.factories`` (names and rules, read by
``run_all.py``'s parameter check) imports without torch. :mod:`skinlib.models.spec` imports every model module, which
registers its factories (:mod:`skinlib.models.factories`).
"""

from __future__ import annotations

from ..lazy import lazy

#: public name -> the module of this package that defines it
_EXPORTS = {
    "create_backbone": "backbones", "input_size_of": "backbones", "normalization_of": "backbones",
    "ResidualCNN": "custom_cnn",
    "BACKBONES": "factories", "FACTORIES": "factories", "TINY_BLIP": "factories", "TINY_CLIP": "factories",
    "register_model": "factories",
    "FusionNet": "fusion", "create_fusion": "fusion",
    "ImageClassifier": "image_branch", "create_image_model": "image_branch", "image_encoder": "image_branch",
    "MetadataMLP": "metadata_mlp", "create_metadata_mlp": "metadata_mlp",
    "ModelSpec": "spec", "build_model": "spec",
    "BLIP_MODELS": "vision_language", "PROMPT_SETS": "vision_language", "BLIPClassifier": "vision_language",
    "CLIPClassifier": "vision_language", "create_blip": "vision_language", "create_clip": "vision_language",
    "zero_shot": "vision_language", "zero_shot_many": "vision_language", "label_onehot": "vision_language",
    "WeightsError": "weights", "hub_reachable": "weights",
}

__all__ = sorted(_EXPORTS)
__getattr__, __dir__ = lazy(__name__, _EXPORTS)
