// axcenter dashboard: charts from embedded JSON, live log tail, confirmations.
// No inline scripts (the Content-Security-Policy forbids them).
"use strict";

const LANG = document.documentElement.lang || "en";

function wonShort(value, lang) {
  const v = Math.round(value);
  if (lang === "ko") {
    if (Math.abs(v) >= 1e8) return (v / 1e8).toLocaleString("ko-KR", { maximumFractionDigits: 1 }) + "억";
    if (Math.abs(v) >= 1e4) return Math.round(v / 1e4).toLocaleString("ko-KR") + "만";
    return v.toLocaleString("ko-KR") + "원";
  }
  if (Math.abs(v) >= 1e9) return "₩" + (v / 1e9).toFixed(1) + "B";
  if (Math.abs(v) >= 1e6) return "₩" + (v / 1e6).toFixed(1) + "M";
  if (Math.abs(v) >= 1e3) return "₩" + (v / 1e3).toFixed(0) + "K";
  return "₩" + v;
}

function formatter(kind) {
  if (kind === "percent") return (v) => v + "%";
  if (kind === "seconds") return (v) => (v >= 120 ? Math.round(v / 60) + "m" : v + "s");
  if (kind && kind.startsWith("won-")) return (v) => wonShort(v, kind.slice(4));
  return (v) => Number(v).toLocaleString(LANG === "ko" ? "ko-KR" : "en-US");
}

function drawCharts() {
  if (typeof Chart === "undefined") return;
  Chart.defaults.animation = false;
  Chart.defaults.maintainAspectRatio = false;
  for (const canvas of document.querySelectorAll("canvas[data-chart]")) {
    const source = document.getElementById(canvas.dataset.chart);
    if (!source) continue;
    const config = JSON.parse(source.textContent);
    const extra = config.options || {};
    const format = formatter(extra.yFormat);
    const valueAxis = extra.horizontal ? "x" : "y";
    const options = {
      responsive: true,
      indexAxis: extra.horizontal ? "y" : "x",
      interaction: { mode: "index", intersect: false },
      scales: { x: { stacked: !!extra.stacked }, y: { stacked: !!extra.stacked } },
      plugins: {
        tooltip: { callbacks: { label: (ctx) => ctx.dataset.label + ": " + format(ctx.parsed[valueAxis]) } },
      },
    };
    options.scales[valueAxis].beginAtZero = true;
    options.scales[valueAxis].ticks = { precision: 0, callback: (v) => format(v) };
    if (extra.yFormat === "percent") options.scales[valueAxis].max = 100;
    new Chart(canvas, { type: config.type, data: config.data, options: options });
    canvas.dataset.drawn = "true";
  }
}

function tailLogs() {
  for (const pre of document.querySelectorAll("pre[data-log-url]")) {
    if (pre.dataset.live !== "true") continue;
    let offset = Number(pre.dataset.offset || 0);
    const poll = async () => {
      try {
        const r = await fetch(pre.dataset.logUrl + "?offset=" + offset, { credentials: "same-origin" });
        if (!r.ok) return;
        const body = await r.json();
        if (body.text) {
          const atBottom = pre.scrollTop + pre.clientHeight >= pre.scrollHeight - 8;
          pre.append(document.createTextNode(body.text));
          if (atBottom) pre.scrollTop = pre.scrollHeight;
        }
        offset = body.next;
        pre.dataset.offset = String(offset);
        if (body.done && !body.text) { pre.dataset.live = "false"; return; }
      } catch (e) { /* the next poll retries */ }
      setTimeout(poll, 1000);
    };
    setTimeout(poll, 1000);
  }
}

function confirmations() {
  for (const form of document.querySelectorAll("form[data-confirm]")) {
    form.addEventListener("submit", (event) => {
      if (!window.confirm(form.dataset.confirm)) event.preventDefault();
    });
  }
}

document.addEventListener("DOMContentLoaded", () => {
  drawCharts();
  tailLogs();
  confirmations();
});
