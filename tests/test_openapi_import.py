"""`sayso import openapi`: OpenAPI 3.0 and 3.1 documents become actions, operations and an http
system; what the workspace already has is kept; bad documents get errors that name the problem."""

from __future__ import annotations

import json
import tomllib
from pathlib import Path
from typing import Any

import pytest
import yaml

from sayso import Workspace
from sayso.errors import WorkspaceError
from sayso.openapi import import_openapi

from .conftest import sayso

DOCUMENT = """\
openapi: 3.0.3
info: {title: Acme Orders, version: "2.1"}
servers:
  - url: https://{region}.api.acme.example/v2
    variables:
      region: {default: eu}
paths:
  /orders:
    get:
      operationId: listOrders
      summary: List orders
      description: A long description that is not used, since the summary says it.
      parameters:
        - $ref: "#/components/parameters/Status"
        - {name: placed_after, in: query, schema: {type: string, format: date}}
        - {name: ids, in: query, schema: {type: array, items: {type: integer}}}
        - {name: X-Tenant, in: header, required: true, schema: {type: string}}
        - {name: Accept, in: header, schema: {type: string}}
        - {name: session, in: cookie, schema: {type: string}}
      responses:
        "200":
          description: ok
          content:
            application/json:
              schema:
                type: object
                properties:
                  data: {type: array, items: {$ref: "#/components/schemas/Order"}}
                  next: {type: string}
    post:
      operationId: createOrder
      description: |
        Place an order.
        Second line.
      requestBody:
        $ref: "#/components/requestBodies/NewOrder"
      responses:
        "201":
          description: made
          content:
            application/json:
              schema: {$ref: "#/components/schemas/Order"}
  /orders/{orderId}:
    parameters:
      - {name: orderId, in: path, required: true, description: The order, schema: {type: string}}
    get:
      responses: {"200": {description: ok}}
    delete:
      operationId: cancel-order
      deprecated: true
      responses: {"204": {description: gone}}
    patch:
      operationId: updateOrder
      requestBody:
        content:
          application/merge-patch+json:
            schema:
              allOf:
                - $ref: "#/components/schemas/Editable"
                - type: object
                  properties:
                    when: {type: string, format: date-time}
      responses: {"200": {description: ok}}
  /uploads:
    post:
      operationId: upload
      requestBody:
        content:
          multipart/form-data:
            schema: {type: object, properties: {file: {type: string, format: binary}}}
      responses: {"200": {description: ok}}
components:
  parameters:
    Status:
      name: status
      in: query
      description: Only orders in this state
      schema: {type: string, enum: [open, shipped], default: open}
  requestBodies:
    NewOrder:
      required: true
      content:
        application/json:
          schema: {$ref: "#/components/schemas/NewOrder"}
  schemas:
    Order:
      type: object
      properties:
        id: {type: string, readOnly: true}
        customerName: {type: string}
        total: {type: number}
    NewOrder:
      type: object
      required: [customerName, lines]
      properties:
        id: {type: string, readOnly: true}
        customerName: {type: string, description: Who buys}
        lines: {type: array, items: {type: object, properties: {sku: {type: string}}}}
        priority: {type: integer, enum: [1, 2, 3]}
        express: {type: boolean, default: false}
        json: {type: string}
    Editable:
      type: object
      properties:
        note: {type: string, nullable: true}
  securitySchemes:
    bearer: {type: http, scheme: bearer}
    key: {type: apiKey, in: header, name: X-Acme-Key}
    machine:
      type: oauth2
      flows:
        clientCredentials:
          tokenUrl: https://auth.acme.example/oauth/token
          scopes: {orders:read: read, orders:write: write}
"""


def workspace(tmp_path: Path) -> Path:
    root = tmp_path / "ws"
    Workspace.init(root)
    return root


