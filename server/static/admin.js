// Admin pages: upload progress for batch files (htmx sends the form; its XMLHttpRequest reports
// upload progress as `htmx:xhr:progress`), and copy buttons for new API tokens.
// A static file because the Content-Security-Policy allows no inline script.
(function () {
  "use strict";

  var MB = 1024 * 1024;

  function uploadForm(event) {
    var elt = event.detail && event.detail.elt;
    return elt && elt.matches && elt.matches("form[data-upload]") ? elt : null;
  }

  function parts(form) {
    return {
      box: form.querySelector(".upload-progress"),
      bar: form.querySelector(".upload-progress progress"),
      status: form.querySelector(".upload-status"),
      button: form.querySelector("button[type=submit]"),
    };
  }

  function showRefusal(message) {
    var result = document.getElementById("upload-result");
    if (!result) return;
    var box = document.createElement("div");
    box.className = "form-error refusal";
    box.setAttribute("role", "alert");
    var p = document.createElement("p");
    var strong = document.createElement("strong");
    strong.textContent = "Not imported.";
    p.appendChild(strong);
    p.appendChild(document.createTextNode(" " + message));
    box.appendChild(p);
    result.replaceChildren(box);
  }

  function reset(form) {
    var p = parts(form);
    p.box.hidden = true;
    p.button.disabled = false;
    form.removeAttribute("data-state");
  }

  document.addEventListener("htmx:beforeRequest", function (event) {
    var form = uploadForm(event);
    if (!form) return;
    var input = form.querySelector("input[type=file]");
    var file = input && input.files[0];
    var max = Number(form.dataset.maxBytes);
    if (file && max && file.size > max) {
      event.preventDefault();
      showRefusal("The upload is larger than the " + Math.floor(max / MB) + " MB limit; split it into several batches.");
      return;
    }
    var p = parts(form);
    p.box.hidden = false;
    p.bar.value = 0;
    p.status.textContent = "Uploading…";
    p.button.disabled = true;
    form.setAttribute("data-state", "uploading");
  });

  document.addEventListener("htmx:xhr:progress", function (event) {
    var form = uploadForm(event);
    // htmx reports download progress under the same name; once the file is sent, ignore the rest.
    if (!form || form.getAttribute("data-state") !== "uploading" || !event.detail.lengthComputable) return;
    var p = parts(form);
    var loaded = event.detail.loaded;
    var total = event.detail.total;
    var percent = total ? Math.floor((100 * loaded) / total) : 0;
    p.bar.value = percent;
    if (loaded >= total) {
      form.setAttribute("data-state", "importing");
      p.status.textContent = "Uploaded " + (total / MB).toFixed(1) + " MB; checking and importing…";
    } else {
      p.status.textContent =
        "Uploading… " + percent + "% (" + (loaded / MB).toFixed(1) + " of " + (total / MB).toFixed(1) + " MB)";
    }
  });

  document.addEventListener("htmx:beforeSwap", function (event) {
    var form = uploadForm(event);
    if (!form) return;
    var xhr = event.detail.xhr;
    // The upload limit is enforced before the app (JSON), and a server error has no page to swap.
    if ((xhr.getResponseHeader("Content-Type") || "").indexOf("application/json") === 0) {
      event.detail.shouldSwap = false;
      var detail = "";
      try {
        detail = JSON.parse(xhr.responseText).detail;
      } catch (e) {
        detail = "";
      }
      showRefusal(detail || "The server refused the upload (" + xhr.status + ").");
    }
  });

  document.addEventListener("htmx:afterRequest", function (event) {
    var form = uploadForm(event);
    if (!form) return;
    reset(form);
    if (event.detail.failed && !event.detail.xhr.status) return; // sendError below says why
    if (event.detail.xhr.status >= 500) {
      showRefusal("The server failed while importing (" + event.detail.xhr.status + "). Nothing was imported; try again.");
    } else if (event.detail.successful) {
      form.reset();
    }
  });

  document.addEventListener("htmx:sendError", function (event) {
    var form = uploadForm(event);
    if (!form) return;
    reset(form);
    showRefusal("The upload did not reach the server (network error). Nothing was imported; check the connection and try again.");
  });

  document.addEventListener("click", function (event) {
    var button = event.target.closest && event.target.closest("[data-copy]");
    if (!button) return;
    var input = document.getElementById(button.getAttribute("data-copy"));
    var status = document.getElementById(button.getAttribute("data-copy") + "-status");
    if (!input) return;
    function said(ok) {
      if (status) status.textContent = ok ? "Copied to the clipboard." : "Select the token and copy it with Ctrl+C.";
    }
    input.select();
    if (navigator.clipboard && window.isSecureContext) {
      navigator.clipboard.writeText(input.value).then(
        function () { said(true); },
        function () { said(document.execCommand("copy")); }
      );
    } else {
      said(document.execCommand("copy"));
    }
  });
})();
