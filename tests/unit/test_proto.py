"""provider/_proto must be exactly what `make proto` generates from proto/."""

from __future__ import annotations

from pathlib import Path

from tools.gen_proto import GENERATED_NAMES, ROOT, generate


def test_generated_code_is_current(tmp_path: Path) -> None:
    generate(tmp_path)
    for name in GENERATED_NAMES:
        current = (ROOT / "provider" / "_proto" / name).read_text()
        assert current == (tmp_path / name).read_text(), f"provider/_proto/{name} is stale: run `make proto`"


def test_field_numbers_match_the_driver_contract() -> None:
    from provider._proto import v1alpha1_pb2 as pb

    expected = {
        "MountRequest": {"attributes": 1, "secrets": 2, "target_path": 3, "permission": 4, "current_object_version": 5},
        "MountResponse": {"object_version": 1, "error": 2, "files": 3},
        "File": {"path": 1, "mode": 2, "contents": 3},
        "ObjectVersion": {"id": 1, "version": 2},
        "Error": {"code": 1},
        "VersionRequest": {"version": 1},
        "VersionResponse": {"version": 1, "runtime_name": 2, "runtime_version": 3},
    }
    for message, fields in expected.items():
        descriptor = pb.DESCRIPTOR.message_types_by_name[message]
        assert {f.name: f.number for f in descriptor.fields} == fields
    service = pb.DESCRIPTOR.services_by_name["CSIDriverProvider"]
    assert service.full_name == "v1alpha1.CSIDriverProvider"
    assert sorted(m.name for m in service.methods) == ["Mount", "Version"]
