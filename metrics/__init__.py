"""The metric vocabulary: the catalog, its closed label sets, registry construction, PromQL.

A leaf package: it imports nothing of Observer's. The domain (``observer/``),
the exporter's HTTP side (``exporter/``) and the generators (``rules/``,
``dashboards/``, ``observer/stack``) all read the same entries from here.
"""
