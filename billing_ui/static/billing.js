/* Billing pages: wait for the webhook after Checkout, "go back" links, one submit per form. No dependencies. */
(function () {
  "use strict";
  var poll = document.querySelector("[data-poll]");
  if (poll) {
    var started = Date.now();
    var check = function () {
      fetch(poll.getAttribute("data-poll"), { headers: { Accept: "application/json" }, credentials: "same-origin", cache: "no-store" })
        .then(function (r) { return r.ok ? r.json() : { state: "processing" }; })
        .then(function (data) {
          if (data.state === "active" || data.state === "expired") {
            window.location.replace(poll.getAttribute("data-done"));
            return;
          }
          if (Date.now() - started > 60000) {
            var slow = poll.querySelector("[data-slow]");
            if (slow) { slow.hidden = false; }
          }
          window.setTimeout(check, Date.now() - started > 60000 ? 5000 : 1000);
        })
        .catch(function () { window.setTimeout(check, 3000); });
    };
    window.setTimeout(check, 500);
  }
  Array.prototype.forEach.call(document.querySelectorAll("[data-back]"), function (link) {
    if (window.history.length > 1) {
      link.hidden = false;
      link.addEventListener("click", function (event) { event.preventDefault(); window.history.back(); });
    }
  });
  Array.prototype.forEach.call(document.querySelectorAll("form[data-once]"), function (form) {
    form.addEventListener("submit", function (event) {
      if (form.getAttribute("data-sent")) { event.preventDefault(); return; }
      form.setAttribute("data-sent", "1");
      // a disabled button is left out of the form: carry the pressed one's value (the plan chosen) in its place
      var pressed = event.submitter;
      if (pressed && pressed.name) {
        var carried = document.createElement("input");
        carried.type = "hidden";
        carried.name = pressed.name;
        carried.value = pressed.value;
        form.appendChild(carried);
      }
      Array.prototype.forEach.call(form.querySelectorAll("button"), function (b) { b.disabled = true; });
    });
  });
})();
