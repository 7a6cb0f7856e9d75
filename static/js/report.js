// The post-stream review (templates/report.html): inlined into the report, so it runs offline.
// The charts are already drawn (inline SVG); this adds the messages/shares toggle and a minute tooltip.
(function () {
  "use strict";
  var dataEl = document.getElementById("report-data");
  if (!dataEl) return;
  var data = JSON.parse(dataEl.textContent);
  var svg = document.getElementById("timeline");
  var tip = document.getElementById("tip");
  var wrap = document.getElementById("timeline-wrap");

  document.querySelectorAll(".toggle button").forEach(function (btn) {
    btn.addEventListener("click", function () {
      var mode = btn.getAttribute("data-mode");
      document.querySelectorAll(".toggle button").forEach(function (b) {
        b.classList.toggle("on", b === btn);
      });
      svg.querySelectorAll("g.mode").forEach(function (g) {
        g.setAttribute("visibility", g.getAttribute("data-mode") === mode ? "visible" : "hidden");
      });
    });
  });

  function el(tag, cls, text) {
    var e = document.createElement(tag);
    if (cls) e.className = cls;
    if (text !== undefined) e.textContent = text; // textContent: chat-derived strings are never parsed as HTML
    return e;
  }

  var T = data.minutes.labels.length;
  var left = +svg.getAttribute("data-left");
  var right = +svg.getAttribute("data-right");
  var width = +svg.getAttribute("data-width");
  var hit = document.getElementById("timeline-hit");
  var cross = document.getElementById("crosshair");

  function minuteAt(evt) {
    var box = svg.getBoundingClientRect();
    var x = (evt.clientX - box.left) * (width / box.width);
    var i = Math.floor(((x - left) / (width - left - right)) * T);
    return i >= 0 && i < T ? i : -1;
  }

  hit.addEventListener("mousemove", function (evt) {
    var i = minuteAt(evt);
    if (i < 0) return;
    var x = left + ((width - left - right) * (i + 0.5)) / T;
    cross.setAttribute("x1", x);
    cross.setAttribute("x2", x);
    cross.setAttribute("visibility", "visible");
    tip.replaceChildren();
    tip.appendChild(el("div", "", data.minutes.labels[i] + " · " + data.minutes.messages[i] + " msgs"));
    var shares = data.minutes.shares[i];
    data.emotions
      .map(function (e, j) { return [e, shares[j]]; })
      .filter(function (p) { return p[1] !== null && p[1] > 0.005; })
      .sort(function (a, b) { return b[1] - a[1]; })
      .forEach(function (p) {
        var row = el("div", "row");
        var name = el("span", "", "");
        var dot = el("span", "dot dot-" + p[0]);
        name.appendChild(dot);
        name.appendChild(document.createTextNode(p[0]));
        row.appendChild(name);
        row.appendChild(el("span", "", Math.round(p[1] * 100) + " %"));
        tip.appendChild(row);
      });
    if (data.sales) tip.appendChild(el("div", "", "sales " + data.sales[i].toLocaleString()));
    data.events.forEach(function (ev) {
      if (Math.floor(ev.index) === i) tip.appendChild(el("div", "", ev.time + " " + ev.message));
    });
    tip.hidden = false;
    var wbox = wrap.getBoundingClientRect();
    var px = evt.clientX - wbox.left;
    tip.style.left = Math.min(px + 14, wbox.width - 220) + "px";
    tip.style.top = evt.clientY - wbox.top + 12 + "px";
  });
  hit.addEventListener("mouseleave", function () {
    tip.hidden = true;
    cross.setAttribute("visibility", "hidden");
  });
})();
