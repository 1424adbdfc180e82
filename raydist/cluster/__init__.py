"""Running on Ray: `session` starts an embedded local Ray or joins a cluster (`auto`, an
address, or the cluster of the Ray job this runs in); `submit` sends jobs/ entrypoints to a
cluster's job server and follows them (status, logs, stop)."""
