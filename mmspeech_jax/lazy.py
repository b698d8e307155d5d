"""Package namespaces whose names load on first use (PEP 562), so importing a package does not import every
dependency of its modules."""

from __future__ import annotations

import importlib


def lazy_names(package: str, sources: dict[str, str]):
    """(`__getattr__`, `__dir__`) for `package` whose name N lives in the submodule `sources[N]`.

    In the package's `__init__`: `__getattr__, __dir__ = lazy_names(__name__, _SOURCES)`."""

    def __getattr__(name):
        if name not in sources:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        return getattr(importlib.import_module(f"{package}.{sources[name]}"), name)

    def __dir__():
        return sorted(set(vars(importlib.import_module(package))) | set(sources))

    return __getattr__, __dir__
