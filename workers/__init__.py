"""The Celery side: the app, thin tasks and beat schedules built from config."""
