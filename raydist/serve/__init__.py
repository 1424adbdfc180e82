"""`raydist serve`: the model kept warm behind HTTP.

- `work`: what a replica does with a batch of requests, no Ray: the batch pipeline's own decode,
  encode and split functions, so a served file gets the rows `raydist embed` writes for it.
- `api`: the FastAPI app (routes, token, size limit, deadline, errors as JSON), no Ray.
- `metrics`: Prometheus counters and histograms behind `GET /metrics`.
- `app`: the Ray Serve deployments (batched encoder replicas, the ingress) and start/stop.
- `static/`: the web page at `/` (plain HTML, CSS and JavaScript; no build step)."""
