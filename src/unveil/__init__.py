"""unveil: restore obstructed facial features and measure whether the expression survived."""

from unveil.errors import UnveilError

__version__ = "0.1.0"
__all__ = ["UnveilError", "__version__"]
