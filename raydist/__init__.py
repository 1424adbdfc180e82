"""raydist: a distributed audio VAE embedding service on Ray."""

__version__ = "0.1.0"

__all__ = ["__version__", "load_model"]


def __getattr__(name: str):
    # lazy: `import raydist.io.schema` (the Parquet writers, readers) must not pay for a torch import
    if name == "load_model":
        from raydist.model.checkpoint import load_model

        return load_model
    raise AttributeError(f"module 'raydist' has no attribute {name!r}")
