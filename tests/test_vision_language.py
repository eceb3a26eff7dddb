"""CLIP and BLIP classifiers: shapes, the frozen text tower, the prompt head, zero-shot, offline weights."""

from __future__ import annotations

import io
import time

import numpy as np
import pytest
import torch
from torch import nn

from skinlib.data import load_catalog
from skinlib.data.batches import Batches
from skinlib.data.cache import build_cache
from skinlib.data.splits import make_split
from skinlib.data.transforms import Preprocess
from skinlib.models import (TINY_BLIP, TINY_CLIP, WeightsError, create_backbone, create_blip, create_clip,
                            input_size_of, label_onehot, normalization_of, zero_shot, zero_shot_many)
from skinlib.models import weights as weights_module
from skinlib.models.vision_language import prompts
from skinlib.train import FitConfig, fit


def tiny_clip(num_classes=7, **kwargs):
    torch.manual_seed(0)
    return create_clip("ViT-B-32", num_classes, config=TINY_CLIP, **kwargs)


def tiny_blip(num_classes=7, **kwargs):
    torch.manual_seed(0)
    return create_blip(num_classes=num_classes, config=TINY_BLIP, **kwargs)


@pytest.mark.parametrize("num_classes", [7, 1])
@pytest.mark.parametrize("family, head", [("clip", "linear"), ("clip", "mlp"), ("clip", "prompt"),
                                          ("blip", "linear"), ("blip", "mlp")])
def test_every_model_maps_images_to_logits(family, head, num_classes):
    model = (tiny_clip if family == "clip" else tiny_blip)(num_classes, head=head).eval()
    with torch.no_grad():
        assert model(torch.randn(3, 3, 64, 64)).shape == (3, num_classes)
    mean, std = normalization_of(model)
    assert len(mean) == len(std) == 3 and model.pretrained_cfg["input_size"] == (3, 64, 64)
    assert isinstance(model.visual, nn.Module)


def test_text_tower_is_frozen_and_freezing_is_partial():
    model = tiny_clip(freeze_fraction=0.5)
    trained = {n for n, p in model.named_parameters() if p.requires_grad}
    assert trained and all(n.startswith(("clip.visual.", "head.")) for n in trained)
    visual = [p.requires_grad for p in model.visual.parameters()]
    assert not visual[0] and visual[-1] and 0.4 < 1 - np.mean(visual) < 0.6
    probe = tiny_clip(freeze_fraction=1.0)
    assert {n.split(".")[0] for n, p in probe.named_parameters() if p.requires_grad} == {"head"}
    blip = tiny_blip(trainable_layers=1)
    trained = {n for n, p in blip.named_parameters() if p.requires_grad}
    assert any(".layers.1." in n for n in trained) and not any(".layers.0." in n or "embeddings" in n for n in trained)
    assert all(p.requires_grad for p in tiny_blip(trainable_layers=-1).visual.parameters())
    with pytest.raises(ValueError, match=r"within \[0, 1\]"):
        tiny_clip(freeze_fraction=1.5)
    with pytest.raises(ValueError, match="unknown CLIP architecture 'ViT-Q-99'"):
        create_clip("ViT-Q-99")
    with pytest.raises(ValueError, match="unknown head 'svm'"):
        tiny_clip(head="svm")


@pytest.fixture(scope="module")
def small_data(synthetic_small):
    catalog = load_catalog(synthetic_small, layout="ham10000")
    split = make_split(catalog, seed=0)["split"].to_numpy()
    cache = build_cache(catalog, 64)
    parts = {s: catalog[split == s].head(96) for s in ("train", "val")}          # a few batches suffice
    return (Batches(cache, parts["train"]["image_id"], parts["train"]["label"], 16, shuffle=True, drop_last=True),
            Batches(cache, parts["val"]["image_id"], parts["val"]["label"], 32))


