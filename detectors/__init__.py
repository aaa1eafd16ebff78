"""Statistics only: drift tests, reference profiles, data quality and performance metrics."""
