"""The http connector against a real HTTP service on loopback (FastAPI on Uvicorn) that stores what
it receives and serves its own OpenAPI document: imported with `sayso import openapi`, then driven
through `sayso do`. Auth (bearer, API key, OAuth2 client credentials), the host allow-list, error
statuses, secret masking, and a crash after the effect."""

from __future__ import annotations

import base64
import http.server
import json
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Literal

import pytest

pytest.importorskip("httpx", reason="the http connector needs its extra: pip install 'sayso[http]'")
pytest.importorskip("fastapi", reason="the test service needs FastAPI: pip install 'sayso[serve]'")
pytest.importorskip("uvicorn", reason="the test service needs Uvicorn: pip install 'sayso[serve]'")

from fastapi import FastAPI, Request, Response  # noqa: E402
from fastapi.responses import JSONResponse, RedirectResponse  # noqa: E402
from pydantic import BaseModel  # noqa: E402

from sayso import Workspace  # noqa: E402
from sayso.connectors import Guarantee  # noqa: E402
from sayso.connectors.http import HttpStatusError, HttpSystem  # noqa: E402
from sayso.errors import ConfigurationError, ConnectorError, WorkspaceError  # noqa: E402
from sayso.openapi import import_openapi  # noqa: E402

from .conftest import _OPEN, NOW, sayso, sayso_json  # noqa: E402
from .servers import serving  # noqa: E402

BEARER = "bearer-7f3a9c-secret"
API_KEY = "apikey-51d0e2-secret"
CLIENT_SECRET = "client-9b8e7d-secret"
DIRECTORY = """\
people:
  - {id: alice, name: Alice Moreno, email: alice@example.com, role: admin, timezone: UTC}
channels: []
"""


class Pet(BaseModel):
    id: int
    name: str
    tag: str | None = None
    status: str = "available"


class NewPet(BaseModel):
    name: str
    tag: str | None = None
    status: Literal["available", "sold"] = "available"


class PetChange(BaseModel):
    name: str | None = None
    status: Literal["available", "sold"] | None = None


class Store:
    """What the service holds and saw: pets, every request's headers, answers by Idempotency-Key."""

    def __init__(self) -> None:
        self.pets: dict[int, dict[str, Any]] = {1: {"id": 1, "name": "Rex", "tag": "dog", "status": "available"}}
        self.next_id = 2
        self.seen: list[dict[str, Any]] = []
        self.answers: dict[str, dict[str, Any]] = {}
        self.auth: str | None = None  # None, "bearer", "api_key" or "oauth"
        self.tokens: list[str] = []  # tokens issued; the valid ones
        self.token_requests: list[dict[str, Any]] = []
        self.redirect_to = ""


