"""mmspeech_jax: a pure-JAX functional model zoo for multimodal speech."""

from mmspeech_jax import errors

__version__ = "0.1.0"
__all__ = ["errors", "__version__"]
