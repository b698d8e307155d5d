"""mmspeech_jax: a pure-JAX functional model zoo for multimodal speech.

Importing it changes nothing in the process. The training entry points (`python -m experiments.*`, the step
benchmarks) call `mmspeech_jax.host_memory.keep_freed_memory()` first; programs of your own that train on the CPU
may call it too, before their first JAX computation (host_memory.py says why). The `mmspeech` CLI, which only runs
inference, does not.
"""

from mmspeech_jax import errors

__version__ = "0.1.0"
__all__ = ["errors", "__version__"]
