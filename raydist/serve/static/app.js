// raydist's page: search by upload, microphone or click; neighbours with players; a PCA map of
// the corpus; one clip's log-mel with its events and segments. Plain JavaScript, no build step.
"use strict";

const $ = (id) => document.getElementById(id);
const PALETTE = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf"];
let points = [], colours = {}, selected = null;

function status(text, isError = false) {
  $("status").textContent = text;
  $("status").className = isError ? "error" : "";
}

async function call(path, options = {}) {
  const response = await fetch(path, options);
  const kind = response.headers.get("content-type") || "";
  const body = kind.includes("json") ? await response.json() : await response.blob();
  if (!response.ok) throw new Error((body && body.error) || `${response.status} ${response.statusText}`);
  return body;
}

const clipUrl = (id, what) => `/clips/${encodeURIComponent(id)}/${what}`;

// ---- search ----------------------------------------------------------------------------------
async function searchAudio(blob, name) {
  status(`searching with ${name}…`);
  try {
    show(await call("/search?k=10", { method: "POST", body: blob, headers: { "content-type": blob.type || "application/octet-stream" } }), name);
  } catch (e) { status(e.message, true); }
}

async function searchId(id) {
  status(`searching with ${id}…`);
  try { show(await call(`/search?k=10&id=${encodeURIComponent(id)}`, { method: "POST" }), id); }
  catch (e) { status(e.message, true); }
}

function show(result, name) {
  const list = $("hits");
  list.replaceChildren();
  $("hits-title").hidden = false;
  $("hits-title").textContent = `Neighbours of ${name}`;
  for (const hit of result.hits) {
    const li = document.createElement("li");
    const row = document.createElement("div");
    row.className = "row";
    const id = document.createElement("span");
    id.className = "id";
    id.textContent = hit.id + (hit.segment != null ? `#${hit.segment}` : hit.event != null ? `#${hit.event}` : "");
    id.title = "search with this clip";
    id.onclick = () => { searchId(id.textContent); openClip(hit.id); };
    const label = document.createElement("span");
    label.className = "label";
    label.textContent = hit.label ?? "no label";
    const distance = document.createElement("span");
    distance.className = "distance";
    distance.textContent = `distance ${hit.distance.toFixed(4)}`;
    const audio = document.createElement("audio");
    audio.controls = true;
    audio.preload = "none";
    audio.src = clipUrl(hit.id, "audio");
    const view = document.createElement("button");
    view.type = "button";
    view.className = "view";
    view.textContent = "view";
    view.onclick = () => openClip(hit.id);
    row.append(id, label, distance, audio, view);
    li.append(row);
    list.append(li);
  }
  status(`${result.hits.length} neighbours (${result.level})`);
  selected = result.hits.length ? result.hits[0].id : null;
  drawMap();
}

$("file").addEventListener("change", (e) => {
  const file = e.target.files[0];
  if (file) searchAudio(file, file.name);
});

// ---- microphone: PCM from Web Audio, encoded as a 16-bit WAV here (the server reads WAV) ----------
let recorder = null;
$("record").addEventListener("click", async () => {
  if (recorder) return recorder.stop();
  try {
    const stream = await navigator.mediaDevices.getUserMedia({ audio: true });
    const context = new AudioContext();
    const source = context.createMediaStreamSource(stream);
    const node = context.createScriptProcessor(4096, 1, 1);
    const chunks = [];
    node.onaudioprocess = (e) => chunks.push(new Float32Array(e.inputBuffer.getChannelData(0)));
    source.connect(node);
    node.connect(context.destination);
    $("record").textContent = "Stop";
    $("record").classList.add("recording");
    status("recording… press Stop to search");
    recorder = {
      stop() {
        node.disconnect(); source.disconnect(); stream.getTracks().forEach((t) => t.stop());
        context.close();
        recorder = null;
        $("record").textContent = "Record";
        $("record").classList.remove("recording");
        searchAudio(wav(chunks, context.sampleRate), "the recording");
      },
    };
  } catch (e) { status(`cannot record: ${e.message}`, true); }
});

function wav(chunks, rate) {
  const n = chunks.reduce((a, c) => a + c.length, 0);
  const view = new DataView(new ArrayBuffer(44 + 2 * n));
  const text = (o, s) => [...s].forEach((ch, i) => view.setUint8(o + i, ch.charCodeAt(0)));
  text(0, "RIFF"); view.setUint32(4, 36 + 2 * n, true); text(8, "WAVE"); text(12, "fmt ");
  view.setUint32(16, 16, true); view.setUint16(20, 1, true); view.setUint16(22, 1, true);
  view.setUint32(24, rate, true); view.setUint32(28, 2 * rate, true); view.setUint16(32, 2, true);
  view.setUint16(34, 16, true); text(36, "data"); view.setUint32(40, 2 * n, true);
  let o = 44;
  for (const c of chunks) for (const x of c) { view.setInt16(o, Math.max(-1, Math.min(1, x)) * 32767, true); o += 2; }
  return new Blob([view], { type: "audio/wav" });
}

