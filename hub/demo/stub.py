"""A tiny stand-in for provider APIs on loopback: serves fixed JSON for `GET` paths.

Fetching connectors describe the routes (`WebhookConnector.stub_routes`); the demo and
the integration tests serve them here. Requests must carry a bearer token, like the real
APIs; unknown paths get a 404 JSON body.
"""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import urlsplit

__all__ = ["ProviderStub"]


class ProviderStub:
    """A threaded HTTP server on 127.0.0.1 serving `routes` (path -> JSON body)."""

    def __init__(
        self,
        routes: dict[str, Any] | None = None,
        *,
        token_path: str = "/oauth2/token",  # noqa: S107
    ) -> None:
        self.routes: dict[str, Any] = dict(routes or {})
        self.token_path = token_path
        self.requests: list[tuple[str, str]] = []
        stub = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:
                return

            def _send(self, status: int, body: Any) -> None:
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self) -> None:
                path = urlsplit(self.path).path
                stub.requests.append(("GET", path))
                if not (self.headers.get("Authorization") or "").startswith("Bearer "):
                    self._send(401, {"error": {"message": "missing bearer token", "code": 190}})
                elif path in stub.routes:
                    self._send(200, stub.routes[path])
                else:
                    self._send(404, {"error": {"message": f"unknown object {path}", "code": 100}})

            def do_POST(self) -> None:
                path = urlsplit(self.path).path
                length = int(self.headers.get("Content-Length") or 0)
                self.rfile.read(length)
                stub.requests.append(("POST", path))
                if path == stub.token_path:
                    self._send(
                        200,
                        {
                            "access_token": "stub-access-token",
                            "refresh_token": "stub-refresh",
                            "token_type": "bearer",
                            "expires_in": 3600,
                        },
                    )
                else:
                    self._send(404, {"error": {"message": f"unknown endpoint {path}"}})

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(target=self._server.serve_forever, name="provider-stub", daemon=True)

    @property
    def url(self) -> str:
        port = self._server.server_address[1]
        return f"http://127.0.0.1:{port}"

    def start(self) -> ProviderStub:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
