// speckle-lab console page: plain JavaScript, no build step.
// Frames arrive as binary websocket messages (layout in console/encoding.py), everything else as JSON.
"use strict";

const $ = (id) => document.getElementById(id);
const HEADER_BYTES = 32;
const FRAME_MAGIC = "SPKF", SLM_MAGIC = "SPKS";
const ENCODINGS = ["raw", "jpeg", "png"];

// What tests and bench/bench_live.py read from the page.
const speckle = {
  framesDrawn: 0, lastSeq: null, lastTimeS: null, latenciesMs: [], paintLatenciesMs: [], drawMs: [], fps: 0,
  measurePaint: false,
  errors: [], readonly: null, status: null, stats: null, open: false,
};
window.speckle = speckle;

let ws = null;
const frameCanvas = $("frame"), frameCtx = frameCanvas.getContext("2d");
let imageData = null, imageU32 = null;
const drawTimes = [];

function nowMs() { return performance.timeOrigin + performance.now(); }

// Text is replaced only when it changes: each replacement costs the browser a style and layout pass.
function setText(id, text) {
  const el = $(id);
  if (el.textContent !== text) el.textContent = text;
}

function header(buf) {
  const dv = new DataView(buf);
  const magic = String.fromCharCode(dv.getUint8(0), dv.getUint8(1), dv.getUint8(2), dv.getUint8(3));
  return {
    magic, seq: dv.getUint32(4, true), width: dv.getUint16(8, true), height: dv.getUint16(10, true),
    timeS: dv.getFloat64(12, true), encoding: ENCODINGS[dv.getUint8(20)], shift: dv.getUint8(21),
    exposureUs: dv.getFloat64(24, true),
  };
}

// 8-bit gray → RGBA through a Uint32 view (little-endian: 0xAABBGGRR).
function grayToImageData(ctx, gray, w, h, reuse) {
  let img = reuse && reuse.width === w && reuse.height === h ? reuse : ctx.createImageData(w, h);
  const u32 = new Uint32Array(img.data.buffer);
  for (let i = 0; i < gray.length; i++) {
    const g = gray[i];
    u32[i] = 0xff000000 | (g << 16) | (g << 8) | g;
  }
  return img;
}

// Everything the page shows is redrawn in one animation frame (render): the frame, the SLM pattern,
// the figures, the run's status and plot. Messages only store what came; a burst of them (the run
// view sends frame, figures, status, pattern and points together) costs the browser one style,
// layout and paint pass, not one per message.
const pending = {frame: null, slm: null, status: null, stats: false, stability: false};
let renderQueued = false, decoding = 0;  // while a frame decodes, what came with it waits for it
function schedule() {
  if (!renderQueued) {
    renderQueued = true;
    requestAnimationFrame(render);
  }
}

function render() {
  renderQueued = false;
  if (decoding) return;  // the decode schedules the render when it ends
  const frame = pending.frame, slm = pending.slm, st = pending.status;
  pending.frame = pending.slm = pending.status = null;
  if (frame) drawFrame(frame);
  if (slm) drawGray(slmCanvas, slmCtx, slm.h, slm.payload, null);
  if (st) applyStatus(st);
  if (pending.stats) showStatsThrottled();
  if (pending.stability) {
    pending.stability = false;
    drawStability();
  }
}

function fitCanvas(canvas, h) {
  if (canvas.width !== h.width || canvas.height !== h.height) {
    canvas.width = h.width; canvas.height = h.height;
  }
}

function drawGray(canvas, ctx, h, payload, reuse) {
  fitCanvas(canvas, h);
  const img = grayToImageData(ctx, payload, h.width, h.height, reuse);
  ctx.putImageData(img, 0, 0);
  return img;
}

async function onFrame(buf) {
  const h = header(buf);
  const payload = new Uint8Array(buf, HEADER_BYTES);
  const t0 = performance.now();
  let bitmap = null;
  if (h.encoding !== "raw") {
    decoding += 1;
    try {
      bitmap = await createImageBitmap(new Blob([payload], {type: "image/" + h.encoding}));
    } catch (e) {
      send({cmd: "ack", seq: h.seq});  // a frame that cannot be drawn still frees its slot
      throw e;
    } finally {
      decoding -= 1;
      schedule();
    }
  }
  if (pending.frame) dropFrame(pending.frame);
  pending.frame = {h, payload, bitmap, decodeMs: performance.now() - t0};
  schedule();
}

function dropFrame(f) {  // replaced before it was drawn: its slot is freed all the same
  if (f.bitmap) f.bitmap.close();
  send({cmd: "ack", seq: f.h.seq});
}

