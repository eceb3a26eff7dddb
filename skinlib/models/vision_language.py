"""Vision-language models: CLIP (open_clip) and BLIP's vision tower (transformers) as image classifiers, and
CLIP zero-shot classification with prompt sets.

Both factories are rebuilt from their keyword arguments alone (strings, numbers, lists, dicts), so a saved run
is restored by calling the factory again with ``pretrained=False`` and loading the state dict. Both return a
module mapping a normalised image batch (B, 3, S, S) to logits (B, num_classes), with ``pretrained_cfg``
(mean, std, input size) read by :func:`skinlib.models.normalization_of` and the image tower at ``.visual``.
"""

from __future__ import annotations

import contextlib
import copy
import logging
import os
import warnings
from pathlib import Path
from typing import Any, Iterator, Mapping, Sequence

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from .. import estimate
from ..data.labels import CLASSES, LONG_NAMES
from .backbones import freeze
from .factories import CLIP_HEADS, register_model
from .heads import make_head
from .weights import WEIGHTS_ENV, WeightsError, brief, hub_mode, offline_hint, weights_folder

#: BLIP's configs initialise weights with a standard deviation of 1e-10 (meant to be overwritten by a checkpoint);
#: a tower trained from scratch starts from ViT's usual 0.02 instead, unless `config` says otherwise.
SCRATCH_INIT_STD = 0.02

#: Prompt sets for zero-shot classification and the prompt head: templates x class names (``codes``: the short
#: class codes; ``names``: the long diagnosis names). Several templates are averaged (template ensembling).
#: ``study_c`` is the context-aware template study C proposes as future work (its own prompt wording is not given).
PROMPT_SETS: dict[str, dict[str, Any]] = {
    "codes": {"templates": ["{label}"], "names": "codes"},
    "names": {"templates": ["{label}"], "names": "names"},
    "study_c": {"templates": ["The lesion shows signs of {label}"], "names": "names"},
    "dermoscopic": {"templates": ["a dermoscopic image of {label}"], "names": "names"},
    "ensemble": {"templates": ["a dermoscopic image of {label}", "The lesion shows signs of {label}",
                               "a close-up photo of a skin lesion: {label}", "a dermatoscopy of {label}",
                               "{label}"], "names": "names"},
}
_NAMES = {**{c: n.lower() for c, n in LONG_NAMES.items()}, "rest": "a benign skin lesion"}

#: BLIP checkpoints of study A (vision tower at 384 px).
BLIP_MODELS = ("Salesforce/blip-image-captioning-base", "Salesforce/blip-itm-base-coco")
_CLIP_MEAN, _CLIP_STD = (0.48145466, 0.4578275, 0.40821073), (0.26862954, 0.26130258, 0.27577711)


def class_names_for(num_classes: int) -> list[str]:
    """The class codes prompts describe: the seven classes, or ``rest`` / ``mel`` for one binary logit."""
    if num_classes == 1:
        return ["rest", "mel"]
    if num_classes == len(CLASSES):
        return list(CLASSES)
    raise ValueError(f"num_classes={num_classes}: give class_names (one per class) for prompts")


def prompts(prompt_set: str | dict, class_names: Sequence[str]) -> list[list[str]]:
    """The texts of a prompt set, one list per class (templates x that class's name).

    Args:
        prompt_set: a name of :data:`PROMPT_SETS`, or a mapping ``{"templates": [...], "names": "codes"|"names"}``.
        class_names: class codes in label order (``akiec`` ...), as in :data:`skinlib.data.labels.CLASSES`.
    """
    spec = PROMPT_SETS.get(prompt_set) if isinstance(prompt_set, str) else prompt_set
    if spec is None:
        raise ValueError(f"unknown prompt set {prompt_set!r}; use one of {', '.join(PROMPT_SETS)} or a mapping")
    words = [c if spec.get("names") == "codes" else _NAMES.get(c, c) for c in class_names]
    return [[t.format(label=w) for t in spec["templates"]] for w in words]


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """Silence the libraries' notices about randomly initialised weights (expected when training from scratch)."""
    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="IProgress not found")
            yield
    finally:
        root.setLevel(level)


