"""modelrelease-operator: pin, verify and roll out registered models on Kubernetes."""

__version__ = "0.1.0"
