"""``/docs``: the API reference as one HTML page rendered from the app's OpenAPI document.

FastAPI's own ``/docs`` loads Swagger UI from a CDN; this page needs nothing but the server (offline
by design), and ``/openapi.json`` stays the machine-readable description.
"""

from __future__ import annotations

import json
import re
from html import escape
from typing import Any

_METHODS = ("get", "post", "put", "patch", "delete", "head")
_CODE = re.compile(r"`+([^`]+)`+")


def render_docs(openapi: dict[str, Any]) -> str:
    """One self-contained HTML page describing every route of ``openapi``.

    Parameters
    ----------
    openapi : dict
        The OpenAPI document (``app.openapi()``).

    Returns
    -------
    str
        HTML: for each route its method, path, summary, description, parameters, request body
        (schema per media type) and responses, then the named schemas.
    """
    info = openapi.get("info", {})
    sections = [_route(method, path, op) for path, item in openapi.get("paths", {}).items()
                for method, op in item.items() if method in _METHODS]
    schemas = openapi.get("components", {}).get("schemas", {})
    schema_list = "".join(f'<h3 id="schema-{escape(name)}">{escape(name)}</h3>{_json_block(schema)}'
                          for name, schema in schemas.items())
    return (
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        f'<title>{escape(info.get("title", "API"))} – API</title>'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        '<link rel="stylesheet" href="/static/style.css">'
        '<link rel="icon" href="/static/favicon.svg" type="image/svg+xml"></head><body class="docs"><main>'
        f'<h1>{escape(info.get("title", "API"))} <small>{escape(str(info.get("version", "")))}</small></h1>'
        f'<p>{escape(info.get("description", ""))}</p>'
        '<p>Machine-readable: <a href="/openapi.json">/openapi.json</a> (OpenAPI '
        f'{escape(str(openapi.get("openapi", "")))}). Back to the <a href="/">search page</a>.</p>'
        + "".join(sections)
        + (f"<h2>Schemas</h2>{schema_list}" if schema_list else "")
        + "</main></body></html>"
    )


def _route(method: str, path: str, op: dict[str, Any]) -> str:
    parts = [f'<section class="route"><h2><span class="method">{method.upper()}</span> <code>{escape(path)}</code>'
             f'</h2><p class="summary">{escape(op.get("summary", ""))}</p>']
    if op.get("description"):
        parts.append("<p>" + _CODE.sub(r"<code>\1</code>", escape(op["description"])) + "</p>")
    params = op.get("parameters", [])
    if params:
        rows = "".join(
            f"<tr><td><code>{escape(p.get('name', ''))}</code></td><td>{escape(p.get('in', ''))}</td>"
            f"<td>{'yes' if p.get('required') else 'no'}</td><td>{escape(_type(p.get('schema', {})))}</td></tr>"
            for p in params)
        parts.append("<h4>Parameters</h4><table><tr><th>name</th><th>in</th><th>required</th><th>type</th></tr>"
                     f"{rows}</table>")
    body = op.get("requestBody", {}).get("content", {})
    for media_type, content in body.items():
        parts.append(f"<h4>Body: <code>{escape(media_type)}</code></h4>{_schema(content.get('schema', {}))}")
    responses = op.get("responses", {})
    if responses:
        rows = "".join(f"<tr><td>{escape(str(code))}</td><td>{escape(r.get('description', ''))}</td></tr>"
                       for code, r in responses.items())
        parts.append(f"<h4>Responses</h4><table><tr><th>status</th><th>meaning</th></tr>{rows}</table>")
    parts.append("</section>")
    return "".join(parts)


def _schema(schema: dict[str, Any]) -> str:
    """An object schema as a table of its fields; anything else as JSON."""
    properties = schema.get("properties")
    if schema.get("type") != "object" and not properties:
        return _json_block(schema)
    required = set(schema.get("required", ()))
    rows = "".join(
        f"<tr><td><code>{escape(name)}</code></td><td>{escape(_type(field))}</td>"
        f"<td>{'yes' if name in required else escape(json.dumps(field.get('default')))}</td>"
        f"<td>{escape(field.get('description', ''))}</td></tr>"
        for name, field in (properties or {}).items())
    return ("<table><tr><th>field</th><th>type</th><th>required / default</th><th>meaning</th></tr>"
            f"{rows}</table>")


def _type(schema: dict[str, Any]) -> str:
    if "$ref" in schema:
        return schema["$ref"].rsplit("/", 1)[-1]
    if "anyOf" in schema:
        return " | ".join(_type(s) for s in schema["anyOf"])
    if schema.get("type") == "array":
        return f"list of {_type(schema.get('items', {}))}"
    if schema.get("format") == "binary":
        return "file"
    return str(schema.get("type", "any"))


def _json_block(schema: Any) -> str:
    return f"<pre>{escape(json.dumps(schema, indent=2, ensure_ascii=False))}</pre>"
