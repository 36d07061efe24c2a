/* Audit console: the balance chart (uPlot, served by the gateway itself). No other
   behaviour needs a script: every page works without JavaScript. */
(function () {
  "use strict";

  function drawChart() {
    var box = document.getElementById("balance-chart");
    var source = document.getElementById("chart-data");
    var status = document.getElementById("chart-status");
    if (!box || !source) return;
    var spec;
    try { spec = JSON.parse(source.textContent || "{}"); } catch (e) { return; }
    var xs = spec.xs || [], ys = spec.ys || [];
    if (!xs.length) { if (status) status.textContent = "No movements to chart."; return; }
    if (typeof window.uPlot !== "function") {
      if (status) status.textContent = "The chart library is not available; the table below lists the points.";
      return;
    }
    // A running balance is a step function: it holds until the next movement. With a single
    // point, add a second one so the line is visible.
    if (xs.length === 1) { xs = [xs[0], xs[0] + 1]; ys = [ys[0], ys[0]]; }
    var byTime = spec.x !== "block";
    var width = function () { return Math.max(320, Math.min(box.clientWidth || 900, 1100)); };
    var opts = {
      width: width(), height: 320,
      title: spec.bic + " · " + spec.currency,
      scales: { x: { time: byTime } },
      // Times on the axis in UTC, as everywhere in the console.
      tzDate: function (ts) { return window.uPlot.tzDate(new Date(ts * 1e3), "Etc/UTC"); },
      axes: [{ label: byTime ? "time (UTC)" : "block" },
             { label: spec.currency, size: 90, values: function (u, vals) { return vals.map(function (v) { return v.toLocaleString(); }); } }],
      series: [
        { label: byTime ? "time" : "block" },
        { label: "balance (" + spec.currency + ")", stroke: "#0b5cad", width: 2, fill: "rgba(11,92,173,0.08)",
          paths: window.uPlot.paths && window.uPlot.paths.stepped ? window.uPlot.paths.stepped({ align: 1 }) : undefined,
          points: { show: true, size: 6 } }
      ],
      legend: { live: true }
    };
    box.textContent = "";
    var chart = new window.uPlot(opts, [xs, ys], box);
    box.setAttribute("data-points", String((spec.xs || []).length));
    box.setAttribute("data-rendered", "true");
    if (status) status.textContent = (spec.xs || []).length + " movements charted (" + (byTime ? "time" : "block") + " on the horizontal axis).";
    var pending = null;
    window.addEventListener("resize", function () {
      if (pending) window.cancelAnimationFrame(pending);
      pending = window.requestAnimationFrame(function () { chart.setSize({ width: width(), height: 320 }); });
    });
  }

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", drawChart);
  else drawChart();
})();
