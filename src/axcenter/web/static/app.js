// axcenter dashboard: charts from embedded JSON, live regions, live log tail, confirmations.
// No inline scripts (the Content-Security-Policy forbids them).
//
// Live regions: a page whose <main> has data-refresh-s="N" is fetched again every N
// seconds (while the tab is visible) and each element marked data-refresh="name" takes
// the new page's element of that name where it changed (htmx's hx-select, in a few
// lines). The server renders the same template, so a refreshed region is exactly what a
// reload would show. A page that stops being live (a job that ended) drops the attribute
// and the polling stops.
//
// Pushed: a page whose <main> also has data-live="URL" opens that text/event-stream
// (service/live.py); each message (a sequence number, nothing else) refreshes the regions
// at once, and while the stream is open the poll above only runs every minute, as a
// safety net. Without it (no EventSource, the stream refused or cut) polling goes on.
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
  if (kind === "seconds") {
    const [min, sec] = LANG === "ko" ? ["분", "초"] : ["m", "s"];
    return (v) => (v >= 120 ? Math.round(v / 60) + min : Math.round(v) + sec);
  }
  if (kind && kind.startsWith("won-")) return (v) => wonShort(v, kind.slice(4));
  return (v) => Number(v).toLocaleString(LANG === "ko" ? "ko-KR" : "en-US");
}

function drawCharts(root) {
  if (typeof Chart === "undefined") return;
  Chart.defaults.animation = false;
  Chart.defaults.maintainAspectRatio = false;
  for (const canvas of (root || document).querySelectorAll("canvas[data-chart]")) {
    const source = document.getElementById(canvas.dataset.chart);
    if (!source) continue;
    const config = JSON.parse(source.textContent);
    const extra = config.options || {};
    // a series with one or two values draws its points (a line needs two to show)
    for (const set of config.data.datasets || []) {
      const values = (set.data || []).filter((v) => v !== null && v !== undefined);
      if (config.type === "line" && values.length <= 2) set.pointRadius = 3;
    }
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
  // delegated: forms inside refreshed regions are new elements
  document.addEventListener("submit", (event) => {
    const form = event.target;
    if (form instanceof HTMLFormElement && form.dataset.confirm && !window.confirm(form.dataset.confirm)) {
      event.preventDefault();
    }
  });
}

function replaceRegion(old, fresh) {
  if (old.innerHTML === fresh.innerHTML) return false;
  const open = [...old.querySelectorAll("details")].map((d) => d.open);
  for (const canvas of old.querySelectorAll("canvas")) {
    const chart = typeof Chart !== "undefined" && Chart.getChart(canvas);
    if (chart) chart.destroy();
  }
  old.innerHTML = fresh.innerHTML;
  old.querySelectorAll("details").forEach((d, i) => { if (open[i]) d.open = true; });
  drawCharts(old);
  return true;
}

function liveRegions() {
  const main = document.querySelector("main[data-refresh-s]");
  if (!main) return;
  let every = Number(main.dataset.refreshS) * 1000;
  let source = null; // the server's push (data-live), while it is open
  let timer = null;
  let busy = false;
  let again = false;
  const schedule = () => {
    clearTimeout(timer);
    // pushed: the poll is only a safety net; else poll at the page's own pace
    const open = source && source.readyState === EventSource.OPEN;
    timer = setTimeout(refresh, open ? Math.max(every, 60000) : every);
  };
  async function refresh() {
    if (busy) { again = true; return; } // one fetch at a time; a push meanwhile: one more
    busy = true;
    if (!document.hidden) {
      try {
        const r = await fetch(location.href, { credentials: "same-origin", headers: { "X-Refresh": "1" } });
        if (r.ok) {
          const fresh = new DOMParser().parseFromString(await r.text(), "text/html");
          for (const region of document.querySelectorAll("[data-refresh]")) {
            const next = fresh.querySelector(`[data-refresh="${region.dataset.refresh}"]`);
            if (next) replaceRegion(region, next);
          }
          const freshMain = fresh.querySelector("main");
          if (freshMain && !freshMain.dataset.refreshS) {
            main.removeAttribute("data-refresh-s");
            if (source) source.close();
            clearTimeout(timer);
            return; // nothing changes any more (a job that ended)
          }
          if (freshMain) every = Number(freshMain.dataset.refreshS) * 1000;
          main.dataset.refreshed = String(Date.now());
        }
      } catch (e) { /* the next poll retries */ }
    }
    busy = false;
    if (again) { again = false; refresh(); return; }
    schedule();
  }
  if (main.dataset.live && typeof EventSource !== "undefined") {
    source = new EventSource(main.dataset.live, { withCredentials: true });
    let first = true;
    source.onmessage = (event) => {
      main.dataset.pushed = String(Date.now());
      // the first message is the version at connection: fetch again only if something
      // changed since the page was read (data-live-version)
      const unchanged = first && event.data === main.dataset.liveVersion;
      first = false;
      if (unchanged) schedule(); else refresh();
    };
    source.onopen = () => { main.dataset.liveOpen = "true"; };
    // closed or refused (signed out, a proxy): polling goes on at the page's pace;
    // the browser reconnects by itself
    source.onerror = () => { main.dataset.liveOpen = "false"; schedule(); };
  }
  schedule();
}

document.addEventListener("DOMContentLoaded", () => {
  drawCharts();
  tailLogs();
  confirmations();
  liveRegions();
});
