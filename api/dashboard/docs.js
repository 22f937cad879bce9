// Renders the daemon's own OpenAPI document with ReDoc (bundled: no CDN).
"use strict";
window.addEventListener("DOMContentLoaded", () => {
  Redoc.init("/api/v1/openapi.json", {}, document.getElementById("redoc"));
});
