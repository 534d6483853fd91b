# CRM Hub image: one image, three roles (crmhub serve / worker / scheduler), see docker-compose.yml.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1
WORKDIR /app

# Only what the package needs, so local .venv and data dirs never reach the image.
COPY pyproject.toml README.md ./
COPY hub ./hub
COPY connectors ./connectors
COPY mappings ./mappings
RUN pip install . \
    && useradd --system --create-home crmhub \
    && mkdir /config \
    && chown crmhub /config

# The config is mounted at /config/crmhub.yaml; hub.data_dir (default .crmhub) resolves next to it.
USER crmhub
CMD ["crmhub", "--help"]