class CLIPClassifier(nn.Module):
    """A CLIP model whose projected image embedding feeds a head; the text tower is kept, frozen, for prompts."""

    def __init__(self, clip: nn.Module, head: nn.Module, tokenizer, normalize: bool, class_names: list[str],
                 pretrained_cfg: dict):
        super().__init__()
        self.clip, self.head = clip, head
        self.tokenizer, self.normalize, self.class_names = tokenizer, normalize, class_names
        self.pretrained_cfg = pretrained_cfg
        #: the ``label_prompt`` head's input: each class's prompt embedding (classes, dim), from the frozen text tower
        self.label_prompts: torch.Tensor | None
        self.register_buffer("label_prompts", None)

    @property
    def visual(self) -> nn.Module:
        """The image tower (for Grad-CAM and freezing)."""
        return self.clip.visual

    def image_features(self, images: torch.Tensor) -> torch.Tensor:
        """Projected image embeddings (not normalised)."""
        return self.clip.encode_image(images)

    @property
    def takes_label(self) -> bool:
        """Whether the model reads each image's label as an input (the ``label_prompt`` head: study C's model)."""
        return self.label_prompts is not None

    def forward(self, images: torch.Tensor | tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
        if self.takes_label:
            if not isinstance(images, (tuple, list)) or len(images) != 2:
                raise TypeError("the label_prompt head takes the pair (images, one-hot labels): build the batches "
                                "with features=label_onehot (skinlib.models.vision_language)")
            images, onehot = images
            text = onehot.float() @ self.label_prompts.float()          # each image's own diagnosis, as a prompt
            features = F.normalize(self.image_features(images).float(), dim=-1)
            return self.head(torch.cat([features, text], 1))
        features = self.image_features(images)
        return self.head(F.normalize(features, dim=-1) if self.normalize else features)

    @torch.no_grad()
    def text_features(self, prompt_set: str | dict = "ensemble", class_names: Sequence[str] | None = None) -> torch.Tensor:
        """L2-normalised text embeddings per class, averaged over the prompt set's templates: (classes, dim).

        Args:
            prompt_set: a name of :data:`PROMPT_SETS` or a mapping of templates and names.
            class_names: class codes; default: those of the model (the seven classes, or rest / mel).
        """
        device = next(self.clip.parameters()).device
        rows = []
        for texts in prompts(prompt_set, class_names or self.class_names):
            emb = F.normalize(self.clip.encode_text(self.tokenizer(texts).to(device)).float(), dim=-1)
            rows.append(F.normalize(emb.mean(0), dim=-1))
        return torch.stack(rows)


def _clip_checkpoint(name: str, tag: str | None, folder: Path) -> Path | None:
    stems = [f"{name}.{tag}", name] if tag else [name]
    for stem in stems:
        for candidate in (folder / f"{stem}.safetensors", folder / f"{stem}.pt", folder / f"{stem}.bin",
                          folder / stem / "open_clip_model.safetensors", folder / stem / "open_clip_pytorch_model.bin"):
            if candidate.is_file():
                return candidate
    return None


def _clip_source(name: str, tag: str | None) -> str:
    import open_clip

    if name.startswith("hf-hub:"):
        return f"the Hugging Face hub repository {name[7:]!r}"
    cfg = open_clip.get_pretrained_cfg(name, tag or "") or {}
    if cfg.get("hf_hub"):
        return f"open_clip_model.safetensors (or open_clip_pytorch_model.bin) of the Hugging Face hub repository {cfg['hf_hub'].strip('/')!r}"
    if cfg.get("url"):
        return cfg["url"]
    return f"the checkpoint of open_clip's {name} / {tag} (open_clip.list_pretrained() lists them)"


@register_model("clip")
def create_clip(
    name: str = "ViT-B-32",
    num_classes: int = 7,
    *,
    pretrained: bool = False,
    tag: str = "openai",
    weights_dir: str | os.PathLike | None = None,
    head: str = "linear",
    freeze_fraction: float = 0.0,
    prompt_set: str | dict = "ensemble",
    class_names: list[str] | None = None,
    config: dict | None = None,
    image_size: int | None = None,
    hidden: int = 256,
    dropout: float = 0.0,
) -> CLIPClassifier:
    """A CLIP image classifier: image tower (fine-tuned or partly frozen), frozen text tower, and a head.

    Args:
        name: an open_clip architecture (``ViT-B-32``; ``open_clip.list_models()``) or ``hf-hub:org/repo`` (e.g.
            ``hf-hub:microsoft/BiomedCLIP-PubMedBERT_256-vit_base_patch16_224``).
        num_classes: outputs (1 for a binary task with one logit).
        pretrained: load the CLIP weights: from `weights_dir` if given (or ``$SKINLIB_WEIGHTS``), else the hub.
        tag: open_clip's pretrained tag for built-in names (``openai``, ``laion2b_s34b_b79k``, ...).
        weights_dir: folder with ``<name>.<tag>.safetensors`` (or ``.pt``, ``.bin``), or for ``hf-hub:org/repo``
            a folder ``<repo>/`` holding the repository's files (``open_clip_config.json`` and the weights).
        head: ``linear`` (embedding -> classes, study A), ``mlp`` (embedding -> hidden -> classes, study B),
            ``prompt`` (on the normalised embedding, initialised from the class prompts' text embeddings times
            CLIP's logit scale, then trained) or ``label_prompt``: study C's model, an ``mlp`` on the normalised
            image embedding beside the text embedding of the image's *own* diagnosis prompt (from `prompt_set`).
            That model reads the label it is asked for (an ablation that measures the leak): it takes the pair
            ``(images, one-hot labels)``, batches built with ``features=``:func:`label_onehot`.
        freeze_fraction: share of the image tower's parameter tensors, from the input side, kept frozen: 0
            fine-tunes it all, 1 trains the head only (a linear probe).
        prompt_set: the prompts of the ``prompt`` and ``label_prompt`` heads (:data:`PROMPT_SETS` name or mapping).
        class_names: class codes in label order for prompts; default: the seven classes, or rest / mel for 1.
        config: an open_clip model config (``embed_dim``, ``vision_cfg``, ``text_cfg``) overriding the named
            architecture's, e.g. :data:`TINY_CLIP`.
        image_size: input size; default: the architecture's own.
        hidden: width of the ``mlp`` and ``label_prompt`` heads.
        dropout: dropout of the ``mlp`` and ``label_prompt`` heads.

    Raises:
        WeightsError: when pretrained weights are asked for and cannot be loaded, naming the file expected.
    """
    with _quiet():
        import open_clip

    if not 0.0 <= freeze_fraction <= 1.0:
        raise ValueError(f"freeze_fraction must be within [0, 1], got {freeze_fraction}")
    hf_hub = name.startswith("hf-hub:")
    if not hf_hub and open_clip.get_model_config(name) is None:
        raise ValueError(f"unknown CLIP architecture {name!r}; use an open_clip name (open_clip.list_models(), e.g. "
                         "ViT-B-32) or 'hf-hub:org/repo'")
    names = list(class_names) if class_names else class_names_for(num_classes)
    if head not in CLIP_HEADS:
        raise ValueError(f"unknown head {head!r} for CLIP: use one of {', '.join(CLIP_HEADS)}")
    if head in ("prompt", "label_prompt") and len(names) != max(2, num_classes):
        raise ValueError(f"{len(names)} class_names for {num_classes} outputs")
    kwargs: dict[str, Any] = copy.deepcopy(config or {})
    if image_size is not None:
        kwargs["force_image_size"] = image_size
        if "vision_cfg" in kwargs:                            # a given config replaces the one open_clip resizes
            kwargs["vision_cfg"]["image_size"] = image_size
    folder = weights_folder(weights_dir)
    source, pretrained_arg, online = name, None, True
    if pretrained and folder is not None:
        if hf_hub:
            local = folder / name.split("/")[-1]
            if not (local / "open_clip_config.json").is_file():
                raise WeightsError(f"no weights for {name} in {folder}: expected the folder {local} with "
                                   f"open_clip_config.json and the weights. Download {_clip_source(name, None)} on a machine "
                                   "with internet access and copy its files there, or set pretrained=False.")
            source = f"local-dir:{local}"
        else:
            path = _clip_checkpoint(name, tag, folder)
            if path is None:
                raise WeightsError(
                    f"no weights for {name} ({tag}) in {folder}: expected {name}.{tag}.safetensors (or .pt, .bin, or "
                    f"{name}/open_clip_model.safetensors). Download {_clip_source(name, tag)} on a machine with internet "
                    f"access and save it under that name, or set pretrained=False.")
            pretrained_arg = str(path)
    elif pretrained and not hf_hub:
        pretrained_arg = tag
    hub = hub_mode() if pretrained or hf_hub else contextlib.nullcontext(True)   # from scratch: no hub, no probe
    try:
        with _quiet(), hub as online:
            clip = open_clip.create_model(source, pretrained=pretrained_arg, load_weights=pretrained, **kwargs)
            tokenizer = open_clip.get_tokenizer(source, context_length=clip.context_length)
    except Exception as exc:
        if not pretrained and not hf_hub:
            raise
        raise WeightsError(
            f"could not load {name} ({tag if not hf_hub else 'hub'}) ({offline_hint(online)}{brief(exc)}). Offline? Put {_clip_source(name, tag)} in a folder as "
            f"{name.split('/')[-1] + '/' if hf_hub else f'{name}.{tag}.safetensors'} and pass weights_dir= (or set "
            f"{WEIGHTS_ENV}); or set pretrained=False.") from exc
    for n, p in clip.named_parameters():                      # the text tower (and logit scale) never trains
        p.requires_grad_(n.startswith("visual."))
    freeze(clip.visual, freeze_fraction)
    cfg = dict(getattr(clip.visual, "preprocess_cfg", {}) or {})
    size = cfg.get("size", getattr(clip.visual, "image_size", 224))
    size = size[0] if isinstance(size, (tuple, list)) else size
    dim = getattr(clip.visual, "output_dim", None)
    if dim is None:                                           # towers without the attribute (timm-based ones)
        with torch.no_grad():
            dim = clip.eval().encode_image(torch.zeros(1, 3, int(size), int(size))).shape[-1]
    pretrained_cfg = {"mean": tuple(cfg.get("mean", _CLIP_MEAN)), "std": tuple(cfg.get("std", _CLIP_STD)),
                      "input_size": (3, int(size), int(size))}
    if head == "label_prompt":                # study C: image embedding + the text embedding of the given label
        top = make_head("mlp", 2 * dim, num_classes, hidden=hidden, dropout=dropout)
    else:
        top = make_head(head, dim, num_classes, hidden=hidden, dropout=dropout)
    model = CLIPClassifier(clip, top, tokenizer, normalize=head == "prompt", class_names=names,
                           pretrained_cfg=pretrained_cfg)
    if head == "prompt":
        init_prompt_head(model, prompt_set)
    elif head == "label_prompt":              # one row per class name (rest / mel for one logit)
        model.label_prompts = model.text_features(prompt_set)
    return model


def label_onehot(part, num_classes: int = len(CLASSES), target: str = "label") -> np.ndarray:
    """The one-hot labels of a split's rows (n, num_classes): the second input of a ``label_prompt`` CLIP, i.e. the
    label it is asked to predict (``inputs.split_batches(..., features=label_onehot)``)."""
    labels = np.asarray(part[target], dtype=int)
    if len(labels) and (labels.min() < 0 or labels.max() >= num_classes):
        raise ValueError(f"labels outside 0..{num_classes - 1} in column {target!r}")
    return np.eye(num_classes, dtype=np.float32)[labels]


@torch.no_grad()
def init_prompt_head(model: CLIPClassifier, prompt_set: str | dict = "ensemble") -> None:
    """Set the prompt head to the class prompts' normalised text embeddings times CLIP's logit scale (bias 0); for
    one logit, the difference of the positive and negative class rows (the two-class softmax's log-odds)."""
    text = model.text_features(prompt_set) * model.clip.logit_scale.exp().float()
    weight = text[1:] - text[:1] if model.head.out_features == 1 else text
    model.head.weight.copy_(weight)
    model.head.bias.zero_()


@torch.no_grad()
def zero_shot(model: CLIPClassifier, batches, preprocess: nn.Module, prompt_set: str | dict = "ensemble",
              class_names: Sequence[str] | None = None) -> np.ndarray:
    """Zero-shot class probabilities for every image of `batches`: softmax over classes of CLIP's scaled cosine
    similarity between the image and each class's prompt embedding; (n, classes), or (n,) for rest / mel.

    Args:
        model: a :class:`CLIPClassifier` (its head is not used).
        batches: a :class:`skinlib.data.batches.Batches` (uint8 images).
        preprocess: the evaluation preprocessing (normalisation with the model's own mean and std).
        prompt_set: a name of :data:`PROMPT_SETS` or a mapping of templates and names.
        class_names: class codes in label order; default: the model's.
    """
    images = _image_embeddings(model, batches, preprocess)
    return _zero_shot_proba(model, images, model.text_features(prompt_set, class_names), class_names)


@torch.no_grad()
def zero_shot_many(model: CLIPClassifier, batches: Mapping[str, Any], preprocess: nn.Module,
                   prompt_sets: Sequence[str] | Mapping[str, dict],
                   class_names: Sequence[str] | None = None) -> dict[tuple[str, str], np.ndarray]:
    """:func:`zero_shot` for several prompt sets on several splits, encoding each image and each prompt once (not
    once per set and split): ``{(prompt set, split): probabilities}``, each as :func:`zero_shot` gives it.

    Args:
        model: a :class:`CLIPClassifier` (its head is not used).
        batches: batches per split, e.g. ``{"val": ..., "test": ...}``.
        preprocess: the evaluation preprocessing.
        prompt_sets: names of :data:`PROMPT_SETS`, or a mapping of names to prompt sets (templates and names).
        class_names: class codes in label order; default: the model's.
    """
    specs = dict(prompt_sets) if isinstance(prompt_sets, Mapping) else {name: name for name in prompt_sets}
    texts = {name: model.text_features(spec, class_names) for name, spec in specs.items()}
    out = {}
    for split, split_batches in batches.items():
        images = _image_embeddings(model, split_batches, preprocess)
        for name, text in texts.items():
            out[name, split] = _zero_shot_proba(model, images, text, class_names)
    return out


def _image_embeddings(model: CLIPClassifier, batches, preprocess: nn.Module) -> torch.Tensor:
    """L2-normalised projected image embeddings of every image of `batches`, in order: (n, dim)."""
    device = next(model.parameters()).device
    model.eval()
    preprocess.eval().to(device)
    def images_of(inputs):                     # batches with features (a label_prompt run) give pairs
        return inputs[0] if isinstance(inputs, (tuple, list)) else inputs

    images = torch.cat([F.normalize(model.image_features(preprocess(images_of(x).to(device))).float(), dim=-1)
                        for x, _ in estimate.sampled(batches, len(batches), "embeddings")])   # --estimate: a few
    if estimate.steps() is None:
        return images
    return torch.from_numpy(estimate.padded(images.cpu().numpy(), len(batches.positions()))).to(images.device)


def _zero_shot_proba(model: CLIPClassifier, images: torch.Tensor, text: torch.Tensor,
                     class_names: Sequence[str] | None) -> np.ndarray:
    proba = torch.softmax(model.clip.logit_scale.exp().float() * images @ text.T, dim=1).cpu().numpy()
    return proba[:, 1] if proba.shape[1] == 2 and list(class_names or model.class_names) == ["rest", "mel"] else proba


class BLIPClassifier(nn.Module):
    """BLIP's vision tower; its visual tokens are mean-pooled and fed to a head."""

    def __init__(self, visual: nn.Module, head: nn.Module, pretrained_cfg: dict, interpolate: bool = False):
        super().__init__()
        self.visual, self.head = visual, head
        self.pretrained_cfg, self.interpolate = pretrained_cfg, interpolate

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        kwargs = {"interpolate_pos_encoding": True} if self.interpolate else {}
        tokens = self.visual(pixel_values=images, **kwargs).last_hidden_state
        return self.head(tokens.mean(1))


def _blip_folder(name: str, folder: Path) -> Path | None:
    for candidate in (folder / name.split("/")[-1], folder / name, folder / name.replace("/", "--")):
        if (candidate / "config.json").is_file():
            return candidate
    return None


def _load_blip_vision(source: str) -> tuple[nn.Module, tuple, tuple, int]:
    """The vision tower, mean, std and input size of a BLIP checkpoint (hub id or save_pretrained folder)."""
    import transformers
    from transformers import AutoConfig

    config = AutoConfig.from_pretrained(source)
    arch = (getattr(config, "architectures", None) or ["BlipModel"])[0]
    full = getattr(transformers, arch, transformers.BlipModel).from_pretrained(source)
    mean, std = _CLIP_MEAN, _CLIP_STD
    try:
        processor = transformers.BlipImageProcessor.from_pretrained(source)
        mean, std = tuple(processor.image_mean), tuple(processor.image_std)
    except OSError:
        pass                                               # a folder without preprocessor_config.json: BLIP's defaults
    return full.vision_model, mean, std, full.vision_model.config.image_size


@register_model("blip")
def create_blip(
    name: str = "Salesforce/blip-image-captioning-base",
    num_classes: int = 7,
    *,
    pretrained: bool = False,
    weights_dir: str | os.PathLike | None = None,
    trainable_layers: int = 1,
    head: str = "linear",
    config: dict | None = None,
    image_size: int | None = None,
    hidden: int = 256,
    dropout: float = 0.0,
) -> BLIPClassifier:
    """BLIP's vision tower (transformers) with mean-pooled visual tokens -> a head; the last layers trained.

    Args:
        name: a BLIP checkpoint on the hub (``Salesforce/blip-image-captioning-base``, ``Salesforce/blip-itm-base-coco``).
        num_classes: outputs (1 for a binary task with one logit).
        pretrained: load the checkpoint's weights: from `weights_dir` if given (or ``$SKINLIB_WEIGHTS``), else the hub.
        weights_dir: folder holding ``<repo>/`` (e.g. ``blip-image-captioning-base/``) as written by
            ``save_pretrained`` or downloaded from the hub (``config.json`` and the weights).
        trainable_layers: the last N encoder layers (and the final layer norm) trained, the rest frozen; study A
            trains 1; 0 trains the head only; -1 trains the whole tower.
        head: ``linear`` (study A) or ``mlp``.
        config: ``BlipVisionConfig`` arguments for a tower built from scratch (e.g. :data:`TINY_BLIP`); default:
            the base checkpoints' architecture (768 wide, 12 layers, 384 px).
        image_size: input size; default: the checkpoint's own (384); another size interpolates the position
            embeddings.
        hidden: width of the ``mlp`` head.
        dropout: dropout of the ``mlp`` head.

    Raises:
        WeightsError: when pretrained weights are asked for and cannot be loaded, naming the folder expected.
    """
    with _quiet():
        from transformers import BlipVisionConfig, BlipVisionModel

    folder = weights_folder(weights_dir)
    if pretrained:
        source, online = name, True
        if folder is not None:
            local = _blip_folder(name, folder)
            if local is None:
                raise WeightsError(
                    f"no weights for {name} in {folder}: expected the folder {folder / name.split('/')[-1]} with "
                    f"config.json and model.safetensors (save_pretrained of the model). Download the hub repository "
                    f"{name!r} on a machine with internet access and copy it there, or set pretrained=False.")
            source = str(local)
        try:
            with _quiet(), hub_mode() as online:
                visual, mean, std, native = _load_blip_vision(source)
        except Exception as exc:
            raise WeightsError(
                f"could not load {name} ({offline_hint(online)}{brief(exc)}). Offline? Put "
                f"the hub repository {name!r} (config.json, model.safetensors, preprocessor_config.json) in a folder "
                f"{name.split('/')[-1]}/ inside weights_dir (or {WEIGHTS_ENV}); or set pretrained=False.") from exc
    else:
        settings = {"initializer_range": SCRATCH_INIT_STD, **(config or {})}
        if image_size is not None:
            settings["image_size"] = image_size
        with _quiet():
            visual = BlipVisionModel(BlipVisionConfig(**settings))
        mean, std, native = _CLIP_MEAN, _CLIP_STD, visual.config.image_size
    size = image_size or native
    layers = visual.encoder.layers
    for p in visual.parameters():
        p.requires_grad_(False)
    if trainable_layers < 0 or trainable_layers >= len(layers):
        trained: list[nn.Module] = [visual]
    else:
        trained = list(layers[len(layers) - trainable_layers:]) + ([visual.post_layernorm] if trainable_layers else [])
    for module in trained:
        for p in module.parameters():
            p.requires_grad_(True)
    top = make_head(head if head != "prompt" else "?", visual.config.hidden_size, num_classes, hidden=hidden,
                    dropout=dropout)
    return BLIPClassifier(visual, top, {"mean": tuple(mean), "std": tuple(std), "input_size": (3, size, size)},
                          interpolate=size != native)