def make_app(store: Store) -> FastAPI:
    app = FastAPI(title="Pet Store", version="1.0.0", servers=[{"url": "/"}])

    @app.middleware("http")
    async def remember(request: Request, call_next: Any) -> Any:
        body = await request.body()
        store.seen.append({"method": request.method, "path": request.url.path, "query": str(request.url.query),
                           "headers": dict(request.headers), "body": body.decode()})
        if request.url.path not in ("/token", "/openapi.json") and store.auth is not None:
            given = request.headers.get("authorization", "") if store.auth != "api_key" else \
                request.headers.get("x-api-key", "")
            valid = {"bearer": [f"Bearer {BEARER}"], "api_key": [API_KEY],
                     "oauth": [f"Bearer {t}" for t in store.tokens]}[store.auth]
            if given not in valid:  # a careless service: it repeats the credential it got
                return JSONResponse({"detail": f"bad credentials {given!r}"}, status_code=401)
        return await call_next(request)

    @app.get("/pets", operation_id="listPets", summary="List pets", response_model=list[Pet])
    def list_pets(status: Literal["available", "sold"] | None = None, limit: int = 20) -> list[dict[str, Any]]:
        pets = [p for p in store.pets.values() if status is None or p["status"] == status]
        return pets[:limit]

    @app.get("/pets/{pet_id}", operation_id="getPet", summary="One pet", response_model=Pet)
    def get_pet(pet_id: int) -> Any:
        return store.pets.get(pet_id) or JSONResponse({"detail": "no such pet"}, status_code=404)

    @app.post("/pets", operation_id="createPet", summary="Add a pet", status_code=201, response_model=Pet)
    def create_pet(pet: NewPet, request: Request) -> dict[str, Any]:
        key = request.headers.get("idempotency-key")
        if key and key in store.answers:  # the same key again: the first answer, nothing new
            return store.answers[key]
        made = {"id": store.next_id, **pet.model_dump()}
        store.pets[store.next_id] = made
        store.next_id += 1
        if key:
            store.answers[key] = made
        return made

    @app.patch("/pets/{pet_id}", operation_id="updatePet", summary="Change a pet", response_model=Pet)
    def update_pet(pet_id: int, change: PetChange) -> Any:
        if pet_id not in store.pets:
            return JSONResponse({"detail": "no such pet"}, status_code=404)
        store.pets[pet_id].update(change.model_dump(exclude_none=True))
        return store.pets[pet_id]

    @app.delete("/pets/{pet_id}", operation_id="deletePet", summary="Remove a pet", status_code=204)
    def delete_pet(pet_id: int) -> Response:
        store.pets.pop(pet_id, None)
        return Response(status_code=204)

    @app.get("/boom", operation_id="boom", summary="Always fails")
    def boom(request: Request) -> JSONResponse:
        said = request.headers.get("authorization", "")
        return JSONResponse({"error": "database on fire", "you_sent": said, "trace": "x" * 2000}, status_code=500)

    @app.get("/moved", operation_id="moved", summary="Moved elsewhere")
    def moved() -> RedirectResponse:
        return RedirectResponse(store.redirect_to, status_code=302)

    @app.get("/slow", operation_id="slow", summary="Answers late")
    def slow() -> list[Any]:
        time.sleep(1.0)
        return []

    @app.post("/slow", operation_id="slowWrite", summary="Takes a write and answers late")
    def slow_write() -> dict[str, Any]:
        time.sleep(1.0)
        return {}

    @app.post("/token", include_in_schema=False)
    async def token(request: Request) -> JSONResponse:
        form = dict((await request.form()).items())
        store.token_requests.append({"form": form, "authorization": request.headers.get("authorization", "")})
        expected = "Basic " + base64.b64encode(f"sayso-client:{CLIENT_SECRET}".encode()).decode()
        if request.headers.get("authorization") != expected or form.get("grant_type") != "client_credentials":
            return JSONResponse({"error": "invalid_client"}, status_code=401)
        issued = f"tok-{len(store.token_requests)}"
        store.tokens.append(issued)
        return JSONResponse({"access_token": issued, "token_type": "Bearer", "expires_in": 3600})

    return app


class Service:
    def __init__(self, url: str, store: Store) -> None:
        self.url = url
        self.store = store

    def posts(self) -> list[dict[str, Any]]:
        return [s for s in self.store.seen if s["method"] == "POST" and s["path"] == "/pets"]


@pytest.fixture
def service() -> Iterator[Service]:
    store = Store()
    with serving(make_app(store)) as url:
        yield Service(url, store)


class Elsewhere:
    """A second service: counts every request that reaches it."""

    def __init__(self) -> None:
        self.hits = 0
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 - the stdlib's name
                outer.hits += 1
                self.send_response(200)
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def elsewhere() -> Iterator[Elsewhere]:
    other = Elsewhere()
    yield other
    other.close()


def imported(root: Path, service: Service, *settings: str, cli: bool = False) -> Path:
    """A workspace with the service's OpenAPI document imported as system ``pets`` (by the command
    line, or the function behind it), ``settings`` lines appended to its [systems.pets] table, and a
    secrets file."""
    Workspace.init(root)
    (root / "directory.yaml").write_text(DIRECTORY)
    if cli:
        done = sayso(root, "import", "openapi", f"{service.url}/openapi.json", "--prefix", "pets", check=True)
        assert "Imported 9 actions as pets.*" in done.stdout, done.stdout
    else:
        import_openapi(f"{service.url}/openapi.json", root, prefix="pets")
    (root / "secrets.toml").write_text(f'pets_token = "{BEARER}"\npets_api_key = "{API_KEY}"\n'
                                       f'pets_client_secret = "{CLIENT_SECRET}"\n')
    toml = (root / "sayso.toml").read_text().replace("[catalog]", '[secrets]\nfile = "secrets.toml"\n\n[catalog]')
    (root / "sayso.toml").write_text(toml + "".join(f"{line}\n" for line in settings))
    return root


