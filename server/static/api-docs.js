// Starts Swagger UI on /api/docs. A file, not an inline script: the page's CSP allows scripts
// from our origin only. The schema URL comes from the page; no validator badge (it would call
// a third-party server).
(function () {
  "use strict";
  var root = document.getElementById("swagger-ui");
  window.SwaggerUIBundle({
    url: root.getAttribute("data-openapi-url"),
    domNode: root,
    deepLinking: true,
    validatorUrl: null,
    tryItOutEnabled: false,
  });
})();
