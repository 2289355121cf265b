"""``/docs``: an interactive API reference rendered from the same spec, served offline.

Swagger UI's assets come from the pinned ``flask-swagger-ui`` package on disk, never from a CDN.
"Try it out" sends real requests to this server; with the development keys in use the page is
pre-authorized with the enterprise key, and any image a response carries is shown.
"""

from __future__ import annotations

import json
import os

import flask_swagger_ui
from flask import Flask, Response, send_from_directory

from mockserver.config import DEV_KEYS, Config

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


def register_docs(app: Flask, config: Config) -> None:
    # Pre-authorize only with the published development keys: a real key stays off the page.
    dev_key = next((k for k, plan in DEV_KEYS.items() if plan == "enterprise"), None)
    key = dev_key if config.keys == DEV_KEYS else None
    page = PAGE.replace("__DEV_KEY__", json.dumps(key))

    def docs():
        return Response(page, mimetype="text/html")

    def assets(filename: str):
        return send_from_directory(ASSETS, filename, max_age=3600)

    app.add_url_rule("/docs", "docs", docs, methods=["GET"])
    app.add_url_rule("/docs/assets/<path:filename>", "docs_assets", assets, methods=["GET"])
