// The API document of this deployment, beside this page (/v1/ui/ → /v1/swagger.json).
window.onload = function () {
  window.ui = SwaggerUIBundle({
    url: "../swagger.json",
    dom_id: "#swagger-ui",
    deepLinking: true,
    presets: [SwaggerUIBundle.presets.apis],
    layout: "BaseLayout",
  });
};
