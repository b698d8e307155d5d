"""mmspeech_jax: a pure-JAX functional model zoo for multimodal speech.

Importing it changes nothing in the process. Entry points (`python -m experiments.*`, the `mmspeech` CLI, the
benchmarks) call `mmspeech_jax.host_memory.keep_freed_memory()` first; programs of your own that train on the CPU
may call it too, before their first JAX computation (host_memory.py says why).
"""

from mmspeech_jax import errors

__version__ = "0.1.0"
__all__ = ["errors", "__version__"]
