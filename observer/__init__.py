"""Observer: a market-data collector for KIS-compatible broker APIs that shows its own health."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("observer")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0.0.0"
