"""The server edge: the domain's answers in the driver's wire format, and ErrorKind → gRPC status.

Nothing below the server builds protobuf or knows a status code; this module is where both happen.
"""

from __future__ import annotations

from collections.abc import Sequence

import grpc

from provider._proto import v1alpha1_pb2 as pb
from provider.errors import ErrorKind
from provider.files import ObjectRecord, SecretFile, VersionKey
from provider.output import assemble, check_size

STATUS_CODES: dict[ErrorKind, grpc.StatusCode] = {
    ErrorKind.INVALID_ARGUMENT: grpc.StatusCode.INVALID_ARGUMENT,
    ErrorKind.UNAUTHENTICATED: grpc.StatusCode.UNAUTHENTICATED,
    ErrorKind.PERMISSION_DENIED: grpc.StatusCode.PERMISSION_DENIED,
    ErrorKind.NOT_FOUND: grpc.StatusCode.NOT_FOUND,
    ErrorKind.UNAVAILABLE: grpc.StatusCode.UNAVAILABLE,
    ErrorKind.DEADLINE_EXCEEDED: grpc.StatusCode.DEADLINE_EXCEEDED,
    ErrorKind.RESOURCE_EXHAUSTED: grpc.StatusCode.RESOURCE_EXHAUSTED,
    ErrorKind.UNIMPLEMENTED: grpc.StatusCode.UNIMPLEMENTED,
    ErrorKind.INTERNAL: grpc.StatusCode.INTERNAL,
}


def status_code(kind: ErrorKind) -> grpc.StatusCode:
    return STATUS_CODES[kind]


def build_response(
    files: Sequence[SecretFile], default_mode: int, key: VersionKey
) -> tuple[pb.MountResponse, list[ObjectRecord]]:
    """Check the file set and turn it into the driver's MountResponse, plus what to audit."""
    checked = assemble(files, default_mode, key)
    response = pb.MountResponse(
        files=[pb.File(path=f.path, mode=mode, contents=f.contents) for f, mode in checked.files],
        object_version=[pb.ObjectVersion(id=i, version=v) for i, v in checked.versions.items()],
    )
    check_size(response.ByteSize(), checked.records)
    return response, checked.records
