"""The ``docs`` blueprint: the spec itself (``/openapi.yaml``, ``/openapi.json``, both from one
snapshot) and ``/docs``, an interactive API reference rendered from it, served offline.

Swagger UI's assets come from the pinned ``flask-swagger-ui`` package on disk, never from a CDN.
"Try it out" sends real requests to this server; with the development keys in use the page is
pre-authorized with the enterprise key, and any image a response carries is shown.

Above the reference, the rules that depend on the model (step presets and caps, negative-prompt
support, plans, typical latency) and the plans' rate limits are tabled from the spec's catalog.
Swagger UI cannot render JSON Schema's ``if``/``then``, so the page gives it the spec with the
request schema's per-model ``allOf`` left out and a pointer to the table instead; the served
``/openapi.json`` is untouched.
"""

from __future__ import annotations

import json
import os

import flask_swagger_ui
from flask import Blueprint, Response, redirect, send_from_directory

from mockserver.config import DEV_KEYS
from mockserver.runtime import Runtime

ASSETS = os.path.join(os.path.dirname(flask_swagger_ui.__file__), "dist")

PAGE = """<!doctype html>
<html lang="en">
<head>
  <meta charset="utf-8">
  <title>Image API mock: reference</title>
  <link rel="stylesheet" href="/docs/assets/swagger-ui.css">
  <style>
    body { margin: 0; }
    #rules { max-width: 1460px; margin: 0 auto; padding: 16px 20px 0;
             font: 14px/1.4 sans-serif; color: #3b4151; }
    #rules h2 { font-size: 20px; margin: 8px 0; }
    #rules table { border-collapse: collapse; margin: 8px 0 16px; }
    #rules th, #rules td { border-bottom: 1px solid #ddd; padding: 4px 12px; text-align: left; }
    #rules td.number { text-align: right; font-variant-numeric: tabular-nums; }
    #rules code { background: #f0f0f0; padding: 0 3px; border-radius: 3px; }
    #preview { position: fixed; right: 16px; bottom: 16px; z-index: 10; display: none;
               background: #fff; border: 1px solid #ccc; border-radius: 6px; padding: 8px;
               box-shadow: 0 4px 16px rgba(0,0,0,.2); font: 12px sans-serif; }
    #preview img { display: block; max-width: 320px; max-height: 320px; }
  </style>
</head>
<body>
  <section id="rules">
    <h2>Models and their rules</h2>
    <p>From this server's <a href="/openapi.yaml">openapi.yaml</a>
      (<code>x-imageapi-catalog</code>). <code>num_inference_steps</code> runs from 1 to the
      model's maximum and defaults to its quality steps (<code>"preset": "fast"</code>: its fast
      steps); more answers 400 <code>step_cap_exceeded</code>. A <code>negative_prompt</code> to
      a model without support answers 400 <code>negative_prompt_unsupported</code>; a model outside
      the key's plan, 403 <code>model_not_in_plan</code>.</p>
    <table id="catalog">
      <thead><tr><th>model</th><th>name</th><th>quality steps</th><th>fast steps</th>
        <th>max steps</th><th>negative prompt</th><th>plans</th><th>typical latency</th>
      </tr></thead>
      <tbody></tbody>
    </table>
    <table id="plans">
      <thead><tr><th>plan</th><th>requests a minute</th><th>models</th></tr></thead>
      <tbody></tbody>
    </table>
  </section>
  <div id="swagger-ui"></div>
  <div id="preview">
    <div id="preview-caption"></div><img id="preview-image" alt="generated image">
  </div>
  <script src="/docs/assets/swagger-ui-bundle.js"></script>
  <script>
    const devKey = __DEV_KEY__;
    function showImages(response) {
      try {
        const body = typeof response.body === "object" && response.body !== null
          ? response.body : JSON.parse(response.text || "null");
        const image = body && body.images && body.images[0];
        if (image && image.data_url) {
          document.getElementById("preview-image").src = image.data_url;
          document.getElementById("preview-caption").textContent = [
            body.model, `${body.width}x${body.height}`,
            `${body.num_inference_steps} steps`, `seed ${body.seed}`,
          ].join(" · ");
          document.getElementById("preview").style.display = "block";
        }
      } catch (e) { /* not JSON: nothing to show */ }
      return response;
    }
    function row(table, cells) {
      const tr = document.querySelector(`#${table} tbody`).insertRow();
      for (const [text, numeric] of cells) {
        const td = tr.insertCell();
        td.textContent = text;
        if (numeric) td.className = "number";
      }
    }
    function tableRules(spec) {
      const catalog = spec["x-imageapi-catalog"];
      for (const m of catalog.models) {
        row("catalog", [[m.id], [m.name], [m.quality_steps, 1], [m.fast_steps, 1],
          [m.max_steps, 1], [m.negative_prompt ? "yes" : "no"], [m.plans.join(", ")],
          [`${m.typical_latency_ms} ms`, 1]]);
      }
      for (const p of catalog.plans) {
        const models = catalog.models.filter((m) => m.plans.includes(p.id)).map((m) => m.id);
        row("plans", [[p.id], [p.requests_per_minute, 1], [models.join(", ")]]);
      }
    }
    // Swagger UI shows if/then rules as "any & any": the table above states them instead.
    const conditional = (s) => s.if !== undefined ||
      (Array.isArray(s.allOf) && s.allOf.length > 0 && s.allOf.every(conditional));
    function withoutConditionalRules(node) {
      if (node === null || typeof node !== "object") return node;
      if (Array.isArray(node.allOf) && node.allOf.every(conditional)) {
        delete node.allOf;
        node.description = "What to generate. The rules that depend on the model (step caps " +
          "and presets, negative-prompt support, plans) are in the table at the top of this page.";
      }
      Object.values(node).forEach(withoutConditionalRules);
      return node;
    }
    // "Try it out" must reach this server, so it goes first among the spec's servers.
    fetch("/openapi.json").then((r) => r.json()).then((spec) => {
      tableRules(spec);
      spec = withoutConditionalRules(spec);
      spec.servers = [{ url: window.location.origin, description: "This mock server" },
                      ...(spec.servers || [])];
      window.ui = SwaggerUIBundle({
        spec,
        dom_id: "#swagger-ui",
        validatorUrl: null,
        tryItOutEnabled: true,
        displayRequestDuration: true,
        responseInterceptor: showImages,
        onComplete: () => { if (devKey) window.ui.preauthorizeApiKey("bearerAuth", devKey); },
      });
    });
  </script>
</body>
</html>
"""


def create_docs(runtime: Runtime) -> Blueprint:
    """Public routes, outside the API: no key, no rate limit."""
    docs = Blueprint("docs", __name__)
    # Pre-authorize only with the published development keys: a real key stays off the page.
    dev_key = next((k for k, plan in DEV_KEYS.items() if plan == "enterprise"), None)
    key = dev_key if runtime.config.keys == DEV_KEYS else None
    page = PAGE.replace("__DEV_KEY__", json.dumps(key))

    @docs.get("/openapi.json")
    def openapi_json():
        return Response(runtime.current().spec_json, mimetype="application/json")

    @docs.get("/openapi.yaml")
    def openapi_yaml():
        return Response(runtime.current().spec_yaml, mimetype="application/yaml")

    @docs.get("/docs")
    def reference():
        return Response(page, mimetype="text/html")

    @docs.get("/docs/assets/<path:filename>")
    def assets(filename: str):
        return send_from_directory(ASSETS, filename, max_age=3600)

    @docs.get("/")
    @docs.get("/docs/")
    def to_reference():
        return redirect("/docs")  # a relative Location: nothing taken from the Host header

    return docs