def test_fit_never_changes_the_text_tower(small_data):
    model = tiny_clip(head="prompt")
    text_before = {n: p.detach().clone() for n, p in model.clip.named_parameters() if not n.startswith("visual.")}
    visual_before = [p.detach().clone() for p in model.visual.parameters()]
    head_before = model.head.weight.detach().clone()
    grads = []
    pre = Preprocess(*normalization_of(model))
    fit(model, *small_data, pre, pre, FitConfig(max_epochs=1, lr=1e-3, weight_decay=0.05, seed=0), log=io.StringIO(),
        on_epoch_end=lambda epoch, row, m: grads.append([p.grad for n, p in m.clip.named_parameters()
                                                         if not n.startswith("visual.")]))
    for name, param in model.clip.named_parameters():
        if not name.startswith("visual."):
            assert torch.equal(param, text_before[name]), f"text tower parameter {name} changed"
    assert all(g is None for epoch in grads for g in epoch), "the text tower received a gradient"
    assert any(not torch.equal(a, b) for a, b in zip(visual_before, model.visual.parameters())), "image tower trained"
    assert not torch.equal(head_before, model.head.weight)


@pytest.mark.parametrize("prompt_set", ["ensemble", "codes"])
def test_prompt_head_starts_from_the_text_embeddings(prompt_set):
    model = tiny_clip(head="prompt", prompt_set=prompt_set)
    with torch.no_grad():
        expected = torch.stack([
            nn.functional.normalize(nn.functional.normalize(
                model.clip.encode_text(model.tokenizer(texts)), dim=-1).mean(0), dim=0)
            for texts in prompts(prompt_set, model.class_names)]) * model.clip.logit_scale.exp()
    torch.testing.assert_close(model.head.weight, expected)
    assert torch.count_nonzero(model.head.bias) == 0
    binary = tiny_clip(1, head="prompt", prompt_set=prompt_set)
    text = binary.text_features(prompt_set) * binary.clip.logit_scale.exp()
    torch.testing.assert_close(binary.head.weight, text[1:] - text[:1])
    assert prompts("study_c", ["mel"]) == [["The lesion shows signs of melanoma"]]
    assert prompts("codes", ["akiec", "nv"]) == [["akiec"], ["nv"]]


class _EmbeddingOfPixel(nn.Module):
    """An image tower that returns a given embedding per image, chosen by its first pixel's value."""

    def __init__(self, table: torch.Tensor):
        super().__init__()
        self.table = nn.Parameter(table)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return 5 * self.table[x[:, 0, 0, 0].round().long()]


def test_zero_shot_picks_the_class_the_image_embedding_matches():
    model = tiny_clip()
    text = model.text_features("ensemble")
    assert not torch.allclose(text, model.text_features("codes"))
    labels = torch.tensor([3, 0, 6, 1, 5, 2, 4, 4, 0])
    model.clip.visual = _EmbeddingOfPixel(text.clone())
    images = labels.view(-1, 1, 1, 1).expand(-1, 3, 4, 4).to(torch.uint8)
    proba = zero_shot(model, [(images[:5], labels[:5]), (images[5:], labels[5:])], nn.Identity(), "ensemble")
    assert proba.shape == (9, 7) and np.allclose(proba.sum(1), 1, atol=1e-5)
    assert (proba.argmax(1) == labels.numpy()).all()


def test_zero_shot_many_encodes_each_image_and_prompt_once_and_agrees_with_zero_shot():
    class ToFloat(nn.Module):
        def forward(self, x):
            return x.float() / 255

    model, pre = tiny_clip(), ToFloat()
    torch.manual_seed(0)
    images = torch.randint(0, 256, (9, 3, 64, 64), dtype=torch.uint8)
    batches = {"val": [(images[:4], None), (images[4:6], None)], "test": [(images[6:], None)]}
    encoded = {"images": 0, "texts": 0}
    image_features, encode_text = model.image_features, model.clip.encode_text
    model.image_features = lambda x: (encoded.__setitem__("images", encoded["images"] + len(x)), image_features(x))[1]
    model.clip.encode_text = lambda t: (encoded.__setitem__("texts", encoded["texts"] + len(t)), encode_text(t))[1]
    many = zero_shot_many(model, batches, pre, ["codes", "ensemble"])
    assert encoded == {"images": 9, "texts": 7 * (1 + 5)}                    # once each, not once per set and split
    assert sorted(many) == [("codes", "test"), ("codes", "val"), ("ensemble", "test"), ("ensemble", "val")]
    for (prompt_set, split), proba in many.items():
        np.testing.assert_allclose(proba, zero_shot(model, batches[split], pre, prompt_set), atol=1e-6)
    custom = zero_shot_many(model, {"val": batches["val"]}, pre, {"mine": {"templates": ["{label}"], "names": "codes"}})
    np.testing.assert_allclose(custom["mine", "val"], many["codes", "val"], atol=1e-6)


