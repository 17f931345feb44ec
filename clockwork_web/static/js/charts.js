// Charts drawn with the vendored Chart.js from data-* attributes (no inline scripts).
(function () {
  "use strict";

  function cssVar(name) {
    return getComputedStyle(document.documentElement).getPropertyValue(name).trim();
  }

  function baseOptions(stacked) {
    var text = cssVar("--text"), grid = cssVar("--border");
    return {
      responsive: true,
      maintainAspectRatio: false,
      animation: false,
      interaction: { mode: "index", intersect: false },
      plugins: { legend: { labels: { color: text } } },
      scales: {
        x: { stacked: stacked, ticks: { color: text, maxRotation: 0, autoSkip: true }, grid: { color: grid } },
        y: { stacked: stacked, beginAtZero: true, ticks: { color: text }, grid: { color: grid } }
      }
    };
  }

  function usageChart(canvas) {
    var data = JSON.parse(canvas.dataset.chart);
    return new window.Chart(canvas, {
      type: "bar",
      data: {
        labels: data.labels,
        datasets: [
          { label: canvas.dataset.labelCpu, data: data.cpu, backgroundColor: cssVar("--accent"), yAxisID: "y" },
          { label: canvas.dataset.labelGpu, data: data.gpu, backgroundColor: cssVar("--warn"), yAxisID: "y" }
        ]
      },
      options: baseOptions(false)
    });
  }

  function seriesChart(canvas) {
    var data = JSON.parse(canvas.dataset.chart);
    var palette = [cssVar("--accent"), cssVar("--warn"), cssVar("--ok"), cssVar("--bad"), cssVar("--muted")];
    return new window.Chart(canvas, {
      type: "line",
      data: {
        labels: data.labels,
        datasets: data.series.map(function (s, i) {
          return { label: s.label, data: s.data, borderColor: palette[i % palette.length],
                   backgroundColor: palette[i % palette.length], pointRadius: 0, tension: 0.2 };
        })
      },
      options: baseOptions(false)
    });
  }

  document.addEventListener("DOMContentLoaded", function () {
    if (!window.Chart) return;
    var u = document.getElementById("usage-chart");
    if (u) usageChart(u);
    document.querySelectorAll("canvas[data-series-chart]").forEach(seriesChart);
  });
})();
