# Observer: collector and exporter. Built by compose/compose.yaml (service "observer").
FROM python:3.11.10-slim-bookworm

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /src
COPY pyproject.toml README.md ./
COPY observer ./observer
COPY exporter ./exporter
COPY metrics ./metrics
COPY dashboards ./dashboards
COPY rules ./rules
RUN pip install . && rm -rf /src

# An unprivileged user owns the data directory (token cache, SQLite database).
RUN useradd --system --uid 10001 --create-home --home-dir /home/observer observer
USER observer
WORKDIR /home/observer

EXPOSE 9464
ENTRYPOINT ["observer"]
CMD ["run", "--listen", "0.0.0.0:9464"]