def test_clip_weights_round_trip_through_a_local_file(tmp_path):
    from safetensors.torch import save_file

    source = tiny_clip()
    save_file({k: v.contiguous() for k, v in source.clip.state_dict().items()}, tmp_path / "ViT-B-32.openai.safetensors")
    torch.manual_seed(1)
    loaded = create_clip("ViT-B-32", 7, config=TINY_CLIP, pretrained=True, weights_dir=tmp_path)
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(loaded.eval().image_features(x), source.eval().image_features(x), rtol=0, atol=0)
        torch.testing.assert_close(loaded.text_features("study_c"), source.text_features("study_c"), rtol=0, atol=0)


def test_blip_weights_round_trip_through_a_save_pretrained_folder(tmp_path):
    from transformers import BlipConfig, BlipForConditionalGeneration

    torch.manual_seed(0)
    text = {"hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 1, "num_attention_heads": 2,
            "vocab_size": 500, "encoder_hidden_size": TINY_BLIP["hidden_size"]}
    source = BlipForConditionalGeneration(BlipConfig(vision_config=TINY_BLIP, text_config=text, projection_dim=32)).eval()
    source.save_pretrained(tmp_path / "blip-image-captioning-base")
    model = create_blip("Salesforce/blip-image-captioning-base", 7, pretrained=True, weights_dir=tmp_path).eval()
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(model.visual(pixel_values=x).last_hidden_state,
                                   source.vision_model(pixel_values=x).last_hidden_state, rtol=0, atol=0)
    assert model.pretrained_cfg["input_size"] == (3, 64, 64)


def test_missing_local_weights_name_the_file_or_folder(tmp_path):
    with pytest.raises(WeightsError, match=r"expected ViT-B-32\.openai\.safetensors"):
        create_clip("ViT-B-32", pretrained=True, weights_dir=tmp_path)
    with pytest.raises(WeightsError, match=r"expected the folder .*BiomedCLIP-PubMedBERT_256-vit_base_patch16_224 with open_clip_config.json"):
        create_clip("hf-hub:microsoft/BiomedCLIP-PubMedBERT_256-vit_base_patch16_224", pretrained=True, weights_dir=tmp_path)
    with pytest.raises(WeightsError, match=r"expected the folder .*blip-itm-base-coco with config.json"):
        create_blip("Salesforce/blip-itm-base-coco", pretrained=True, weights_dir=tmp_path)


