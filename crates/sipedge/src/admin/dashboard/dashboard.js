// The sipedge dashboard: polls the admin JSON API once a second and draws
// each edge's last 15 minutes on canvases. No library, nothing fetched
// from anywhere but this admin server.
"use strict";

const WINDOW = 900; // seconds on the graphs
const state = {
  token: sessionStorage.getItem("sipedge-token"),
  since: 0,
  now: 0,
  series: new Map(), // edge name -> [[t, calls, cps breaches, channel breaches, in progress]]
  cards: new Map(), // edge name -> its <article>
  tick: 0,
};

const $ = (sel, root = document) => root.querySelector(sel);

function showError(text) {
  const e = $("#error");
  e.textContent = text;
  e.hidden = !text;
}

async function api(path) {
  const headers = { Accept: "application/json" };
  if (state.token) headers.Authorization = "Bearer " + state.token;
  const r = await fetch(path, { headers, cache: "no-store" });
  if (r.status === 401) {
    $("#auth").hidden = false;
    throw new Error("the admin API asks for credentials");
  }
  // /health answers 503 with its body when no edge can route.
  if (!r.ok && r.status !== 503) throw new Error(`${path}: HTTP ${r.status}`);
  return r.json();
}

$("#auth").addEventListener("submit", (ev) => {
  ev.preventDefault();
  state.token = $("#token").value.trim();
  sessionStorage.setItem("sipedge-token", state.token);
  $("#auth").hidden = true;
  poll();
});

function card(name) {
  let c = state.cards.get(name);
  if (!c) {
    c = $("#edge-template").content.firstElementChild.cloneNode(true);
    c.dataset.edge = name;
    $(".name", c).textContent = name;
    $("#edges").appendChild(c);
    state.cards.set(name, c);
  }
  return c;
}

function mergeSeries(body) {
  state.now = Math.max(state.now, body.now);
  for (const e of body.edges) {
    const pts = state.series.get(e.name) || [];
    for (const p of e.points) if (!pts.length || p[0] > pts[pts.length - 1][0]) pts.push(p);
    while (pts.length && pts[0][0] <= state.now - WINDOW) pts.shift();
    state.series.set(e.name, pts);
  }
  state.since = state.now;
  for (const [name, pts] of state.series) {
    if (!body.edges.some((e) => e.name === name)) continue;
    const c = card(name);
    const cps = pts.map((p) => [p[0], p[1]]);
    const breaches = pts.map((p) => [p[0], p[2]]);
    const last = pts[pts.length - 1];
    $(".cps-now", c).textContent = last ? last[1] : 0;
    $(".cps-peak", c).textContent = Math.max(0, ...pts.map((p) => p[1]));
    $(".breaches", c).textContent = pts.reduce((s, p) => s + p[2], 0);
    $(".in-progress", c).textContent = last && last[4] !== null ? last[4] : "–";
    draw($(".chart-cps", c), cps, getComputedStyle(document.body).getPropertyValue("--cps"));
    draw($(".chart-breaches", c), breaches, getComputedStyle(document.body).getPropertyValue("--breach"));
  }
}

// A step line of [t, value] over the last WINDOW seconds, with a light
// grid and the top of the scale written in the corner.
function draw(canvas, points, color) {
  const dpr = window.devicePixelRatio || 1;
  const w = canvas.clientWidth || 600, h = canvas.clientHeight || 140;
  if (canvas.width !== w * dpr) { canvas.width = w * dpr; canvas.height = h * dpr; }
  const g = canvas.getContext("2d");
  g.setTransform(dpr, 0, 0, dpr, 0, 0);
  g.clearRect(0, 0, w, h);
  const max = niceMax(Math.max(1, ...points.map((p) => p[1])));
  const pad = 4, top = 14;
  const x = (t) => pad + ((t - (state.now - WINDOW)) / WINDOW) * (w - 2 * pad);
  const y = (v) => h - pad - (v / max) * (h - pad - top);
  g.strokeStyle = "#e3e6ec";
  g.lineWidth = 1;
  for (let i = 0; i <= 4; i++) {
    const yy = Math.round(y((max * i) / 4)) + 0.5;
    g.beginPath(); g.moveTo(pad, yy); g.lineTo(w - pad, yy); g.stroke();
  }
  g.fillStyle = "#6b7385";
  g.font = "11px system-ui, sans-serif";
  g.fillText(String(max), pad + 2, 11);
  g.fillText("-15 min", pad + 30, 11);
  if (!points.length) return;
  g.strokeStyle = color.trim() || "#2563eb";
  g.fillStyle = g.strokeStyle + "22";
  g.lineWidth = 1.5;
  g.beginPath();
  g.moveTo(x(points[0][0] - 1), y(0));
  for (const [t, v] of points) { g.lineTo(x(t - 1), y(v)); g.lineTo(x(t), y(v)); }
  g.lineTo(x(points[points.length - 1][0]), y(0));
  g.closePath();
  g.fill();
  g.stroke();
}

