"""The installed partcli version, recorded in every file partcli writes."""
from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("partcli")
except PackageNotFoundError:  # running from a source tree that is not installed
    __version__ = "0.0.0+unknown"
