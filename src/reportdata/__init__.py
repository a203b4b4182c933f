"""reportdata: figures from Chinese government reports as validated, versioned open data."""

from reportdata.quantity import Quantity, parse_quantity

__all__ = ["Quantity", "__version__", "parse_quantity"]
__version__ = "0.1.0"
