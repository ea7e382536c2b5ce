"""A KIS-compatible simulated exchange with fault injection (see ``SimExchange``)."""

from observer.sim.exchange import SimExchange

__all__ = ["SimExchange"]
