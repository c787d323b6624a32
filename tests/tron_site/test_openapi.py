"""Both OpenAPI documents are valid OpenAPI 3.1, every reference in them resolves, and every operation
lists the errors it gives; the internal endpoints and the webhooks serve none."""

import pytest
from openapi_spec_validator import validate

pytestmark = pytest.mark.django_db

DOCUMENTS = ["/api/openapi.json", "/v1/openapi.json"]


def references(node):
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "$ref":
                yield value
            else:
                yield from references(value)
    elif isinstance(node, list):
        for item in node:
            yield from references(item)


def resolve(document: dict, ref: str):
    assert ref.startswith("#/"), ref
    node = document
    for part in ref[2:].split("/"):
        node = node[part.replace("~1", "/").replace("~0", "~")]
    return node


@pytest.mark.parametrize("url", DOCUMENTS)
def test_the_document_is_valid_openapi_and_every_reference_resolves(client, url):
    document = client.get(url).json()
    validate(document)
    refs = set(references(document))
    assert refs  # the schemas are referred to, not pasted
    for ref in refs:
        resolve(document, ref)


@pytest.mark.parametrize("url", DOCUMENTS)
def test_every_operation_lists_its_errors_in_the_envelope(client, url):
    document = client.get(url).json()
    for path, operations in document["paths"].items():
        for method, operation in operations.items():
            errors = {code: r for code, r in operation["responses"].items() if code.startswith(("4", "5"))}
            assert "401" in errors, (method, path)  # every one is behind a key when one is set
            for response in errors.values():
                schema = response["content"]["application/json"]["schema"]
                # One of them (the life-loop trigger's 400) may also be the seed's own help body.
                envelope = next(s for s in schema.get("oneOf", [schema]) if "$ref" in s)
                assert resolve(document, envelope["$ref"])["required"] == ["error"]


def test_the_chat_request_body_is_the_validating_model_with_its_parts(client):
    document = client.get("/v1/openapi.json").json()
    body = document["paths"]["/v1/chat/completions"]["post"]["requestBody"]["content"]["application/json"]
    schema = resolve(document, body["schema"]["$ref"])
    assert schema["required"] == ["messages"]
    message = resolve(document, schema["properties"]["messages"]["items"]["$ref"])
    assert "role" in message["properties"]
    completions = document["paths"]["/v1/chat/completions"]["post"]["responses"]
    assert {"400", "409", "413", "429", "502", "503", "504"} <= set(completions)


@pytest.mark.parametrize("url", ["/internal/openapi.json", "/vapi/openapi.json", "/openapi.json"])
def test_the_internal_endpoints_and_the_webhooks_serve_no_document(client, url):
    assert client.get(url).status_code == 404
