"""Model factories by name, the one list of backbone names, and the rules of the model knobs.

Factories register themselves, as timm's models do (``@register_model("backbone")`` above :func:`create_backbone`):
:data:`FACTORIES` maps the names a :class:`~skinlib.models.spec.ModelSpec` stores to them, so a recorded model is
rebuilt from JSON (:func:`skinlib.models.spec.factory` looks one up, after importing every model module). The knobs that name models (``backbone``, ``head``) get their allowed values here
(:func:`rules`), from the same names; :mod:`skinlib.parameters` holds the other knobs and never imports the models,
and ``run_all.py`` asks both. This module imports neither torch nor timm (timm only to check a name that is not
a study's), so the parameter check stays fast.
"""

from __future__ import annotations

from typing import Any, Callable

from ..parameters import KnobError, Rule, one_of, optional, problem

#: Factory name -> callable building the (untrained) model from JSON-able keyword arguments; filled by
#: :func:`register_model` as the model modules are imported (:mod:`skinlib.models.spec` imports them all).
FACTORIES: dict[str, Callable[..., Any]] = {}


def register_model(name: str) -> Callable[[Callable], Callable]:
    """Decorator: file a model factory under `name` in :data:`FACTORIES` (a second factory of one name is an error).

    Args:
        name: the name a model spec stores (``backbone``, ``clip``, ``fusion``, ...).
    """
    def add(factory: Callable) -> Callable:
        known = FACTORIES.get(name, factory)
        same = (known.__module__, known.__qualname__) == (factory.__module__, factory.__qualname__)   # reloaded
        if not same:
            raise ValueError(f"a model factory named {name!r} is registered already ({FACTORIES[name].__module__})")
        FACTORIES[name] = factory
        return factory
    return add


#: Narrow architectures for the quick CPU run, trained from scratch through the same code path as the real
#: models: an open_clip model config (ViT image tower, small text tower) and a ``BlipVisionConfig``.
TINY_CLIP: dict[str, Any] = {
    "embed_dim": 64,
    "vision_cfg": {"image_size": 64, "layers": 2, "width": 64, "head_width": 32, "patch_size": 8},
    "text_cfg": {"context_length": 32, "vocab_size": 49408, "width": 64, "heads": 2, "layers": 1},
}
TINY_BLIP: dict[str, Any] = {"hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 2,
                             "num_attention_heads": 2, "image_size": 64, "patch_size": 8}

#: Names the studies use -> timm model (with the pretrained tag loaded when ``pretrained=True``).
BACKBONES: dict[str, str] = {
    "resnet18": "resnet18.a1_in1k",
    "resnet50": "resnet50.a1_in1k",
    "vgg19": "vgg19.tv_in1k",
    "xception": "legacy_xception.tf_in1k",
    "inception_resnet_v2": "inception_resnet_v2.tf_in1k",
    "mobilenetv2": "mobilenetv2_100.ra_in1k",
    "vit_base_patch32_224": "vit_base_patch32_224.augreg_in21k_ft_in1k",
    "vit_small_patch16_224.dino": "vit_small_patch16_224.dino",
}
ALIASES = {"dino": "vit_small_patch16_224.dino", "dino_vits16": "vit_small_patch16_224.dino",
            "vit_b32": "vit_base_patch32_224", "mobilenet_v2": "mobilenetv2", "inceptionresnetv2": "inception_resnet_v2",
            "legacy_xception": "xception"}


def timm_name(name: str) -> str:
    """The timm model (with tag) for a study name, an alias, or any timm name."""
    key = ALIASES.get(name, name)
    return BACKBONES.get(key, key)


SMALL_CNN = "small_cnn"
#: Image branches named ``clip-<open_clip architecture>[.<pretrained tag>]`` (``clip-ViT-B-32`` is OpenAI's ViT-B/32),
#: ``clip-hf-hub:org/repo``, or ``clip-tiny``: the narrow :data:`TINY_CLIP` tower
#: for a quick CPU run, trained from scratch through the same code path.
CLIP_PREFIX = "clip-"
CLIP_TINY = "clip-tiny"


