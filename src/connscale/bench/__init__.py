"""The connection benchmark: baselines, orchestration and results."""
