"""BPF C programs loaded by netobs.tracer (package data: *.c, *.h)."""
