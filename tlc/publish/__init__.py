"""Course-compatible raw tables: views with the TLC column names over what the pipeline landed.

``python -m tlc.publish`` (``make publish``) creates, idempotently, the sources the course's dbt
project reads: DuckDB ``taxi_rides_ny.prod.<color>_tripdata`` over the lake's Parquet
(``lake_views``), BigQuery ``nytaxi.<color>_tripdata`` (``bigquery_views``) and Postgres
``prod.<color>_tripdata`` (``postgres_views``) over the warehouse tables, each with a ``months``
view of what it holds. Views, not copies: a month landed later appears without a rerun.
"""
