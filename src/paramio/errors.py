"""``paramio.errors``, the exceptions' public path: they are defined in `paramio.core.errors`."""

from paramio.core.errors import *  # noqa: F403
from paramio.core.errors import __all__  # noqa: F401
