"""The OpenAPI document (``/api/v1/openapi.json``) and its rendered reference page.

Both are public: they describe the API, not its data. The page is rendered on
the server from the same dict, with no scripts and no outside resources.
"""

from __future__ import annotations

import json
from typing import Any

from flask import Response, current_app, jsonify, render_template_string

from clockwork_web.api import bp
from clockwork_web.auth.access import public
from clockwork_web.openapi import build_document

_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<title>{{ doc.info.title }}</title></head>
<body><main>
<h1>{{ doc.info.title }} (v{{ doc.info.version }})</h1>
<p>{{ doc.info.description }}</p>
<p>Base path: <code>{{ doc.servers[0].url }}</code>.
Machine-readable: <a href="openapi.json">openapi.json</a>.</p>
<nav><ul>
{% for path, item in doc.paths.items() %}{% for method, op in item.items() %}
<li><a href="#{{ op.operationId }}">{{ method|upper }} {{ path }}</a> — {{ op.summary }}</li>
{% endfor %}{% endfor %}
</ul></nav>
{% for path, item in doc.paths.items() %}{% for method, op in item.items() %}
<section id="{{ op.operationId }}">
<h2><code>{{ method|upper }} {{ doc.servers[0].url }}{{ path }}</code></h2>
<p>{{ op.summary }}{% if op.security is defined and not op.security %} (public){% endif %}</p>
{% if op.parameters %}<table>
<thead><tr><th>parameter</th><th>in</th><th>required</th><th>schema</th><th>description</th></tr></thead>
<tbody>{% for p in op.parameters %}
<tr><td><code>{{ p.name }}</code></td><td>{{ p["in"] }}</td><td>{{ "yes" if p.required else "no" }}</td>
<td><code>{{ p.schema|tojson }}</code></td><td>{{ p.description or "" }}</td></tr>
{% endfor %}</tbody></table>{% endif %}
{% if op.requestBody %}<p>Body: <code>{{ op.requestBody.content["application/json"].schema|tojson }}</code></p>{% endif %}
<p>Responses: {% for code in op.responses %}<code>{{ code }}</code> {% endfor %}</p>
</section>
{% endfor %}{% endfor %}
</main></body></html>"""


@bp.get("/openapi.json")
@public
def openapi_json() -> Any:
    """The OpenAPI 3.1 document of this API."""
    return jsonify(build_document(current_app))


@bp.get("/docs")
@public
def docs() -> Response:
    """The API reference, rendered from the OpenAPI document."""
    doc = json.loads(json.dumps(build_document(current_app)))
    return Response(render_template_string(_PAGE, doc=doc), mimetype="text/html")
