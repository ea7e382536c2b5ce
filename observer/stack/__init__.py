"""The monitoring stack as code: compose, Prometheus and Grafana provisioning, native runner.

``render_files()`` (in ``observer.stack.files``) is what ``observer generate``
writes into ``compose/``; ``observer.stack.native`` runs the Debian
``prometheus`` and ``prometheus-alertmanager`` binaries with the same files.
"""
