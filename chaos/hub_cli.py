"""`python chaos/hub_cli.py ARGS`: the `crmhub` CLI with the CRM HTTP timeout taken from
`CHAOS_HTTP_TIMEOUT` (seconds), so the short chaos run can hang calls past a 5 s timeout
instead of the hub's fixed 30 s (`hub.runtime.context.HTTP_TIMEOUT`, not configurable)."""

from __future__ import annotations

import os
import sys
from pathlib import Path

sys.path[0] = str(Path(__file__).resolve().parents[1])  # the repo, not chaos/

import httpx  # noqa: E402

import hub.runtime.context  # noqa: E402

seconds = float(os.environ["CHAOS_HTTP_TIMEOUT"])
hub.runtime.context.HTTP_TIMEOUT = httpx.Timeout(seconds, connect=min(5.0, seconds))

from hub.cli.app import main  # noqa: E402

main()
