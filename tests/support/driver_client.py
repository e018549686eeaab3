"""A gRPC client channel that behaves like the Secrets Store CSI Driver's provider client, retries included.

The driver dials every provider with one default service config (provider_client.go `ServiceConfig`):
`waitForReady` for `v1alpha1.CSIDriverProvider`, and a retry policy of 3 attempts, backoff 1 s growing by
1.1 up to 10 s, on UNAVAILABLE only. grpcio's client implements the same retry design (gRFC A6), so a
channel built with this config retries exactly when the driver would: only a status that arrives
trailers-only, and only UNAVAILABLE. `localdriver.call_mount` deliberately has no retries (one call, one
attempt), so tests that count attempts use this module.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager

import grpc

from provider._proto import v1alpha1_pb2 as pb
from provider._proto import v1alpha1_pb2_grpc as pb_grpc
from provider.limits import MAX_RESPONSE_BYTES

DRIVER_MAX_ATTEMPTS = 3
# The driver's config, value for value. grpc-go reads the JSON field names without regard to case (the
# driver writes "MaxAttempts"); grpcio's C core wants them as the service-config spec spells them.
DRIVER_SERVICE_CONFIG = {
    "methodConfig": [
        {
            "name": [{"service": "v1alpha1.CSIDriverProvider"}],
            "waitForReady": True,
            "retryPolicy": {
                "maxAttempts": DRIVER_MAX_ATTEMPTS,
                "initialBackoff": "1s",
                "maxBackoff": "10s",
                "backoffMultiplier": 1.1,
                "retryableStatusCodes": ["UNAVAILABLE"],
            },
        }
    ]
}
DRIVER_CHANNEL_OPTIONS: list[tuple[str, object]] = [
    ("grpc.default_authority", "localhost"),
    ("grpc.max_receive_message_length", MAX_RESPONSE_BYTES),
    ("grpc.enable_retries", 1),
    ("grpc.service_config", json.dumps(DRIVER_SERVICE_CONFIG)),
]


@contextmanager
def driver_channel(socket_path: str) -> Iterator[grpc.Channel]:
    """A channel to a provider socket with the driver's options and service config."""
    with grpc.insecure_channel(f"unix:{socket_path}", options=DRIVER_CHANNEL_OPTIONS) as channel:
        yield channel


def driver_mount(socket_path: str, request: pb.MountRequest, timeout: float = 120.0) -> pb.MountResponse:
    """One Mount as the driver makes it: the call may be attempted up to 3 times if the provider says UNAVAILABLE."""
    with driver_channel(socket_path) as channel:
        response: pb.MountResponse = pb_grpc.CSIDriverProviderStub(channel).Mount(request, timeout=timeout)
        return response
