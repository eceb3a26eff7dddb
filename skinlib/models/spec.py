"""Model specifications: how to rebuild a recorded model from plain JSON, never from pickles.

A run folder keeps ``model.safetensors`` (the weights) and ``model.json`` (a :class:`ModelSpec`: a factory
name registered in :data:`skinlib.models.factories.FACTORIES`, its keyword arguments, and the evaluation
preprocessing). Other model kinds plug in by registering their factory (``@register_model("clip_probe")``).
"""

from __future__ import annotations

import importlib
import inspect
import pkgutil
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable

from torch import nn

# the model modules register their factories when imported (register_model)
from . import backbones, custom_cnn, fusion, image_branch, metadata_mlp, vision_language  # noqa: F401
from .factories import FACTORIES


def factory(name: str) -> Callable[..., nn.Module]:
    """The model factory registered as `name` (ValueError listing the registered ones).

    Args:
        name: e.g. ``backbone``, ``clip``, ``fusion`` (:data:`skinlib.models.factories.FACTORIES`).
    """
    if name not in FACTORIES:                   # a model module added to the package but not imported above
        for module in pkgutil.iter_modules([str(Path(__file__).parent)]):
            importlib.import_module(f"{__package__}.{module.name}")
    if name not in FACTORIES:
        raise ValueError(f"unknown model factory {name!r}; known factories: {', '.join(sorted(FACTORIES))} "
                         "(register a new kind with @skinlib.models.factories.register_model)")
    return FACTORIES[name]


@dataclass
class ModelSpec:
    """What rebuilds a model and its evaluation preprocessing.

    Args:
        factory: a name registered in :data:`skinlib.models.factories.FACTORIES`.
        kwargs: keyword arguments of the factory (JSON values only: numbers, strings, lists, dicts, None).
        mean, std: per-channel normalisation the model was trained with.
        image_size: side of the input images.
        grayscale: the model sees grey-scale images (3 identical channels).
        classes: class codes of the outputs, in order (None: the seven HAM10000 classes).
        resample: the resize filter of its image cache (``bilinear``; ``bicubic`` for CLIP's preprocessing).
        crop: how its image cache fitted images to a square (``squash``; ``center`` for CLIP's preprocessing).
    """

    factory: str
    kwargs: dict[str, Any]
    mean: list[float]
    std: list[float]
    image_size: int
    grayscale: bool = False
    classes: list[str] | None = field(default=None)
    resample: str = "bilinear"
    crop: str = "squash"

    def __post_init__(self):
        self.mean = [float(v) for v in self.mean]
        self.std = [float(v) for v in self.std]
        self.image_size = int(self.image_size)
        if len(self.mean) != 3 or len(self.std) != 3:
            raise ValueError(f"mean and std need 3 values each, got {self.mean} and {self.std}")
        if self.classes is not None:
            self.classes = [str(c) for c in self.classes]

    def to_dict(self) -> dict[str, Any]:
        """The spec as a JSON-able dict."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "ModelSpec":
        """A spec from :meth:`to_dict`'s output (unknown keys -> ValueError naming them)."""
        known = set(cls.__dataclass_fields__)
        unknown = set(data) - known
        missing = {"factory", "kwargs", "mean", "std", "image_size"} - set(data)
        if unknown or missing:
            raise ValueError(f"model spec: unknown keys {sorted(unknown)}, missing keys {sorted(missing)} "
                             f"(expected {sorted(known)})")
        return cls(**data)


def build_model(spec: ModelSpec) -> nn.Module:
    """An untrained model of `spec`'s architecture; ``pretrained=False`` is forced (weights come from the run folder).

    Args:
        spec: the model specification.

    Raises:
        ValueError: for a factory not registered (the message lists those that are).
    """
    build = factory(spec.factory)
    kwargs = dict(spec.kwargs)
    try:
        accepts = inspect.signature(build).parameters
    except (TypeError, ValueError):
        accepts = {}
    if "pretrained" in accepts:
        kwargs["pretrained"] = False
    return build(**kwargs)
