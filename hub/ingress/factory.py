"""`uvicorn hub.ingress.factory:build --factory`: the ingress for multi-process serving.

Each uvicorn worker process loads the config named by `CRMHUB_CONFIG` and uses `REDIS_URL`.
"""

from __future__ import annotations

from hub.errors import ConfigError
from hub.ingress.app import Ingress, create_app
from hub.settings import config_path_from_env, load_config, redis_url


def build() -> Ingress:
    url = redis_url()
    if url is None:
        raise ConfigError("REDIS_URL is not set: multi-process serving needs a shared Redis")
    return create_app(load_config(config_path_from_env()), url)
