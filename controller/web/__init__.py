"""The console: a fleet dashboard in the browser, a JSON API with tokens, and Prometheus metrics."""
