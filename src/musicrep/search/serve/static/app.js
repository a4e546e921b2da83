// The search page: queries the JSON API of `musicrep serve`, lists the results, plays them and draws the map.
// Plain browser JavaScript, no build step, nothing loaded from elsewhere. Text from the index is only ever
// set with textContent (never parsed as HTML).
"use strict";

const state = {
  health: null,
  ids: [],          // the map's track ids
  xy: [],           // their points
  rowOf: new Map(), // track id -> index in ids
  result: null,     // the last search result
  tracks: new Map(),// track id -> /api/tracks answer (hover captions)
  playing: null,    // the track id in the player
};

const $ = (id) => document.getElementById(id);

async function api(path, options) {
  const response = await fetch(path, options);
  let body = null;
  try {
    body = await response.json();
  } catch (err) {
    body = null;
  }
  if (!response.ok) {
    throw new Error((body && body.detail) || `${response.status} ${response.statusText}`);
  }
  return body;
}

function setMessage(text, isError = false) {
  const message = $("message");
  message.textContent = text;
  message.classList.toggle("error", isError);
}

function element(tag, className, text) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined) node.textContent = text;
  return node;
}

// ------------------------------------------------------------------------------------------------ queries

function queryKind(text, mode) {
  if (mode !== "auto") return mode;
  return text.includes(";") ? "tags" : "text";
}

function chosenK() {
  const k = Number.parseInt($("k").value, 10);
  return Number.isFinite(k) ? k : 10;
}

async function runSearch(describe, request) {
  setMessage(`Searching ${describe}…`);
  document.body.classList.add("busy");
  try {
    const result = await api("/api/search", request);
    showResult(result);
    setMessage(`${result.hits.length} results for ${describe}.`);
  } catch (err) {
    setMessage(err.message, true);
  } finally {
    document.body.classList.remove("busy");
  }
}

function searchJSON(query, describe) {
  const body = { ...query, k: chosenK() };
  return runSearch(describe, {
    method: "POST",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify(body),
  });
}

function searchText(event) {
  event.preventDefault();
  const text = $("query").value.trim();
  if (!text) {
    setMessage("Type tags (jazz;mellow) or a description first.", true);
    return;
  }
  const kind = queryKind(text, $("mode").value);
  searchJSON({ [kind]: text }, `${kind} “${text}”`);
}

function searchTrack(trackId) {
  const describe = `tracks like ${trackTitle(trackId)}`;
  searchJSON({ track_id: trackId, exclude_artist: $("exclude-artist").checked }, describe);
}

function searchFile() {
  const file = $("file").files[0];
  if (!file) return;
  const limit = state.health ? state.health.max_upload_bytes : Infinity;
  if (file.size > limit) {
    setMessage(`${file.name} is larger than this server's limit of ${(limit / 2 ** 20).toFixed(0)} MB.`, true);
    return;
  }
  const form = new FormData();
  form.append("file", file, file.name);
  form.append("k", String(chosenK()));
  form.append("exclude_artist", String($("exclude-artist").checked));
  runSearch(`the clip ${file.name}`, { method: "POST", body: form });
}

function trackTitle(trackId) {
  const known = state.tracks.get(trackId);
  if (known) return `“${known.title || trackId}”`;
  const hit = state.result && state.result.hits.find((h) => h.track_id === trackId);
  return hit ? `“${hit.title || trackId}”` : trackId;
}

// ------------------------------------------------------------------------------------------------ results

function formatTimings(timings) {
  const parts = Object.entries(timings || {}).map(([step, seconds]) => `${step} ${(seconds * 1000).toFixed(1)} ms`);
  return parts.length ? `Time: ${parts.join(" · ")}` : "";
}

function formatValue(value) {
  return Array.isArray(value) ? value.join("; ") : String(value);
}

function whyText(why) {
  if (!why) return "";
  const parts = [];
  if (why.shared_tags && why.shared_tags.length) parts.push(`shares ${why.shared_tags.join(", ")}`);
  if (why.terms && why.terms.length) parts.push(`matches ${why.terms.join(", ")}`);
  for (const [key, value] of Object.entries(why)) {
    if (key === "shared_tags" || key === "terms" || value === null || value === undefined) continue;
    if (Array.isArray(value) && !value.length) continue;
    parts.push(`${key.replaceAll("_", " ")}: ${formatValue(value)}`);
  }
  return parts.length ? `Why: ${parts.join("; ")}` : "Why: close in sound";
}

