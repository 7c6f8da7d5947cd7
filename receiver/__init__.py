"""agenttrail.receiver — OTLP in: the gRPC and HTTP transports and the span → step mapping.

Flow: transport (otlp_grpc / otlp_http) → admission (bytes in flight) → mapping pool
(decode + map, in worker processes) → the storage writer → answer only once stored.
"""
