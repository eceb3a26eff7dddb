"""The heads put on image features: one builder for CLIP, BLIP and the binary tasks' models."""

from __future__ import annotations

from torch import nn


def make_head(kind: str, dim: int, num_classes: int, *, hidden: int = 256, dropout: float = 0.0,
              input_dropout: float | None = None) -> nn.Module:
    """A head from features of width `dim` to `num_classes` outputs.

    Args:
        kind: ``linear`` (``prompt`` too: a linear head CLIP initialises from the prompts) or ``mlp``
            (features -> `hidden` -> ReLU -> dropout -> outputs, study B's CLIP head).
        dim: width of the features.
        num_classes: outputs (1: one logit).
        hidden: width of the ``mlp`` head's hidden layer.
        dropout: dropout inside the ``mlp`` head.
        input_dropout: dropout before a ``linear`` head (the binary tasks' image models); None: none, a bare
            ``nn.Linear`` (CLIP, BLIP), whose weights are stored under other names.
    """
    if kind in ("linear", "prompt"):
        linear = nn.Linear(dim, num_classes)
        return linear if input_dropout is None else nn.Sequential(nn.Dropout(input_dropout), linear)
    if kind == "mlp":
        return nn.Sequential(nn.Linear(dim, hidden), nn.ReLU(inplace=True), nn.Dropout(dropout),
                             nn.Linear(hidden, num_classes))
    raise ValueError(f"unknown head {kind!r}: use 'linear', 'mlp' or 'prompt' (CLIP only)")
