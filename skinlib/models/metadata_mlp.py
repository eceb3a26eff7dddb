"""Study D's metadata-only model: a small MLP on age, sex, site and size features, one logit."""

from __future__ import annotations

from torch import Tensor, nn

from .factories import register_model


class MetadataMLP(nn.Module):
    """Study D's metadata model: two dense layers with ReLU and dropout, then one logit.

    Args:
        n_features: metadata features per image.
        hidden: width of both dense layers.
        dropout: dropout after each dense layer.
    """

    def __init__(self, n_features: int, hidden: int = 32, dropout: float = 0.3):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(n_features, hidden), nn.ReLU(), nn.Dropout(dropout),
                                 nn.Linear(hidden, hidden), nn.ReLU(), nn.Dropout(dropout), nn.Linear(hidden, 1))

    def forward(self, x: Tensor | tuple[Tensor, ...]) -> Tensor:
        features = x[-1] if isinstance(x, (tuple, list)) else x
        return self.net(features)


@register_model("metadata_mlp")
def create_metadata_mlp(n_features: int, hidden: int = 32, dropout: float = 0.3) -> MetadataMLP:
    """Metadata-only binary model (see :class:`MetadataMLP`)."""
    return MetadataMLP(n_features, hidden, dropout)
