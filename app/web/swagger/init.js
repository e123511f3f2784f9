// Starts Swagger UI on /docs (app/web/docs.py): the bundle is served by the service itself, and the
// page holds no inline script, so that its Content-Security-Policy can allow scripts from 'self' only.
const root = document.getElementById("swagger-ui");
window.ui = SwaggerUIBundle({
  url: root.dataset.openapi,
  dom_id: "#swagger-ui",
  layout: "BaseLayout",
  deepLinking: true,
  showExtensions: true,
  showCommonExtensions: true,
  validatorUrl: null, // the public validator would be asked about every document: nothing leaves the intranet
  presets: [SwaggerUIBundle.presets.apis, SwaggerUIBundle.SwaggerUIStandalonePreset],
});
