"""A KIS-compatible simulated exchange with fault injection."""
