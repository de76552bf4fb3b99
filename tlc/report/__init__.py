"""The reconciliation report: every ingested month, counted in every stage (``python -m tlc.report``)."""
