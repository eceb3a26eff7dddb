"""Models: every study backbone builds for 7 classes; local weights load; missing weights say what to do."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from skinlib.models import BACKBONES, ResidualCNN, WeightsError, create_backbone, normalization_of


def test_custom_cnn_matches_study_a_shape():
    model = ResidualCNN(7)                                   # width 64, (2, 2, 2, 2): ResNet-18's layout
    assert model(torch.randn(2, 3, 64, 64)).shape == (2, 7)
    n = sum(p.numel() for p in model.parameters())
    assert 11_000_000 < n < 11_400_000                       # ResNet-18 has 11.2 M parameters
    assert ResidualCNN(1, width=8, blocks=(1, 1, 1))(torch.randn(1, 3, 32, 32)).shape == (1, 1)


@pytest.mark.parametrize("name", list(BACKBONES))
def test_every_backbone_builds_with_seven_classes(name):
    model = create_backbone(name, 7, image_size=96 if "vit" in name else None).eval()
    with torch.no_grad():
        assert model(torch.randn(2, 3, 96, 96)).shape == (2, 7)
    mean, std = normalization_of(model)
    assert len(mean) == len(std) == 3


def test_heads_and_freezing():
    model = create_backbone("resnet18", 7, head="study_e", freeze_fraction=1.0)
    trainable = [n for n, p in model.named_parameters() if p.requires_grad]
    assert trainable and all(n.startswith("head.") for n in trainable)
    assert model.head.net[0].out_features == 256
    half = create_backbone("resnet18", 7, freeze_fraction=0.5)
    frozen = [p.requires_grad for p in half.features.parameters()]
    assert not frozen[0] and frozen[-1] and 0.4 < (1 - np.mean(frozen)) < 0.6
    with pytest.raises(ValueError, match=r"freeze_fraction = 2 is not allowed: use a number >= 0 and <= 1"):
        create_backbone("resnet18", 7, freeze_fraction=2)
    with pytest.raises(ValueError, match="unknown backbone 'resnet9000'"):
        create_backbone("resnet9000")


def test_pretrained_weights_from_a_local_folder(tmp_path):
    import timm
    from safetensors.torch import save_file

    source = timm.create_model("resnet18", pretrained=False)
    save_file(source.state_dict(), tmp_path / "resnet18.a1_in1k.safetensors")
    model = create_backbone("resnet18", 7, pretrained=True, weights_dir=tmp_path)
    torch.testing.assert_close(model.features.conv1.weight, source.conv1.weight)
    torch.testing.assert_close(model.features.layer4[1].bn2.running_mean, source.layer4[1].bn2.running_mean)


def test_missing_local_weights_say_where_to_put_them(tmp_path):
    with pytest.raises(WeightsError, match=r"no weights for resnet50.a1_in1k in .*resnet50.a1_in1k.safetensors"):
        create_backbone("resnet50", pretrained=True, weights_dir=tmp_path)


def test_offline_hub_gives_a_clear_message(monkeypatch):
    import huggingface_hub.constants as hf

    monkeypatch.setattr(hf, "HF_HUB_OFFLINE", True)
    monkeypatch.delenv("SKINLIB_WEIGHTS", raising=False)
    with pytest.raises(WeightsError, match=r"could not load pretrained weights for resnet18.*weights_dir=.*pretrained=False"):
        create_backbone("resnet18", pretrained=True)