@pytest.fixture
def no_hub(monkeypatch, tmp_path):
    """A machine without a network whatever this one has: the hub's address does not resolve, the cache is empty."""
    import huggingface_hub.constants as hf

    for key in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "HTTPS_PROXY", "https_proxy", "SKINLIB_WEIGHTS"):
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setattr(hf, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(hf, "HF_HUB_CACHE", str(tmp_path / "hub-cache"))
    monkeypatch.setenv("HF_ENDPOINT", "https://skinlib-no-network.invalid")
    monkeypatch.setattr(weights_module, "_probe", {})


@pytest.mark.parametrize("factory", [
    lambda: create_backbone("resnet18", pretrained=True),
    lambda: create_clip("ViT-B-32", pretrained=True, config=TINY_CLIP),
    lambda: create_blip("Salesforce/blip-image-captioning-base", pretrained=True),
], ids=["timm", "clip", "blip"])
def test_offline_pretrained_fails_within_seconds(no_hub, factory):
    start = time.perf_counter()
    with pytest.raises(WeightsError, match=r"unreachable .*offline.*weights_dir.*pretrained=False"):
        factory()
    assert time.perf_counter() - start < 10, "offline failure should not wait for hub retries"


def test_hub_probe_is_quick_and_honours_the_offline_flag(monkeypatch):
    monkeypatch.setattr(weights_module, "_probe", {})
    start = time.perf_counter()
    weights_module.hub_reachable(timeout=2.0)                 # either answer, but within the timeout
    assert time.perf_counter() - start < 4
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    assert weights_module.hub_reachable() is False
    start = time.perf_counter()
    assert not weights_module._connects("skinlib-no-network.invalid", 443, timeout=1.0)
    assert time.perf_counter() - start < 2


def test_study_c_augmentation_is_a_random_flipped_crop():
    from skinlib.data.transforms import augmentation

    torch.manual_seed(0)
    ramp = torch.linspace(0, 1, 64).view(1, 1, 1, 64).expand(32, 3, 64, 64).contiguous()
    out = augmentation("study_c", interpolation="nearest")(ramp)
    rows = out[:, 0, 0]                                          # one row per image: a window of the ramp
    steps = rows.diff(dim=1)
    increasing, decreasing = (steps >= 0).all(1), (steps <= 0).all(1)
    assert (increasing | decreasing).all() and increasing.any() and decreasing.any()     # flipped about half
    span = rows.max(1).values - rows.min(1).values
    assert torch.allclose(span, torch.full_like(span, 55 / 63), atol=0.02)             # 224 / 256 of the side
    assert rows.min(1).values.unique().numel() > 5                                        # at random places


def test_image_size_reaches_a_given_config():
    clip, blip = tiny_clip(image_size=96), tiny_blip(image_size=96)
    with torch.no_grad():
        assert clip.eval()(torch.randn(1, 3, 96, 96)).shape == blip.eval()(torch.randn(1, 3, 96, 96)).shape == (1, 7)
    assert clip.pretrained_cfg["input_size"] == blip.pretrained_cfg["input_size"] == (3, 96, 96)
    assert input_size_of(clip) == input_size_of(blip) == 96
    assert TINY_CLIP["vision_cfg"]["image_size"] == 64                     # the shared default is left alone


def test_study_c_model_reads_the_label_it_is_given_and_the_prompt_head_cannot(small_data, synthetic_small):
    """The leak of study C's model in miniature: on labels shuffled away from the images (nothing to learn from the
    pixels), the model given each image's own diagnosis prompt (``label_prompt``) scores near 1 on validation, where
    the same CLIP with the prompt head, which sees the image alone, stays near chance."""
    catalog = load_catalog(synthetic_small, layout="ham10000")
    split = make_split(catalog, seed=0)["split"].to_numpy()
    cache = build_cache(catalog, 64)
    rng = np.random.default_rng(0)
    parts = {s: catalog[split == s].head(96).assign(label=lambda t: rng.integers(0, 7, len(t))) for s in ("train", "val")}

    def batches(features):
        return [Batches(cache, parts[s]["image_id"], parts[s]["label"], 16, shuffle=s == "train",
                        drop_last=s == "train", features=label_onehot(parts[s]) if features else None)
                for s in ("train", "val")]

    scores = {}
    for head in ("label_prompt", "prompt"):
        model = tiny_clip(head=head, prompt_set="study_c", freeze_fraction=1.0)     # the heads alone train
        pre = Preprocess(*normalization_of(model))
        result = fit(model, *batches(head == "label_prompt"), pre, pre,
                     FitConfig(max_epochs=8, lr=1e-2, scheduler="none", seed=0), log=io.StringIO())
        scores[head] = float(result.history["val_balanced_accuracy"].max())
    assert scores["label_prompt"] > 0.9, scores
    assert scores["prompt"] < 0.45, scores
    assert model.label_prompts is None and tiny_clip(head="label_prompt").takes_label
    with pytest.raises(TypeError, match="takes the pair"):
        tiny_clip(head="label_prompt")(torch.randn(2, 3, 64, 64))
