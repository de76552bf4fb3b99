"""DuckDB views over the lake's Parquet, in a database file the course's dbt project opens as is.

The file (``taxi_rides_ny.duckdb``: DuckDB names the database after it) holds only views:
``prod.<color>_tripdata`` reads ``read_parquet(<lake glob>)`` with the TLC column names, so a
month the pipeline lands later is read by the next query, and nothing is copied. Paths are
absolute, so the file works from any directory. The lake is either the local lake directory
(offline) or ``gs://bucket/prefix``; for the latter DuckDB needs its httpfs extension (shipped
in the ``duckdb-extension-httpfs`` wheel and installed from it, as DuckDB cannot download it
offline) and a GCS HMAC key, which is used for this session only and never stored.

What the views show: every month whose Parquet is under the lake glob. Each Parquet is written
whole and renamed into place, and each GCS object is uploaded whole, so a month is never half
visible; ``prod.months`` lists the months (and rows) each view holds.
"""

from __future__ import annotations

import os
import urllib.parse
from contextlib import closing
from dataclasses import dataclass, field
from pathlib import Path

import duckdb

from tlc import layout
from tlc.config import GcsConfig, PathsConfig, PublishConfig
from tlc.errors import InvalidInput, SinkError
from tlc.identifiers import identifier, table_name
from tlc.month import COLORS
from tlc.publish import sql
from tlc.publish.held import Published

LAKES = ("local", "gcs")


@dataclass(frozen=True)
class GcsAccess:
    """How DuckDB reaches ``gs://``: an emulator's endpoint or storage.googleapis.com, and an HMAC key."""

    endpoint: str  # host:port of an emulator; empty for GCS itself
    use_ssl: bool
    key_id: str
    secret: str = field(repr=False)

    @classmethod
    def from_env(cls) -> GcsAccess:
        """The key comes only from the environment, never from luigi.cfg; an emulator takes any key."""
        key_id, secret = os.environ.get("TLC_GCS_HMAC_KEY_ID", ""), os.environ.get("TLC_GCS_HMAC_SECRET", "")
        emulator = os.environ.get("STORAGE_EMULATOR_HOST", "")
        if emulator:
            url = urllib.parse.urlsplit(emulator)
            return cls(url.netloc, url.scheme == "https", key_id or "emulator", secret or "emulator")
        if not (key_id and secret):
            raise InvalidInput(
                "[tlc.publish] duckdb_lake = gcs needs a GCS HMAC key: set TLC_GCS_HMAC_KEY_ID and TLC_GCS_HMAC_SECRET"
            )
        return cls("", True, key_id, secret)

    def attach(self, con: duckdb.DuckDBPyConnection) -> None:
        """Load httpfs and create this session's (temporary) secret; values travel as parameters."""
        _install_httpfs(con)
        options, params = ["TYPE gcs", "KEY_ID ?", "SECRET ?"], [self.key_id, self.secret]
        if self.endpoint:
            options += ["ENDPOINT ?", "URL_STYLE 'path'", f"USE_SSL {str(self.use_ssl).lower()}"]
            params.append(self.endpoint)
        try:
            con.execute(f"CREATE OR REPLACE TEMPORARY SECRET tlc_publish_gcs ({', '.join(options)})", params)
        except duckdb.Error:
            raise SinkError("DuckDB refused the GCS secret (TLC_GCS_HMAC_KEY_ID / TLC_GCS_HMAC_SECRET)") from None


def _install_httpfs(con: duckdb.DuckDBPyConnection) -> None:
    """httpfs from the wheel into DuckDB's extension directory, so later sessions (dbt) load it too."""
    import duckdb_extension_httpfs  # noqa: PLC0415 - only the gcs lake needs it

    ext = Path(duckdb_extension_httpfs.__file__).parent / "extensions" / f"v{duckdb.__version__}"
    ext = ext / "httpfs.duckdb_extension"
    if not ext.exists():
        raise InvalidInput(f"duckdb-extension-httpfs has no httpfs for duckdb {duckdb.__version__}: pin both alike")
    con.execute(f"INSTALL {sql.string_literal(str(ext))}")
    con.execute("LOAD httpfs")


@dataclass(frozen=True)
class LakeViews:
    path: Path  # the database file
    schema: str
    lake_root: str  # a directory or gs://bucket/prefix, without a trailing slash
    gcs: GcsAccess | None

    @classmethod
    def from_config(cls) -> LakeViews:
        """Every setting checked before any file is opened."""
        cfg, root = PublishConfig(), PathsConfig().root().resolve()
        path = Path(cfg.duckdb_path)
        path = path if path.is_absolute() else root / path
        identifier(path.stem, "database name (the file name of [tlc.publish] duckdb_path)")
        schema = identifier(cfg.duckdb_schema, "[tlc.publish] duckdb_schema")
        if cfg.duckdb_lake == "local":
            return cls(path, schema, str(root / "lake"), None)
        if cfg.duckdb_lake == "gcs":
            gcs = GcsConfig()
            return cls(path, schema, f"gs://{gcs.bucket_name()}/{gcs.lake_prefix()}", GcsAccess.from_env())
        raise InvalidInput(f"[tlc.publish] duckdb_lake {cfg.duckdb_lake!r} is not valid: use one of {', '.join(LAKES)}")

    def ref(self, name: str) -> str:
        return f"{sql.DUCKDB.quote(self.schema)}.{sql.DUCKDB.quote(name)}"

    def publish(self) -> Published:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            with closing(duckdb.connect(str(self.path))) as con:
                return self._publish(con)
        except duckdb.Error as exc:
            first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
            raise SinkError(f"DuckDB views in {self.path}: {first}") from None

    def _publish(self, con: duckdb.DuckDBPyConnection) -> Published:
        if self.gcs:
            self.gcs.attach(con)
        globs = {c: f"{self.lake_root}/{layout.lake_glob(c)}" for c in COLORS}
        landed = [c for c, g in globs.items() if con.execute("SELECT count(*) FROM glob(?)", [g]).fetchone()[0]]
        if not landed:
            raise SinkError(f"no month is in the lake at {self.lake_root}: nothing to publish")
        views = {c: self.ref(table_name(c)) for c in landed}
        con.execute("BEGIN TRANSACTION")
        con.execute(f"CREATE SCHEMA IF NOT EXISTS {sql.DUCKDB.quote(self.schema)}")
        for color in landed:
            select = sql.renamed_select(sql.DUCKDB, color, sql.read_parquet(globs[color]))
            con.execute(sql.create_view(views[color], select))
        con.execute(sql.create_view(self.ref(sql.MONTHS_VIEW), sql.lake_months(views)))
        con.execute("COMMIT")
        rows = con.execute(f"SELECT color, source_month, row_count FROM {self.ref(sql.MONTHS_VIEW)}").fetchall()  # noqa: S608 - validated names
        return Published.from_rows("duckdb", f"{self.path.stem}.{self.schema}", landed, rows)