def is_clip(backbone: str) -> bool:
    """True when `backbone` names CLIP's image tower (``clip-...``)."""
    return isinstance(backbone, str) and backbone.startswith(CLIP_PREFIX)


def clip_arguments(backbone: str) -> dict:
    """The :func:`~skinlib.models.create_clip` arguments (name, tag, config) of a ``clip-...`` image branch.

    Args:
        backbone: ``clip-ViT-B-32`` (OpenAI weights), ``clip-ViT-B-32.laion2b_s34b_b79k`` (another open_clip tag),
            ``clip-hf-hub:org/repo`` or ``clip-tiny``.
    """
    if not is_clip(backbone) or len(backbone) == len(CLIP_PREFIX):
        raise ValueError(f"{backbone!r} is not a CLIP image branch: use clip-<open_clip architecture> (e.g. "
                         "clip-ViT-B-32), clip-<architecture>.<tag>, clip-hf-hub:org/repo or clip-tiny")
    if backbone == CLIP_TINY:
        return {"name": "ViT-B-32", "tag": "openai", "config": TINY_CLIP}
    name = backbone[len(CLIP_PREFIX):]
    if name.startswith("hf-hub:"):
        return {"name": name, "tag": "openai", "config": None}
    name, _, tag = name.partition(".")
    return {"name": name, "tag": tag or "openai", "config": None}




def _timm_model(value: Any) -> bool:
    if value in BACKBONES or value in ALIASES:
        return True
    import timm

    return timm.is_model(timm_name(value).split(".")[0])


def _clip_branch(value: Any) -> bool:
    """07's CLIP image towers: clip-tiny, clip-hf-hub:org/repo, or clip-<open_clip architecture>[.<tag>]."""
    try:
        args = clip_arguments(value)
    except ValueError:
        return False
    if args["config"] is not None or (args["name"].startswith("hf-hub:") and "/" in args["name"]):
        return True
    import open_clip

    return open_clip.get_model_config(args["name"]) is not None


HEADS = ("linear", "study_e")
#: 06's CLIP heads: study A's linear, study B's mlp, the prompt-initialised head, and study C's label-leaking model
#: (``label_prompt``: the image's own diagnosis prompt is an input; an ablation, :func:`skinlib.models.create_clip`)
CLIP_HEADS = ("linear", "mlp", "prompt", "label_prompt")

#: model knob -> rule, for every notebook
RULES: dict[str, Rule] = {
    "backbone": one_of(*BACKBONES, extra=_timm_model, more="or a timm model name"),
    "head": one_of(*HEADS),
}

#: notebook number -> model knobs that mean something else there
NOTEBOOK_RULES: dict[str, dict[str, Rule]] = {
    # 06: CLIP's heads
    "06": {"head": one_of(*CLIP_HEADS)},
    # 07: the image branch may also be the small CNN trained from scratch (study D) or CLIP's image tower (study B)
    "07": {"backbone": one_of(SMALL_CNN, CLIP_TINY, "clip-ViT-B-32", *BACKBONES,
                              extra=lambda v: _clip_branch(v) or _timm_model(v),
                              more="clip-<open_clip architecture>[.<tag>], clip-hf-hub:org/repo, or a timm model name"),
           # the image model's head: linear, or study D's dense ReLU layer on the pooled features (None: the branch's)
           "head": optional(one_of("linear", "mlp"))},
}


def rules(notebook: str | None = None) -> dict[str, Rule]:
    """The model knobs' rules for `notebook` (file name, stem or number; None: every notebook's).

    Args:
        notebook: e.g. ``07_binary_isic.ipynb`` or ``07``.
    """
    from pathlib import Path

    merged = dict(RULES)
    if notebook:
        merged.update(NOTEBOOK_RULES.get(Path(notebook).name[:2], {}))
    return merged


def check(name: str, value: Any, notebook: str | None = None) -> Any:
    """`value` if allowed for knob `name` (a model knob, or a shared one of :mod:`skinlib.parameters`); else
    :class:`~skinlib.parameters.KnobError` saying what is allowed."""
    from ..parameters import rules as shared

    message = problem(name, value, notebook, rules={**shared(notebook), **rules(notebook)})
    if message:
        raise KnobError(message)
    return value