def connector(root: Path) -> HttpSystem:
    ws = Workspace.load(root)
    _OPEN.append(ws)  # closed when the test ends (conftest)
    system = ws.connector("pets")
    assert isinstance(system, HttpSystem)
    return system


def do(root: Path, action: str, args: dict[str, Any], env: dict[str, str] | None = None) -> dict[str, Any]:
    _, result = sayso_json(root, "do", "--user", "alice", "--action", action, "--args", json.dumps(args),
                           "--now", NOW, env=env)
    return result


def test_import_then_reads_and_writes_through_sayso_do(tmp_path: Path, service: Service) -> None:
    root = imported(tmp_path / "ws", service, cli=True)
    assert (root / "operations" / "pets.yaml").exists()
    assert sayso(root, "check").returncode == 0

    listed = do(root, "pets.list_pets", {"status": "available"})
    assert listed["status"] == "answered", listed
    [rex] = listed["steps"][0]["records"]
    assert (rex["type"], rex["id"], rex["title"], rex["tag"]) == ("Pet", "1", "Rex", "dog")
    assert service.store.seen[-1]["query"] == "status=available&limit=20"  # the document's default, kept

    made = do(root, "pets.create_pet", {"name": "Tom", "tag": "cat"})
    assert made["status"] == "executed", made
    assert made["steps"][0]["effect"]["result"] == {"status": 201, "id": 2}
    [post] = service.posts()
    assert json.loads(post["body"]) == {"name": "Tom", "tag": "cat", "status": "available"}
    assert post["headers"]["idempotency-key"].startswith("sk_")
    assert post["headers"]["x-sayso-asked-by"] == "alice"
    assert service.store.pets[2]["name"] == "Tom"

    changed = do(root, "pets.update_pet", {"pet_id": 2, "status": "sold"})  # medium: runs and shows the change
    assert changed["status"] == "executed", changed
    assert service.store.pets[2]["status"] == "sold"

    refused = do(root, "pets.delete_pet", {"pet_id": 1})  # DELETE is critical: refused, nothing sent
    assert refused["status"] == "denied"
    assert 1 in service.store.pets
    assert not [s for s in service.store.seen if s["method"] == "DELETE"]
    assert connector(root).guarantee is Guarantee.AT_LEAST_ONCE


def test_error_status_is_a_failure_with_the_status_and_no_secret(tmp_path: Path, service: Service) -> None:
    root = imported(tmp_path / "ws", service, 'bearer_secret = "pets_token"')
    done = sayso(root, "do", "--user", "alice", "--action", "pets.boom", "--args", "{}", "--now", NOW, "--json")
    result = json.loads(done.stdout)
    assert result["status"] == "failed", result
    message = json.dumps(result)
    assert "answered 500 Internal Server Error" in message and "database on fire" in message
    assert BEARER not in message and "***" in message
    assert len(result["error"]["message"]) < 600  # the body is trimmed
    audit = sayso(root, "audit", "list", "--json").stdout
    assert BEARER not in audit

    system = connector(root)
    with pytest.raises(HttpStatusError) as missing:
        system.execute("update_pet", {"pet_id": 99, "status": "sold"}, key="k-404")
    assert missing.value.status == 404 and "no such pet" in missing.value.message


def test_bearer_and_api_key_headers(tmp_path: Path, service: Service) -> None:
    service.store.auth = "bearer"
    root = imported(tmp_path / "bearer", service, 'bearer_secret = "pets_token"')
    assert [r.title for r in connector(root).read("list_pets", {})] == ["Rex"]
    assert service.store.seen[-1]["headers"]["authorization"] == f"Bearer {BEARER}"
    assert BEARER not in repr(connector(root))

    service.store.auth = "api_key"
    root = imported(tmp_path / "key", service, 'api_key_header = "X-API-Key"', 'api_key_secret = "pets_api_key"')
    assert [r.title for r in connector(root).read("list_pets", {})] == ["Rex"]
    assert service.store.seen[-1]["headers"]["x-api-key"] == API_KEY

    (root / "secrets.toml").write_text('pets_api_key = "wrong-key-0000"\n')
    with pytest.raises(HttpStatusError) as refused:
        connector(root).read("list_pets", {})
    assert refused.value.status == 401
    assert "wrong-key-0000" not in refused.value.message and "bad credentials '***'" in refused.value.message