// ---- the map -----------------------------------------------------------------------------------
function scale(canvas) {
  const pad = 14, xs = points.map((p) => p.x), ys = points.map((p) => p.y);
  const [x0, x1, y0, y1] = [Math.min(...xs), Math.max(...xs), Math.min(...ys), Math.max(...ys)];
  return (p) => [pad + ((p.x - x0) / (x1 - x0 || 1)) * (canvas.width - 2 * pad),
                 canvas.height - pad - ((p.y - y0) / (y1 - y0 || 1)) * (canvas.height - 2 * pad)];
}

function drawMap() {
  const canvas = $("map"), g = canvas.getContext("2d");
  g.clearRect(0, 0, canvas.width, canvas.height);
  if (!points.length) return;
  const at = scale(canvas);
  for (const p of points) {
    const [x, y] = at(p);
    g.fillStyle = colours[p.label] || "#999";
    g.globalAlpha = 0.8;
    g.beginPath(); g.arc(x, y, p.id === selected ? 7 : 4, 0, 2 * Math.PI); g.fill();
    if (p.id === selected) { g.globalAlpha = 1; g.strokeStyle = "#000"; g.lineWidth = 2; g.stroke(); }
  }
  g.globalAlpha = 1;
}

function nearestPoint(event) {
  const canvas = $("map"), box = canvas.getBoundingClientRect();
  const mx = ((event.clientX - box.left) / box.width) * canvas.width;
  const my = ((event.clientY - box.top) / box.height) * canvas.height;
  const at = scale(canvas);
  let best = null, bestD = 100;
  for (const p of points) {
    const [x, y] = at(p), d = (x - mx) ** 2 + (y - my) ** 2;
    if (d < bestD) { best = p; bestD = d; }
  }
  return best;
}

$("map").addEventListener("mousemove", (e) => {
  const p = nearestPoint(e), tip = $("tip");
  tip.hidden = !p;
  if (p) {
    tip.textContent = `${p.id} · ${p.label ?? "no label"}`;
    tip.style.left = `${e.offsetX + 12}px`;
    tip.style.top = `${e.offsetY + 12}px`;
  }
});
$("map").addEventListener("mouseleave", () => { $("tip").hidden = true; });
$("map").addEventListener("click", (e) => {
  const p = nearestPoint(e);
  if (!p) return;
  selected = p.id;
  drawMap();
  openClip(p.id, true);
  searchId(p.id);
});

async function loadMap() {
  try {
    const map = await call("/map");
    points = map.points;
    const labels = [...new Set(points.map((p) => p.label))].sort();
    labels.forEach((l, i) => { colours[l] = PALETTE[i % PALETTE.length]; });
    $("legend").replaceChildren(...labels.map((l) => {
      const s = document.createElement("span");
      s.innerHTML = `<i style="background:${colours[l]}"></i>`;
      s.append(l ?? "no label");
      return s;
    }));
    const ex = map.explained.map((v) => `${(100 * v).toFixed(0)}%`).join(" + ");
    $("map-note").textContent = `${points.length} clips, PCA (${ex} of the variance)`;
    drawMap();
  } catch (e) { $("map-note").textContent = e.message; }
}

// ---- one clip's view -----------------------------------------------------------------------------
async function openClip(id, play = false) {
  $("clip").hidden = false;
  $("clip-id").textContent = id;
  const audio = $("clip-audio");
  audio.src = clipUrl(id, "audio");
  if (play) audio.play().catch(() => {});
  try {
    const v = await call(clipUrl(id, "view"));
    drawView(v);
  } catch (e) { status(e.message, true); }
}

function drawView(v) {
  const canvas = $("view"), g = canvas.getContext("2d");
  const cells = Uint8Array.from(atob(v.logmel), (c) => c.charCodeAt(0));
  const image = g.createImageData(v.columns, v.n_mels);
  for (let m = 0; m < v.n_mels; m++) {
    for (let t = 0; t < v.columns; t++) {
      const x = cells[m * v.columns + t], o = ((v.n_mels - 1 - m) * v.columns + t) * 4;
      image.data.set([Math.min(255, x * 1.6), x * 0.9, 255 - x, 255], o);  // dark blue -> yellow
    }
  }
  const off = document.createElement("canvas");
  off.width = v.columns; off.height = v.n_mels;
  off.getContext("2d").putImageData(image, 0, 0);
  g.imageSmoothingEnabled = false;
  g.drawImage(off, 0, 0, canvas.width, canvas.height);
  const x = (s) => (s / v.duration_s) * canvas.width;
  g.fillStyle = "#ffb30055";
  for (const e of v.events) g.fillRect(x(e.start_s), 0, Math.max(2, x(e.end_s) - x(e.start_s)), canvas.height);
  g.strokeStyle = "#22eeff"; g.lineWidth = 2;
  for (const s of v.segments.slice(1)) { g.beginPath(); g.moveTo(x(s.start_s), 0); g.lineTo(x(s.start_s), canvas.height); g.stroke(); }
  canvas.dataset.events = v.events.length;
  canvas.dataset.segments = v.segments.length;
}

// ---- start -------------------------------------------------------------------------------------
(async () => {
  try {
    const h = await call("/health");
    const index = h.index ? `${h.index.rows} ${h.index.level} indexed` : "no index (search off)";
    $("about").textContent = `model ${h.model.checkpoint_sha256.slice(0, 12)} · ${h.model.latent_rate} latent frames/s · ${index}`;
    if (h.index) loadMap();
  } catch (e) { $("about").textContent = e.message; }
})();
