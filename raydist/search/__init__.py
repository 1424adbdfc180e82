"""Search a corpus by sound: a vector index over a run's committed rows, queries by audio or by id,
and near-duplicate groups. The index is a LanceDB table (embedded: no server; local disk or S3)
holding the vectors and their metadata in one table, so the two cannot drift apart, with a small
JSON record of what it holds (`index`). Queries by audio go through the pipeline's own decode and
encode functions (`query`). No Ray: an index is built by streaming the committed Parquet.
"""
