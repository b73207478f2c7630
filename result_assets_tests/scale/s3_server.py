"""A local S3-compatible server for the tests: moto, serving one request at a time.

moto checks `If-None-Match: *` and then stores the object as two steps; real S3 does both
atomically. Serving requests one at a time restores that atomicity, which the concurrent
Delta commits depend on (`python -m result_assets_tests.scale.s3_server PORT`).
"""
from __future__ import annotations

import logging
import sys

from moto.moto_server.werkzeug_app import DomainDispatcherApplication, MotoRequestHandler, create_backend_app
from werkzeug.serving import make_server


def main(port: int) -> None:
    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # no line per request
    app = DomainDispatcherApplication(create_backend_app)
    server = make_server("127.0.0.1", port, app, threaded=False, request_handler=MotoRequestHandler)
    print(f"listening on 127.0.0.1:{port}", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main(int(sys.argv[1]))