function drawFrame(f) {
  const h = f.h, t0 = performance.now();
  if (f.bitmap) {
    fitCanvas(frameCanvas, h);
    frameCtx.drawImage(f.bitmap, 0, 0);
    f.bitmap.close();
  } else {
    imageData = drawGray(frameCanvas, frameCtx, h, f.payload, imageData);
  }
  speckle.drawMs.push(f.decodeMs + performance.now() - t0);
  if (speckle.drawMs.length > 2000) speckle.drawMs.splice(0, 1000);
  const latency = nowMs() - h.timeS * 1000;
  send({cmd: "ack", seq: h.seq, latency_ms: Math.round(latency * 100) / 100});
  speckle.framesDrawn += 1;
  speckle.lastSeq = h.seq;
  speckle.lastEncoding = h.encoding;
  speckle.lastTimeS = h.timeS;
  speckle.latenciesMs.push(latency);
  if (speckle.latenciesMs.length > 2000) speckle.latenciesMs.splice(0, 1000);
  // on screen: the next animation frame after the canvas was updated (bench/bench_live.py turns this
  // on: it costs the browser a frame more per frame drawn)
  if (speckle.measurePaint) {
    requestAnimationFrame(() => {
      speckle.paintLatenciesMs.push(nowMs() - h.timeS * 1000);
      if (speckle.paintLatenciesMs.length > 2000) speckle.paintLatenciesMs.splice(0, 1000);
    });
  }
  const t = performance.now();
  drawTimes.push(t);
  while (drawTimes.length && t - drawTimes[0] > 2000) drawTimes.shift();
  speckle.fps = drawTimes.length > 1 ? (drawTimes.length - 1) / ((t - drawTimes[0]) / 1000) : 0;
  setText("frame-count", String(speckle.framesDrawn));
  setText("frame-seq", String(h.seq));
  setText("fps", speckle.fps.toFixed(1));
  setText("latency", latency.toFixed(0));
}

const slmCanvas = $("slm"), slmCtx = slmCanvas.getContext("2d");
function onSlm(buf) {
  pending.slm = {h: header(buf), payload: new Uint8Array(buf, HEADER_BYTES)};
  schedule();
}

// -- JSON messages ------------------------------------------------------------------------------
function fmt(v, digits) {
  if (v === null || v === undefined || Number.isNaN(v)) return "–";
  return typeof v === "number" ? v.toFixed(digits) : String(v);
}

// The figures and histogram are redrawn at most STATS_HZ times a second (the frame every time):
// text layout and the histogram cost chromium more CPU per frame than drawing the frame itself.
const STATS_HZ = 4;
let statsShownAt = 0, statsTimer = null;
function onStats(s) {
  speckle.stats = s;
  pending.stats = true;
  schedule();
}

function showStatsThrottled() {
  const wait = statsShownAt + 1000 / STATS_HZ - performance.now();
  if (wait <= 0) {
    pending.stats = false;
    showStats(speckle.stats);
  } else if (statsTimer === null) {
    statsTimer = setTimeout(() => { statsTimer = null; schedule(); }, wait);
  }
}

function showStats(s) {
  statsShownAt = performance.now();
  setText("st-exposure", fmt(s.exposure_us, 0) + " µs");
  setText("st-max", String(s.max));
  setText("st-mean", fmt(s.mean, 1));
  setText("st-saturated", fmt(100 * s.saturated_fraction, 3) + " %");
  setText("st-contrast", fmt(s.contrast, 3));
  setText("st-grain", fmt(s.grain_px, 1) + " px");
  setText("st-sharpness", fmt(s.sharpness, 3));
  setText("st-black", fmt(s.black_level, 1));
  const info = s.info || {};
  setText("frame-kind", info.what || info.kind || "");
  if (speckle.readonly) setText("slm-text", info.what ? `shown for: ${info.what}` : "");
  const shown = s.shown && (s.shown[0] !== s.shape[0] || s.shown[1] !== s.shape[1])
    ? ` (shown binned to ${s.shown[0]}×${s.shown[1]})` : "";
  setText("shape", `${s.shape[0]}×${s.shape[1]}${shown}`);
  drawHistogram(s.histogram);
}

function drawHistogram(hist) {
  const c = $("histogram"), ctx = c.getContext("2d");
  const log = $("hist-log").checked;
  const vals = hist.map((v) => (log ? Math.log10(1 + v) : v));
  const top = Math.max(...vals, 1e-9);
  ctx.clearRect(0, 0, c.width, c.height);
  const bw = c.width / hist.length;
  for (let i = 0; i < hist.length; i++) {
    const hgt = (vals[i] / top) * (c.height - 2);
    ctx.fillStyle = i === hist.length - 1 && hist[i] > 0 ? "#e0533d" : "#7fb2e5";
    ctx.fillRect(i * bw, c.height - hgt, Math.max(bw, 1), hgt);
  }
}