function tagList(tags) {
  const list = element("ul", "tags");
  for (const [tagset, values] of Object.entries(tags || {})) {
    for (const tag of values) {
      const item = element("li", `tag tagset-${tagset.replace(/[^a-z0-9_-]/gi, "")}`, tag);
      item.title = tagset;
      list.append(item);
    }
  }
  return list;
}

function hitItem(hit) {
  const item = element("li", "hit");
  item.dataset.trackId = hit.track_id;
  const head = element("div", "hit-head");
  head.append(element("span", "rank", String(hit.rank)));
  head.append(element("span", "title", hit.title || hit.track_id));
  head.append(element("span", "score", `score ${Number(hit.score).toFixed(3)}`));
  item.append(head);
  const by = [hit.artist, hit.album].filter(Boolean).join(" — ");
  item.append(element("div", "byline", by || hit.track_id));
  item.append(tagList(hit.tags));
  item.append(element("div", "why", whyText(hit.why)));
  const actions = element("div", "actions");
  const play = element("button", "play", "▶ Play");
  play.type = "button";
  play.addEventListener("click", () => togglePlay(hit));
  const similar = element("button", "similar", "More like this");
  similar.type = "button";
  similar.addEventListener("click", () => searchTrack(hit.track_id));
  actions.append(play, similar);
  item.append(actions);
  item.addEventListener("mouseenter", () => drawMap(hit.track_id));
  item.addEventListener("mouseleave", () => drawMap());
  return item;
}

function showResult(result) {
  state.result = result;
  for (const hit of result.hits) {
    state.tracks.set(hit.track_id, hit);
  }
  const query = result.query || {};
  const list = $("results");
  list.dataset.queryKind = query.kind || "";
  list.replaceChildren(...result.hits.map(hitItem));
  const space = query.space ? ` (${query.space} space)` : "";
  $("results-title").textContent = `Results for ${query.kind || "query"} “${formatValue(query.value ?? "")}”${space}`;
  $("timings").textContent = formatTimings(result.timings);
  markPlaying();
  drawMap();
}

// ------------------------------------------------------------------------------------------------ player

function togglePlay(hit) {
  const player = $("player");
  if (state.playing === hit.track_id && !player.paused) {
    player.pause();
    return;
  }
  if (state.playing !== hit.track_id) {
    player.src = `/api/audio/${encodeURIComponent(hit.track_id)}`;
    state.playing = hit.track_id;
    $("now-playing").textContent = `${hit.title || hit.track_id}${hit.artist ? " — " + hit.artist : ""}`;
  }
  player.play().catch((err) => setMessage(`Cannot play ${hit.title || hit.track_id}: ${err.message}`, true));
}

function markPlaying() {
  const player = $("player");
  for (const item of document.querySelectorAll("#results .hit")) {
    const active = item.dataset.trackId === state.playing && !player.paused;
    item.classList.toggle("playing", active);
    item.querySelector("button.play").textContent = active ? "❚❚ Pause" : "▶ Play";
  }
}

// ------------------------------------------------------------------------------------------------ map

function mapGeometry(canvas) {
  const pad = 14;
  let [minX, minY, maxX, maxY] = [Infinity, Infinity, -Infinity, -Infinity];
  for (const [x, y] of state.xy) {
    minX = Math.min(minX, x); maxX = Math.max(maxX, x);
    minY = Math.min(minY, y); maxY = Math.max(maxY, y);
  }
  const spanX = maxX - minX || 1;
  const spanY = maxY - minY || 1;
  const width = canvas.width - 2 * pad;
  const height = canvas.height - 2 * pad;
  return ([x, y]) => [pad + ((x - minX) / spanX) * width, pad + (1 - (y - minY) / spanY) * height];
}

function queryPoint(result) {
  if (!result) return null;
  if (result.query_xy) return result.query_xy;
  if (result.query && result.query.kind === "track") {
    const row = state.rowOf.get(result.query.value);
    return row === undefined ? null : state.xy[row];
  }
  return null;
}

