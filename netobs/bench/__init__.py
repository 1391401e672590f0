"""`python -m netobs.bench` (`make bench`): is netobs as fast as the tools people trust, and
what does its tracing cost?

- `peers`: netobs's sender against iperf3, and the strategies' ratios to one another;
- `tracing`: `netobs run` with and without `--trace` (and `--profile`), by a method that says
  "cannot tell" when the host's noise hides the cost, and the tracer's cost per send syscall;
- `__main__`: the entry point; it prints, the sections return values and text.
"""