function setIfIdle(id, value) {
  const el = $(id);
  if (document.activeElement !== el && value !== null && value !== undefined) el.value = value;
}

function onStatus(st) {
  speckle.status = st;
  pending.status = st;
  schedule();
}

function applyStatus(st) {
  setText("rig-name", st.rig ? `rig: ${st.rig}` : "");
  if (st.mode === "view") return onRunStatus(st);
  const cam = st.camera;
  const camErr = $("camera-error");
  camErr.textContent = cam.ok ? "" : `camera failed: ${cam.error} — retrying`;
  camErr.classList.toggle("hidden", cam.ok);
  setIfIdle("exposure", Math.round(cam.exposure_us * 100) / 100);
  setIfIdle("roi-rows", cam.roi[0]); setIfIdle("roi-cols", cam.roi[1]);
  setIfIdle("average", cam.average);
  const slm = st.slm;
  $("slm-text").textContent = slm.pattern + (slm.face_name ? ` ${slm.face} (${slm.face_name})` : "")
    + (slm.period_px ? ` period ${slm.period_px} px` : "") + ` · window ${slm.window[0]}×${slm.window[1]}`;
  const sel = $("diffuser");
  if (sel.options.length !== st.diffusers.length) {
    sel.innerHTML = "";
    for (const d of st.diffusers) sel.add(new Option(d, d));
  }
  if (document.activeElement !== sel && st.diffuser) sel.value = st.diffuser;
  setIfIdle("distance", st.distance_mm);
  $("set-diffuser").disabled = st.manual.includes("changer");
  $("set-distance").disabled = st.manual.includes("stage");
  if (st.last_snapshot) $("snapshot-text").textContent = `saved ${st.last_snapshot}`;
}

function fmtSeconds(s) {
  if (s === null || s === undefined || !Number.isFinite(s)) return "–";
  s = Math.round(s);
  const h = Math.floor(s / 3600), m = Math.floor((s % 3600) / 60), sec = s % 60;
  return h ? `${h} h ${m} min` : m ? `${m} min ${sec} s` : `${sec} s`;
}

function onRunStatus(st) {
  const r = st.run;
  const bar = $("run-progress"), total = Math.max(r.total, 1);
  if (bar.max !== total) bar.max = total;
  if (bar.value !== r.done) bar.value = r.done;
  setText("run-text", `${r.done} / ${r.total} pairs` + (r.finished ? ` — ${r.message}` : ""));
  setText("run-block", r.block || "–");
  setText("run-rate", fmt(r.rate, 1));
  setText("run-eta", r.finished ? "done" : fmtSeconds(r.eta_s));
  setText("run-exposure", r.exposure_us ? fmt(r.exposure_us, 0) + " µs" : "–");
  setText("run-elapsed", fmtSeconds(r.elapsed_s));
  const logEl = $("log"), text = st.log.join("\n");
  if (logEl.textContent !== text) {
    const atBottom = logEl.scrollTop + logEl.clientHeight >= logEl.scrollHeight - 4;
    logEl.textContent = text;
    if (atBottom) logEl.scrollTop = logEl.scrollHeight;
  }
  if (stability.threshold !== st.threshold) {
    stability.threshold = st.threshold;
    drawStability();
  }
  document.body.classList.toggle("finished", !!r.finished);
}

// The run's reference correlations: the server sends each point once ([number, correlation]).
const STABILITY_POINTS = 5000;
const stability = {points: [], threshold: null};
speckle.stability = stability;
function onStabilityPoints(m) {
  const pts = stability.points;
  for (const p of m.points) {
    if (!pts.length || p[0] > pts[pts.length - 1][0]) pts.push(p);
  }
  if (pts.length > STABILITY_POINTS) pts.splice(0, pts.length - STABILITY_POINTS);
  pending.stability = true;
  schedule();
}

function drawStability() {
  const points = stability.points.map((p) => ({corr: p[1]})), threshold = stability.threshold;
  const c = $("stability"), ctx = c.getContext("2d");
  ctx.clearRect(0, 0, c.width, c.height);
  if (!points.length) return;
  let least = Infinity;
  for (const p of points) least = Math.min(least, p.corr);
  const lo = Math.min(threshold ?? 1, least) - 0.02, hi = 1.0;
  const y = (v) => c.height - 4 - ((v - lo) / (hi - lo)) * (c.height - 8);
  if (threshold !== null && threshold !== undefined) {
    ctx.strokeStyle = "#e0533d"; ctx.beginPath();
    ctx.moveTo(0, y(threshold)); ctx.lineTo(c.width, y(threshold)); ctx.stroke();
  }
  ctx.fillStyle = "#7fb2e5";
  const n = points.length;
  points.forEach((p, i) => {
    const x = n === 1 ? c.width / 2 : 4 + (i / (n - 1)) * (c.width - 8);
    ctx.fillRect(x - 2, y(p.corr) - 2, 4, 4);
  });
  ctx.fillStyle = "#9aa4af";
  ctx.fillText(`last ${points[n - 1].corr.toFixed(4)}, lowest ${least.toFixed(4)}`
    + (threshold !== null && threshold !== undefined ? `, threshold ${threshold}` : ""), 4, c.height - 6);
}

