"""The one Logger, Tracer and Metrics of PatchPilot (service name and namespace come from POWERTOOLS_* env vars)."""

from aws_lambda_powertools import Logger, Metrics, Tracer

logger = Logger()
tracer = Tracer()
metrics = Metrics()
