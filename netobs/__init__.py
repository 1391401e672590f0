"""netobs: what sending bytes over Linux really costs, and why."""
from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("netobs")
except PackageNotFoundError:  # running from a source tree that is not installed
    __version__ = "0+unknown"
