"""The ``docs`` blueprint: the spec itself (``/openapi.yaml``, ``/openapi.json``, both from one
snapshot) and ``/docs``, an interactive API reference rendered from it, served offline.

Swagger UI's assets come from the pinned ``flask-swagger-ui`` package on disk, never from a CDN.
"Try it out" sends real requests to this server; with the development keys in use the page is
pre-authorized with the enterprise key, and any image a response carries is shown.
"""

from __future__ import annotations

import json
import os

import flask_swagger_ui
from flask import Blueprint, Response, send_from_directory

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
    #preview { position: fixed; right: 16px; bottom: 16px; z-index: 10; display: none;
               background: #fff; border: 1px solid #ccc; border-radius: 6px; padding: 8px;
               box-shadow: 0 4px 16px rgba(0,0,0,.2); font: 12px sans-serif; }
    #preview img { display: block; max-width: 320px; max-height: 320px; }
  </style>
</head>
<body>
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
    // "Try it out" must reach this server, so it goes first among the spec's servers.
    fetch("/openapi.json").then((r) => r.json()).then((spec) => {
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

    return docs
