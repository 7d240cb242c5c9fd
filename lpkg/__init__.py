"""lpkg: package AWS Lambda Python functions and prove, before deploy, that they import."""

__version__ = "0.1.0"
