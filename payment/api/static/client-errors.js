// Reports this page's uncaught errors and unhandled promise rejections to our own /api/client-errors, which
// scrubs them and forwards them to the environment's Sentry project (no third-party script, same origin only).
(function () {
  "use strict";
  var endpoint = "/api/client-errors";
  var sent = 0;
  var MAX_PER_PAGE = 5;
  var surface = location.pathname.indexOf("/admin") === 0 ? "admin" : "billing";
  // a billing link's token is a credential: never sent, even to ourselves
  var path = location.pathname.replace(/^\/billing\/[^/]+/, "/billing/[Filtered]");

  function report(kind, error, fallback) {
    if (sent >= MAX_PER_PAGE) { return; }
    sent += 1;
    var body = JSON.stringify({
      kind: kind,
      surface: surface,
      type: String((error && error.name) || "Error").slice(0, 100),
      message: String((error && error.message) || fallback || "unknown error").slice(0, 1000),
      stack: String((error && error.stack) || "").slice(0, 6000),
      url: path
    });
    try {
      fetch(endpoint, {method: "POST", body: body, keepalive: true, credentials: "omit",
                       headers: {"Content-Type": "application/json"}}).catch(function () {});
    } catch (ignored) { /* reporting must never break the page */ }
  }

  window.addEventListener("error", function (event) {
    report("error", event.error, event.message);
  });
  window.addEventListener("unhandledrejection", function (event) {
    var reason = event.reason;
    report("unhandledrejection", reason instanceof Error ? reason : null, String(reason));
  });
})();