function drawMap(focusId) {
  const canvas = $("map");
  const ctx = canvas.getContext("2d");
  ctx.clearRect(0, 0, canvas.width, canvas.height);
  if (!state.xy.length) return;
  const place = mapGeometry(canvas);
  ctx.fillStyle = "#b8c0cc";
  for (const point of state.xy) {
    const [px, py] = place(point);
    ctx.fillRect(px - 1.5, py - 1.5, 3, 3);
  }
  canvas.dataset.points = String(state.xy.length);
  const hits = state.result ? state.result.hits : [];
  const origin = queryPoint(state.result);
  const from = origin ? place(origin) : null;
  if (from) {
    ctx.strokeStyle = "rgba(217, 72, 15, 0.35)";
    ctx.lineWidth = 1;
    for (const hit of hits) {
      const [hx, hy] = place(hit.xy);
      ctx.beginPath(); ctx.moveTo(from[0], from[1]); ctx.lineTo(hx, hy); ctx.stroke();
    }
  }
  ctx.font = "11px system-ui, sans-serif";
  for (const hit of hits) {
    const [hx, hy] = place(hit.xy);
    const focused = hit.track_id === focusId;
    ctx.fillStyle = focused ? "#d9480f" : "#1c7ed6";
    ctx.beginPath(); ctx.arc(hx, hy, focused ? 7 : 5, 0, 2 * Math.PI); ctx.fill();
    ctx.fillStyle = "#111";
    ctx.fillText(String(hit.rank), hx + 7, hy - 6);
  }
  canvas.dataset.highlighted = String(hits.length);
  if (from) {
    drawStar(ctx, from[0], from[1]);
  }
  canvas.dataset.query = from ? "shown" : "none";
}

function drawStar(ctx, x, y) {
  ctx.fillStyle = "#d9480f";
  ctx.strokeStyle = "#fff";
  ctx.lineWidth = 1.5;
  ctx.beginPath();
  for (let i = 0; i < 10; i++) {
    const r = i % 2 ? 4 : 10;
    const a = (Math.PI / 5) * i - Math.PI / 2;
    ctx.lineTo(x + r * Math.cos(a), y + r * Math.sin(a));
  }
  ctx.closePath(); ctx.fill(); ctx.stroke();
}

function nearestPoint(event) {
  const canvas = $("map");
  const box = canvas.getBoundingClientRect();
  const mx = ((event.clientX - box.left) / box.width) * canvas.width;
  const my = ((event.clientY - box.top) / box.height) * canvas.height;
  const place = mapGeometry(canvas);
  let best = null;
  let bestDistance = 8 * 8;
  state.xy.forEach((point, row) => {
    const [px, py] = place(point);
    const distance = (px - mx) ** 2 + (py - my) ** 2;
    if (distance < bestDistance) {
      best = row;
      bestDistance = distance;
    }
  });
  return best === null ? null : state.ids[best];
}

async function describePoint(trackId) {
  const caption = $("map-caption");
  if (!trackId) return;
  try {
    if (!state.tracks.has(trackId)) {
      state.tracks.set(trackId, await api(`/api/tracks/${encodeURIComponent(trackId)}`));
    }
    const track = state.tracks.get(trackId);
    caption.textContent = `${track.title || trackId} — ${track.artist || "?"} (click: tracks like it)`;
  } catch (err) {
    caption.textContent = err.message;
  }
}

// ------------------------------------------------------------------------------------------------ start

async function start() {
  $("query-form").addEventListener("submit", searchText);
  $("file").addEventListener("change", searchFile);
  const player = $("player");
  for (const event of ["play", "pause", "ended"]) player.addEventListener(event, markPlaying);
  player.addEventListener("error", () => setMessage("The audio could not be played.", true));
  const canvas = $("map");
  let hovered = null;
  canvas.addEventListener("mousemove", (event) => {
    const trackId = nearestPoint(event);
    if (trackId !== hovered) {
      hovered = trackId;
      describePoint(trackId);
    }
  });
  canvas.addEventListener("click", (event) => {
    const trackId = nearestPoint(event);
    if (trackId) searchTrack(trackId);
  });
  try {
    state.health = await api("/health");
    const model = state.health.model_id ? ` · model ${state.health.model_id.slice(0, 12)}` : "";
    $("status").textContent = `${state.health.tracks} tracks${model}`;
    $("k").max = String(state.health.max_k);
  } catch (err) {
    $("status").textContent = "server not reachable";
    setMessage(err.message, true);
    return;
  }
  try {
    const map = await api("/api/map");
    state.ids = map.ids;
    state.xy = map.xy;
    map.ids.forEach((trackId, row) => state.rowOf.set(trackId, row));
    drawMap();
  } catch (err) {
    setMessage(`The map could not be loaded: ${err.message}`, true);
  }
  document.body.dataset.ready = "true";
}

start();
