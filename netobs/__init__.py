"""netobs: what sending bytes over Linux really costs, and why."""


def __getattr__(name: str):
    # Lazy: importlib.metadata costs ~25 ms, and every point starts two worker processes.
    if name == "__version__":
        from importlib.metadata import PackageNotFoundError, version

        try:
            return version("netobs")
        except PackageNotFoundError:  # a source tree that is not installed
            return "0+unknown"
    raise AttributeError(f"module 'netobs' has no attribute {name!r}")
