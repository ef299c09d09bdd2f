"""Static analysis, the hook tracer and on-device statistics.

``resviz.trace`` names both this package and the public function :func:`resviz.trace.tracer.trace`.
Once any submodule is imported, Python binds the package to ``resviz.trace``, which would hide the
function; so the package itself is made callable and forwards to the tracer.
"""

from __future__ import annotations

import sys
import types
from typing import Any


class _CallablePackage(types.ModuleType):
    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        from resviz.trace.tracer import trace

        return trace(*args, **kwargs)


sys.modules[__name__].__class__ = _CallablePackage
