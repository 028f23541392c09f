// IRU Responder console: keeps the page's live part current from the
// server's event stream (Server-Sent Events). Everything works without it.
"use strict";
document.addEventListener("DOMContentLoaded", function () {
  var live = document.getElementById("live");
  if (!live || !live.dataset.live || !window.EventSource) {
    return;
  }
  var status = document.createElement("p");
  status.className = "live-status";
  status.setAttribute("role", "status");
  status.textContent = "connecting…";
  live.parentNode.insertBefore(status, live);
  var source = new EventSource(live.dataset.live);
  source.addEventListener("open", function () {
    status.textContent = "live";
  });
  source.addEventListener("update", function (e) {
    // Keep what the person is typing in a reason field.
    var typing = {};
    live.querySelectorAll("input[name=reason]").forEach(function (i) {
      if (i.value) { typing[i.id] = i.value; }
    });
    var focused = document.activeElement && document.activeElement.id;
    live.innerHTML = e.data;
    Object.keys(typing).forEach(function (id) {
      var i = document.getElementById(id);
      if (i) { i.value = typing[id]; }
    });
    if (focused) {
      var f = document.getElementById(focused);
      if (f) { f.focus(); }
    }
    status.textContent = "live · updated " + new Date().toLocaleTimeString();
  });
  source.addEventListener("signedout", function () {
    source.close();
    status.textContent = "signed out: reload to sign in again";
  });
  source.addEventListener("error", function () {
    status.textContent = "reconnecting…";
  });
});
