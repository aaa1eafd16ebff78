-- The MLflow server keeps its tracking and registry data in its own database.
CREATE DATABASE mlflow OWNER retrain;
