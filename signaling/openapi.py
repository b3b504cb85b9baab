"""OpenAPI 3.1 description generated from the route table and the pydantic models."""

from __future__ import annotations

import re
from typing import Any

from pydantic import BaseModel
from pydantic.json_schema import models_json_schema

from signaling.routing import Operation, RouteTable
from signaling.schemas import ErrorBody

REF = "#/components/schemas/{model}"
PATH_PARAM = re.compile(r"\{(\w+)\}")


def build_openapi(table: RouteTable, version: str) -> dict[str, Any]:
    models: set[type[BaseModel]] = {ErrorBody}
    for op in table.operations:
        models.update(m for m in (op.body, op.response) if m is not None)
    ordered = sorted(models, key=lambda m: m.__name__)
    _, defs = models_json_schema([(m, "validation") for m in ordered], ref_template=REF)
    paths: dict[str, dict[str, Any]] = {}
    for op in table.operations:
        paths.setdefault(op.path, {})[op.method.lower()] = _operation(op)
    return {
        "openapi": "3.1.0",
        "info": {"title": "Tertulia", "version": version},
        "paths": paths,
        "components": {
            "schemas": defs.get("$defs", {}),
            "securitySchemes": {
                "bearer": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"}
            },
        },
    }


def _ref(model: type[BaseModel]) -> dict[str, str]:
    return {"$ref": REF.format(model=model.__name__)}


def _operation(op: Operation) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "summary": op.summary,
        "tags": [op.tag],
        "operationId": op.handler.__name__,
    }
    params = [
        {"name": name, "in": "path", "required": True, "schema": {"type": "string"}}
        for name in PATH_PARAM.findall(op.path)
    ]
    params += list(op.headers)
    if op.query is not None:
        for field_name, field in op.query.model_fields.items():
            name = field.alias or field_name  # `from`: a Python keyword, a fine parameter
            schema = op.query.model_json_schema()["properties"][name]
            params.append(
                {"name": name, "in": "query", "required": field.is_required(), "schema": schema}
            )
    if params:
        spec["parameters"] = params
    if op.body is not None:
        spec["requestBody"] = {
            "required": True,
            "content": {"application/json": {"schema": _ref(op.body)}},
        }
    if op.auth:
        spec["security"] = [{"bearer": []}]
    responses: dict[str, Any] = {}
    if op.response is not None:
        responses[str(op.status)] = {
            "description": "success",
            "content": {op.content_type: {"schema": _ref(op.response)}},
        }
    else:
        responses[str(op.status)] = {"description": "success"}
    errors = set(op.errors)
    if op.auth:
        errors |= {401, 403}
    if op.body is not None:
        errors |= {400, 408, 413, 415, 422}
    if op.query is not None:
        errors |= {422}
    for status in sorted(errors):
        responses[str(status)] = {
            "description": "error",
            "content": {"application/json": {"schema": _ref(ErrorBody)}},
        }
    spec["responses"] = responses
    return spec
