// The Live page: a tail of new events over server-sent events. Pausing
// holds new rows back (counted) until resumed. No payloads are sent.
(function () {
  "use strict";
  var table = document.getElementById("tail");
  if (!table) { return; }
  var body = table.tBodies[0];
  var status = document.getElementById("tail-status");
  var button = document.getElementById("pause-tail");
  var paused = false, held = [], shown = 0, max = 500;
  function cell(tr, text, cls) {
    var td = document.createElement("td");
    td.textContent = text;
    if (cls) { td.className = cls; }
    tr.appendChild(td);
    return td;
  }
  function show(e) {
    var tr = document.createElement("tr");
    tr.setAttribute("data-id", e.id);
    cell(tr, e.time);
    cell(tr, e.type, "mono");
    var td = cell(tr, "", "mono");
    var a = document.createElement("a");
    a.href = "/events/" + encodeURIComponent(e.id);
    a.textContent = e.id;
    td.appendChild(a);
    cell(tr, e.source);
    cell(tr, e.origin);
    cell(tr, String(e.seq), "num");
    body.insertBefore(tr, body.firstChild);
    shown++;
    while (body.rows.length > max) { body.deleteRow(body.rows.length - 1); }
  }
  function label() {
    status.textContent = paused ? "paused, " + held.length + " new held back" : "streaming, " + shown + " shown";
  }
  var src = new EventSource("/live/stream?trigger=" + encodeURIComponent(table.getAttribute("data-trigger")));
  src.onopen = function () { label(); };
  src.onerror = function () { status.textContent = "disconnected, retrying…"; };
  src.onmessage = function (m) {
    var e = JSON.parse(m.data);
    if (paused) { held.push(e); } else { show(e); }
    label();
  };
  button.addEventListener("click", function () {
    paused = !paused;
    button.textContent = paused ? "Resume" : "Pause";
    button.setAttribute("aria-pressed", String(paused));
    if (!paused) { held.forEach(show); held = []; }
    label();
  });
}());
