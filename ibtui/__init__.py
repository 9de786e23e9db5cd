"""ibtui: backdoor training dynamics through the information bottleneck."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("ibtui")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0+unknown"
