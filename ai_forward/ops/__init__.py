"""Operating the gateway: Prometheus metrics, readiness, logs and the start-up banner."""