def spec_file(tmp_path: Path, text: str = DOCUMENT, name: str = "acme.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def loaded(path: Path) -> Any:
    return yaml.safe_load(path.read_text())


def test_a_3_0_document_becomes_actions_operations_and_a_system(tmp_path: Path) -> None:
    root = workspace(tmp_path)
    before = (root / "sayso.toml").read_text()
    done = import_openapi(str(spec_file(tmp_path)), root, prefix="acme")
    assert done.skipped == ["POST /uploads: its request body is multipart/form-data, not JSON"]
    assert done.actions == ["acme.list_orders", "acme.create_order", "acme.get_orders_order_id",
                            "acme.cancel_order", "acme.update_order"]

    actions = {a["name"]: a for a in loaded(root / "actions" / "acme.yaml")["actions"]}
    listed = actions["acme.list_orders"]
    assert (listed["kind"], listed["risk"], listed["description"]) == ("read", "none", "List orders")
    assert listed["params"] == {
        "status": {"type": "string", "enum": ["open", "shipped"], "default": "open",
                   "description": "Only orders in this state"},
        "placed_after": {"type": "date"},
        "ids": {"type": "array"},
        "x_tenant": {"type": "string", "required": True},
    }
    created = actions["acme.create_order"]
    assert (created["kind"], created["risk"]) == ("write", "medium")
    assert created["description"] == "Place an order. Second line."
    assert created["params"] == {
        "customer_name": {"type": "string", "required": True, "description": "Who buys"},
        "lines": {"type": "string", "required": True, "description": "(JSON)"},
        "priority": {"type": "integer", "enum": [1, 2, 3]},
        "express": {"type": "boolean", "default": False},
        "json_": {"type": "string"},  # `json` would shadow pydantic's BaseModel.json
    }
    assert actions["acme.get_orders_order_id"]["params"] == {
        "order_id": {"type": "string", "required": True, "description": "The order"}}
    cancelled = actions["acme.cancel_order"]
    assert (cancelled["risk"], cancelled["description"]) == ("critical", "(deprecated) DELETE /orders/{orderId}")
    assert actions["acme.update_order"]["params"] == {
        "order_id": {"type": "string", "required": True, "description": "The order"},
        "note": {"type": "string"}, "when": {"type": "datetime"}}

    operations = loaded(root / "operations" / "acme.yaml")["operations"]
    assert operations["list_orders"] == {
        "kind": "read", "method": "GET", "path": "/orders",
        "params": {"status": "query", "placed_after": "query", "ids": {"in": "query", "items": "integer"},
                   "x_tenant": {"in": "header", "name": "X-Tenant"}},
        "record": {"type": "Order", "id": "id", "title": "customerName", "items": "data"},
    }
    assert operations["create_order"]["params"] == {
        "customer_name": {"in": "body", "name": "customerName"}, "lines": {"in": "body", "json": True},
        "priority": "body", "express": "body", "json_": {"in": "body", "name": "json"}}
    assert operations["create_order"]["record"] == {"type": "Order", "id": "id", "title": "customerName"}
    assert operations["cancel_order"] == {"kind": "write", "method": "DELETE", "path": "/orders/{orderId}",
                                          "params": {"order_id": {"in": "path", "name": "orderId"}}}

    toml = (root / "sayso.toml").read_text()
    assert toml.startswith(before)  # the user's file is appended to, never rewritten
    system = tomllib.loads(toml)["systems"]["acme"]
    assert system == {"kind": "http", "base_url": "https://eu.api.acme.example/v2",
                      "allowed_hosts": ["eu.api.acme.example", "auth.acme.example"],
                      "operations": "operations/acme.yaml"}
    for hint in ('# bearer_secret = "acme_token"', '# api_key_header = "X-Acme-Key"',
                 '# token_url = "https://auth.acme.example/oauth/token"', '# scopes = ["orders:read", "orders:write"]',
                 "# honours_idempotency_key = true"):
        assert hint in toml

    ws = Workspace.load(root)
    try:
        assert ws.check() == []
        assert ws.catalog.get("acme.create_order").validate(
            {"customer_name": "Ann", "lines": '[{"sku": "A1"}]', "priority": 2}) is not None
    finally:
        ws.close()


def test_base_url_option_and_default_prefix(tmp_path: Path) -> None:
    root = workspace(tmp_path)
    done = import_openapi(str(spec_file(tmp_path)), root, base_url="https://staging.acme.example/v2")
    assert done.prefix == "acme_orders"  # from the title
    system = tomllib.loads((root / "sayso.toml").read_text())["systems"]["acme_orders"]
    assert system["base_url"] == "https://staging.acme.example/v2"
    assert system["allowed_hosts"][0] == "staging.acme.example"


def test_importing_twice_is_refused_unless_forced(tmp_path: Path) -> None:
    root = workspace(tmp_path)
    spec = spec_file(tmp_path)
    import_openapi(str(spec), root, prefix="acme")
    toml = (root / "sayso.toml").read_text()
    with pytest.raises(WorkspaceError, match=r"actions/acme.yaml already exists \(imported before\?\); use --force"):
        import_openapi(str(spec), root, prefix="acme")
    (root / "actions" / "acme.yaml").write_text("actions: []\n")
    done = import_openapi(str(spec), root, prefix="acme", force=True)
    assert not done.toml_added
    assert (root / "sayso.toml").read_text() == toml  # the system is there: not added twice
    assert len(loaded(root / "actions" / "acme.yaml")["actions"]) == 5


def test_a_3_1_document_from_fastapi(tmp_path: Path) -> None:
    pytest.importorskip("fastapi", reason="the document comes from a FastAPI app: pip install 'sayso[serve]'")
    from .test_http_connector import Store, make_app

    document = make_app(Store()).openapi()
    assert document["openapi"].startswith("3.1")
    root = workspace(tmp_path)
    spec = spec_file(tmp_path, json.dumps(document), "pets.json")
    import_openapi(str(spec), root, prefix="pets", base_url="https://pets.example")
    actions = {a["name"]: a for a in loaded(root / "actions" / "pets.yaml")["actions"]}
    assert actions["pets.create_pet"]["params"] == {
        "name": {"type": "string", "required": True, "description": "Name"},
        "tag": {"type": "string", "description": "Tag"},  # anyOf [string, null]: an optional string
        "status": {"type": "string", "enum": ["available", "sold"], "default": "available", "description": "Status"},
    }
    assert actions["pets.list_pets"]["params"]["limit"] == {"type": "integer", "default": 20, "description": "Limit"}
    operations = loaded(root / "operations" / "pets.yaml")["operations"]
    assert operations["list_pets"]["record"] == {"type": "Pet", "id": "id", "title": "name"}


@pytest.mark.parametrize(("text", "expected"), [
    ('{"swagger": "2.0", "paths": {}}', "this is Swagger 2.0; only OpenAPI 3.0 and 3.1 are read"),
    ("openapi: [unclosed", r"acme.yaml:1: not valid YAML"),
    ('{"openapi": "3.0.0", ', "not valid JSON"),
    ("info: {title: x}\n", "not an OpenAPI 3 document: it has no `openapi: 3.x` field"),
    ("openapi: 3.1.0\ninfo: {title: x}\n", "the document has no paths"),
    ("openapi: 3.0.0\nservers: [{url: 'https://x.example'}]\npaths:\n  /a:\n    get:\n"
     "      parameters: [{$ref: 'other.yaml#/P'}]\n",
     r"\$ref 'other.yaml#/P' points outside the document"),
    ("openapi: 3.0.0\nservers: [{url: 'https://x.example'}]\npaths:\n  /a:\n    get:\n"
     "      parameters: [{$ref: '#/components/parameters/Nope'}]\n",
     r"\$ref '#/components/parameters/Nope' does not resolve"),
    ("openapi: 3.0.0\npaths:\n  /a:\n    get: {}\n", "the document names no server; give the API's address with "
     "--base-url"),
], ids=["swagger", "yaml", "json", "no-openapi", "no-paths", "external-ref", "missing-ref", "no-server"])
def test_bad_documents_say_what_is_wrong(tmp_path: Path, text: str, expected: str) -> None:
    root = workspace(tmp_path)
    toml = (root / "sayso.toml").read_text()
    with pytest.raises(WorkspaceError, match=expected):
        import_openapi(str(spec_file(tmp_path, text)), root, prefix="acme")
    assert (root / "sayso.toml").read_text() == toml
    assert not (root / "actions" / "acme.yaml").exists()


def test_the_command_line(tmp_path: Path) -> None:
    root = workspace(tmp_path)
    spec = spec_file(tmp_path)
    done = sayso(root, "import", "openapi", str(spec), "--prefix", "acme")
    assert done.returncode == 0, done.stderr
    assert "Imported 5 actions as acme.*" in done.stdout
    assert "added [systems.acme] to sayso.toml: base_url https://eu.api.acme.example/v2" in done.stdout
    assert "skipped POST /uploads: its request body is multipart/form-data, not JSON" in done.stdout
    again = sayso(root, "import", "openapi", str(spec), "--prefix", "acme")
    assert again.returncode == 3 and "use --force" in again.stderr
    bad = sayso(root, "import", "openapi", str(tmp_path / "missing.yaml"), "--prefix", "other")
    assert bad.returncode == 3 and "missing.yaml: no such file" in bad.stderr
    wrong = sayso(root, "import", "openapi", str(spec), "--prefix", "Bad-Name")
    assert wrong.returncode == 3 and "the prefix 'Bad-Name' must be lowercase" in wrong.stderr
