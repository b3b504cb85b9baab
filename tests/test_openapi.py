"""The OpenAPI description is valid and names every route the app serves."""

from __future__ import annotations

import re

from openapi_spec_validator import validate


async def test_openapi_is_valid_and_complete(api):
    status, spec = await api.call("GET", "/api/openapi.json")
    assert status == 200
    validate(spec)
    described = {(method.upper(), path) for path, ops in spec["paths"].items() for method in ops}
    served = set()
    for route in api.app.router.routes():
        info = route.resource.get_info() if route.resource else {}
        path = info.get("path") or info.get("formatter")
        if path and path.startswith("/api/") and route.method != "HEAD":
            served.add((route.method, path))
    assert served == described
    for path, ops in spec["paths"].items():
        for op in ops.values():
            names = {p["name"] for p in op.get("parameters", []) if p["in"] == "path"}
            assert names == set(re.findall(r"\{(\w+)\}", path))
    create = spec["paths"]["/api/meetings"]["post"]
    schema = spec["components"]["schemas"]["MeetingCreate"]
    assert create["requestBody"]["content"]["application/json"]["schema"]["$ref"].endswith(
        "/MeetingCreate"
    )
    assert schema["properties"]["title"]["maxLength"] == 200
    assert "422" in create["responses"] and "201" in create["responses"]
