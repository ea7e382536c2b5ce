"""The metric catalog, registry construction and the aiohttp exporter."""