def test_oauth2_client_credentials_token_is_fetched_cached_and_renewed(tmp_path: Path, service: Service) -> None:
    service.store.auth = "oauth"
    root = imported(tmp_path / "ws", service, f'token_url = "{service.url}/token"', 'client_id = "sayso-client"',
                    'client_secret_secret = "pets_client_secret"', 'scopes = ["pets:read", "pets:write"]')
    system = connector(root)
    assert len(system.read("list_pets", {})) == 1
    system.execute("create_pet", {"name": "Tom"}, key="k-oauth")
    assert len(service.store.token_requests) == 1  # one token for both calls
    [asked] = service.store.token_requests
    assert asked["form"] == {"grant_type": "client_credentials", "scope": "pets:read pets:write"}
    assert service.posts()[0]["headers"]["authorization"] == "Bearer tok-1"

    service.store.tokens.clear()  # the service revokes it: one new token, one more try
    assert len(system.read("list_pets", {})) == 2
    assert len(service.store.token_requests) == 2

    (root / "secrets.toml").write_text('pets_client_secret = "not-the-secret-1234"\n')
    service.store.tokens.clear()
    with pytest.raises(HttpStatusError, match="the token endpoint answered 401") as failed:
        connector(root).read("list_pets", {})
    assert "not-the-secret-1234" not in failed.value.message


def test_hosts_not_allowed_are_refused_before_anything_is_sent(
    tmp_path: Path, service: Service, elsewhere: Elsewhere
) -> None:
    root = imported(tmp_path / "ws", service)
    system = connector(root)
    service.store.redirect_to = f"http://localhost:{elsewhere.port}/pets"
    with pytest.raises(ConnectorError, match="refused to send GET to localhost, which is not in allowed_hosts"):
        system.read("moved", {})
    assert elsewhere.hits == 0

    service.store.redirect_to = f"{service.url}/pets"  # a redirect to an allowed host is followed (reads only)
    assert [r.attrs["name"] for r in system.read("moved", {})] == ["Rex"]

    toml = (root / "sayso.toml").read_text()
    (root / "sayso.toml").write_text(toml.replace('allowed_hosts = ["127.0.0.1"]', 'allowed_hosts = ["localhost"]'))
    with pytest.raises(ConfigurationError, match=r"the host of `base_url` \(127.0.0.1\) is not in allowed_hosts"):
        connector(root)
    (root / "sayso.toml").write_text(toml + f'token_url = "http://localhost:{elsewhere.port}/token"\n'
                                     'client_id = "c"\nclient_secret_secret = "pets_client_secret"\n')
    with pytest.raises(ConfigurationError, match=r"the host of `token_url` \(localhost\) is not in allowed_hosts"):
        connector(root)
    (root / "sayso.toml").write_text(toml.replace(service.url, "http://api.pets.example")
                                     .replace('"127.0.0.1"', '"api.pets.example"'))
    with pytest.raises(ConfigurationError, match="plain http to api.pets.example; use https"):
        connector(root)
    assert elsewhere.hits == 0


def test_timeouts_are_connector_errors(tmp_path: Path, service: Service) -> None:
    root = imported(tmp_path / "ws", service, "timeout = 0.2")
    system = connector(root)
    with pytest.raises(ConnectorError, match=r"pets.slow: GET /slow timed out$"):
        system.read("slow", {})
    with pytest.raises(ConnectorError, match=r"POST /slow timed out \(it may or may not have taken effect"):
        system.execute("slow_write", {}, key="k-slow")


def test_retry_with_the_same_key_is_deduped_by_an_api_that_honours_it(tmp_path: Path, service: Service) -> None:
    root = imported(tmp_path / "ws", service, "honours_idempotency_key = true")
    system = connector(root)
    assert system.guarantee is Guarantee.IDEMPOTENT
    first = system.execute("create_pet", {"name": "Tom"}, key="k-same")
    again = system.execute("create_pet", {"name": "Tom"}, key="k-same")
    assert first.result == again.result == {"status": 201, "id": 2}
    assert len(service.store.pets) == 2 and len(service.posts()) == 2
    assert system.lookup("k-same") is None  # nothing to ask: the retry itself is safe


