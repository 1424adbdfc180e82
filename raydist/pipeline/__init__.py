"""Ray Data pipelines: stage functions (no Ray) and the drivers that wire them."""
