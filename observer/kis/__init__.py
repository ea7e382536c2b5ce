"""KIS Open API wire formats and the REST client (see shared spec kis-protocol.md)."""