def test_crash_after_effect_then_recover_leaves_one_pet(tmp_path: Path, service: Service) -> None:
    root = imported(tmp_path / "ws", service, "honours_idempotency_key = true")
    crashed = sayso(root, "do", "--user", "alice", "--action", "pets.create_pet", "--args", '{"name": "Crash"}',
                    "--now", NOW, env={"SAYSO_FAULT": "crash-after-effect"})
    assert crashed.returncode == 137, crashed.stderr
    assert [p["name"] for p in service.store.pets.values()] == ["Rex", "Crash"]  # it happened, unrecorded

    code, recovered = sayso_json(root, "recover", "--now", NOW)
    assert code == 0
    [plan] = recovered["recovered"]
    assert plan["steps"][0]["status"] == "executed"
    assert [p["name"] for p in service.store.pets.values()] == ["Rex", "Crash"]  # sent again, deduped
    first, second = service.posts()
    assert first["headers"]["idempotency-key"] == second["headers"]["idempotency-key"]
    code, again = sayso_json(root, "recover", "--now", NOW)
    assert again["recovered"] == []
    assert len(service.store.pets) == 2


def test_without_the_header_promise_a_crash_is_reported_not_repeated(tmp_path: Path, service: Service) -> None:
    root = imported(tmp_path / "ws", service)
    crashed = sayso(root, "do", "--user", "alice", "--action", "pets.create_pet", "--args", '{"name": "Crash"}',
                    "--now", NOW, env={"SAYSO_FAULT": "crash-after-effect"})
    assert crashed.returncode == 137
    code, recovered = sayso_json(root, "recover", "--now", NOW)
    assert recovered["recovered"][0]["steps"][0]["status"] == "outcome_unknown"
    assert len(service.posts()) == 1 and len(service.store.pets) == 2


OPS = """\
operations:
  get_pet:
    method: GET
    path: /pets/{petId}
    params:
      pet_id: {in: path, name: petId}
"""


@pytest.mark.parametrize(("operations", "expected"), [
    (OPS.replace("method: GET", "method: FETCH"), r"pets.yaml:3: operation get_pet: method must be one of"),
    (OPS.replace("name: petId", "name: id"), r"the path's \{petId\} is not a parameter with `in: path`"),
    (OPS.replace("in: path", "in: body"), r"is not a parameter with `in: path`"),
    (OPS.replace("in: path", "in: cookie"), r"pets.yaml:6: operation get_pet: parameter pet_id: `in` must be"),
    (OPS.replace("path: /pets/{petId}", "path: https://evil.example/x"), "path must start with /"),
    (OPS + "    colour: blue\n", r"unknown keys \['colour'\]"),
    (OPS + "    params2: {}\n", r"unknown keys \['params2'\]"),
], ids=["method", "placeholder", "location", "bad-in", "absolute-path", "unknown-key", "unknown-key-2"])
def test_operations_file_problems_name_file_and_line(tmp_path: Path, operations: str, expected: str) -> None:
    root = tmp_path / "ws"
    Workspace.init(root)
    (root / "operations").mkdir()
    (root / "operations" / "pets.yaml").write_text(operations)
    with (root / "sayso.toml").open("a") as toml:
        toml.write('\n[systems.pets]\nkind = "http"\nbase_url = "https://api.pets.example"\n'
                   'operations = "operations/pets.yaml"\n')
    with pytest.raises(WorkspaceError, match=expected):
        connector(root)


def test_an_action_must_declare_the_path_parameters(tmp_path: Path) -> None:
    root = tmp_path / "ws"
    Workspace.init(root)
    (root / "operations").mkdir()
    (root / "operations" / "pets.yaml").write_text(OPS)
    (root / "actions" / "pets.yaml").write_text(
        "actions:\n  - name: pets.get\n    kind: read\n    connector: pets\n    operation: get_pet\n"
        "    params:\n      id: {type: integer}\n")
    with (root / "sayso.toml").open("a") as toml:
        toml.write('\n[systems.pets]\nkind = "http"\nbase_url = "https://api.pets.example"\n'
                   'operations = "operations/pets.yaml"\n')
    with pytest.raises(WorkspaceError, match=r"actions/pets.yaml:2: action pets.get does not declare pet_id"):
        connector(root)
