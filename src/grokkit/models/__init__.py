"""Models. Every model is an ensemble: weights carry a leading member axis K."""

from grokkit.models.transformer import EnsembleTransformer, TransformerShape

__all__ = ["EnsembleTransformer", "TransformerShape"]
