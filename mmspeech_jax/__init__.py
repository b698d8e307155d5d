"""mmspeech_jax: a pure-JAX functional model zoo for multimodal speech."""

from mmspeech_jax import errors
from mmspeech_jax.host_memory import keep_freed_memory

# Before JAX's CPU backend starts: reuse step temporaries' pages instead of faulting them in again every step
# (host_memory.py; MMSPEECH_HOST_MEMORY=system turns it off).
HOST_MEMORY_KEPT = keep_freed_memory()

__version__ = "0.1.0"
__all__ = ["errors", "__version__", "HOST_MEMORY_KEPT"]
