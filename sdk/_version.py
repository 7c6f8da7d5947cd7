"""The SDK version reported as the tracer's instrumentation-scope version."""

VERSION = "0.1.0"
