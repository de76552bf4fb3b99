"""The BigQuery stand-in: bqemulator (REST on a free port, DuckDB underneath).

Load jobs resolve ``gs://bucket/path`` to ``<GCS filesystem root>/bucket/path``
(``BQEMU_GCS_LOCAL_ROOT``), so anything uploaded to fake-gcs-server can be loaded, exactly
like a GCS-to-BigQuery load in the cloud. Data persists in ``<stack>/bigquery-data`` so a
restarted stack keeps its tables. The pipeline reaches it with
``bigquery.Client(project=TLC_BIGQUERY_PROJECT, credentials=AnonymousCredentials(),
client_options={"api_endpoint": TLC_BIGQUERY_ENDPOINT})``.
"""

from __future__ import annotations

import json
import urllib.request

from scripts.stack import emuenv, gcs
from scripts.stack.base import StackDir, free_port, wait_until

NAME = "bigquery"
PROJECT = "tlc-local"


def start(stack: StackDir) -> dict:
    env = emuenv.ensure_installed()
    rest_port = free_port()
    grpc_port = free_port()
    while grpc_port == rest_port:
        grpc_port = free_port()
    gcs_root = gcs.data_root(stack)
    gcs_root.mkdir(parents=True, exist_ok=True)
    data_dir = stack.root / "bigquery-data"
    uploads = stack.root / "bigquery-uploads"
    uploads.mkdir(parents=True, exist_ok=True)
    pid = stack.spawn(
        NAME,
        [
            str(env.bqemulator),
            "start",
            "--rest-host",
            "127.0.0.1",
            "--rest-port",
            str(rest_port),
            "--grpc-host",
            "127.0.0.1",
            "--grpc-port",
            str(grpc_port),
            "--data-dir",
            str(data_dir),
            "--project",
            PROJECT,
            "--log-format",
            "console",
        ],
        env={
            "HOME": str(env.duckdb_home),  # where the spatial extension was installed offline
            "BQEMU_GCS_LOCAL_ROOT": str(gcs_root),
            # Avro support would be downloaded from the DuckDB extension site: not offline.
            "BQEMU_ENABLE_FORMAT_EXTENSIONS": "false",
            "BQEMU_UPLOAD_STAGING_DIR": str(uploads),
        },
        cwd=stack.root,
    )
    endpoint = f"http://127.0.0.1:{rest_port}"
    state = {
        "pids": [pid],
        "port": rest_port,
        "grpc_port": grpc_port,
        "data_dir": str(data_dir),
        "env": {
            "TLC_BIGQUERY_ENDPOINT": endpoint,
            "TLC_BIGQUERY_PROJECT": PROJECT,
            "TLC_BIGQUERY_GRPC_ENDPOINT": f"127.0.0.1:{grpc_port}",
        },
    }
    wait_until(lambda: healthy(state), "bqemulator", timeout=90, log=stack.log(NAME))
    return state


def healthy(state: dict) -> bool:
    """Ready means DuckDB answers and the catalog lists (bqemulator's own /readyz)."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{state['port']}/readyz", timeout=3) as resp:
            return resp.status == 200 and json.load(resp).get("status") == "ok"
    except (OSError, ValueError):
        return False