function showError(message) {
  speckle.errors.push(message);
  const el = $("error");
  el.textContent = message;
  el.classList.remove("hidden");
}

function onMessage(ev) {
  if (ev.data instanceof ArrayBuffer) {
    const magic = String.fromCharCode(...new Uint8Array(ev.data, 0, 4));
    return magic === FRAME_MAGIC ? onFrame(ev.data) : magic === SLM_MAGIC ? onSlm(ev.data) : null;
  }
  const m = JSON.parse(ev.data);
  if (m.type === "stats") onStats(m);
  else if (m.type === "status") onStatus(m);
  else if (m.type === "stability") onStabilityPoints(m);
  else if (m.type === "error") showError(m.message);
  else if (m.type === "ok") {
    $("error").classList.add("hidden");
    const n = $("notice");
    n.textContent = `${m.cmd}: done` + (m.exposure_us ? ` (exposure ${m.exposure_us.toFixed(0)} µs)` : "")
      + (m.files ? ` → ${m.files[0]}` : "");
    n.classList.remove("hidden");
  } else if (m.type === "hello") {
    speckle.readonly = m.readonly;
    document.body.classList.toggle("readonly", m.readonly);
    $("mode").textContent = m.readonly ? "run view (read-only)" : "live";
    document.title = m.title;
  }
}

// -- the socket -------------------------------------------------------------------------------------
function send(obj) {
  if (ws && ws.readyState === WebSocket.OPEN) ws.send(JSON.stringify(obj));
}
window.speckleSend = send;

function connect() {
  const proto = location.protocol === "https:" ? "wss" : "ws";
  ws = new WebSocket(`${proto}://${location.host}/ws?encoding=${$("encoding").value}`);
  ws.binaryType = "arraybuffer";
  ws.onopen = () => {
    speckle.open = true;
    document.body.className = document.body.className.replace(/\b(connecting|closed)\b/g, "") + " open";
    $("conn").textContent = "connected";
    if (document.hidden) send({cmd: "visible", visible: false});
  };
  ws.onmessage = onMessage;
  ws.onclose = () => {
    speckle.open = false;
    document.body.className = document.body.className.replace(/\b(connecting|open)\b/g, "") + " closed";
    $("conn").textContent = "disconnected — retrying";
    setTimeout(connect, 1000);
  };
}

// -- controls ---------------------------------------------------------------------------------------
function num(id) {
  const v = $(id).value.trim();
  return v === "" ? null : Number(v);  // NaN goes out as null: the server refuses it and says why
}
$("set-exposure").onclick = () => send({cmd: "exposure", exposure_us: num("exposure")});
$("exposure").addEventListener("keydown", (e) => { if (e.key === "Enter") $("set-exposure").click(); });
$("auto-exposure").onclick = () => send({cmd: "auto_exposure"});
$("set-roi").onclick = () => send({cmd: "roi", rows: num("roi-rows"), cols: num("roi-cols")});
$("set-average").onclick = () => send({cmd: "average", frames: num("average")});
$("dark").onclick = () => send({cmd: "dark"});
$("show-slm").onclick = () => {
  const pattern = $("slm-pattern").value;
  send(pattern === "face" ? {cmd: "slm", pattern, face: num("slm-face")} : {cmd: "slm", pattern});
};
$("set-diffuser").onclick = () => send({cmd: "diffuser", name: $("diffuser").value});
$("set-distance").onclick = () => send({cmd: "distance", distance_mm: num("distance")});
$("snapshot").onclick = () => send(speckle.lastSeq === null ? {cmd: "snapshot"} : {cmd: "snapshot", seq: speckle.lastSeq});
$("encoding").onchange = () => send({cmd: "encoding", encoding: $("encoding").value});
// A tab in the background is sent no frames (the server, and the rig under `live`, rest for it).
document.addEventListener("visibilitychange", () => send({cmd: "visible", visible: !document.hidden}));
$("hist-log").onchange = () => { if (speckle.stats) drawHistogram(speckle.stats.histogram); };

connect();