function niceMax(v) {
  const p = Math.pow(10, Math.floor(Math.log10(v)));
  for (const m of [1, 2, 5, 10]) if (v <= m * p) return m * p;
  return 10 * p;
}

function td(text, cls) {
  const c = document.createElement("td");
  if (cls) c.className = cls;
  c.textContent = text;
  return c;
}

function renderDestinations(body) {
  $("#node").textContent = `node ${body.node}` + (body.zone ? `, zone ${body.zone}` : "");
  for (const e of body.edges) {
    const c = card(e.name);
    const routable = $(".routable", c);
    routable.textContent = e.routable ? "routable" : "no usable destination";
    routable.className = "pill routable " + (e.routable ? "ok" : "bad");
    $(".algorithm", c).textContent = `${e.algorithm}, ${e.insertion}`;
    const rows = e.destinations.map((d) => {
      const tr = document.createElement("tr");
      tr.dataset.destination = d.uri;
      tr.dataset.state = d.state;
      tr.appendChild(td(d.uri));
      tr.appendChild(td(d.zone || ""));
      const s = td("", "state");
      const pill = document.createElement("span");
      pill.className = "state-" + d.state;
      pill.textContent = d.state + (d.manual ? " (held)" : "");
      s.appendChild(pill);
      tr.appendChild(s);
      tr.appendChild(td(d.latency_ms ? `${d.latency_ms.avg.toFixed(1)} ms` : "–"));
      tr.appendChild(td(String(d.calls_sent)));
      tr.appendChild(td(String(d.channels_in_use)));
      tr.appendChild(td(d.reason, "why"));
      return tr;
    });
    $(".destinations tbody", c).replaceChildren(...rows);
  }
}

function renderHealth(body) {
  const s = $("#status");
  s.textContent = body.status === "ok" ? "healthy" : "unavailable";
  s.className = "pill " + (body.status === "ok" ? "ok" : "bad");
  const cl = $("#cluster");
  cl.hidden = !body.cluster;
  if (body.cluster) {
    cl.textContent = `Redis ${body.cluster.redis}, ${body.cluster.counting}, ${body.cluster.nodes} node(s)`;
    cl.className = "pill " + (body.cluster.redis === "up" ? "ok" : "warn");
  }
}

function renderBans(body) {
  const c = body.counts || {};
  $("#ban-counts").textContent = Object.entries(c).map(([k, v]) => `${k} ${v}`).join(", ");
  const rows = (body.bans || []).slice(0, 50).map((b) => {
    const tr = document.createElement("tr");
    tr.appendChild(td(b.address));
    tr.appendChild(td(b.reason));
    tr.appendChild(td(`${b.expires_in} s`));
    return tr;
  });
  $("#bans tbody").replaceChildren(...rows);
}

async function poll() {
  try {
    const tick = state.tick++;
    const jobs = [
      api(`/api/series?since=${state.since}`).then(mergeSeries),
      api("/api/destinations").then(renderDestinations),
    ];
    if (tick % 2 === 0) jobs.push(api("/health").then(renderHealth));
    if (tick % 5 === 0) jobs.push(api("/api/bans").then(renderBans));
    await Promise.all(jobs);
    $("#updated").textContent = "updated " + new Date().toLocaleTimeString();
    document.body.dataset.ready = "1";
    showError("");
  } catch (e) {
    showError(String(e.message || e));
  }
}

poll();
setInterval(poll, 1000);
