"""raydist: a distributed audio VAE embedding service on Ray."""

__version__ = "0.1.0"

from raydist.model.checkpoint import load_model  # noqa: E402

__all__ = ["__version__", "load_model"]
