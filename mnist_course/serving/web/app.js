// The drawing page of mnist_course.serving.service: a 280x280 canvas, and the model's answer either from the
// server (POST /predict with the canvas as PNG) or from the exported ONNX model run in the browser by
// onnxruntime-web (served by the service under /vendor/onnxruntime-web/; no CDN, works offline). The
// in-browser engine is optional: where GET /models says it is not installed, the page says so and how
// to get it (`make web-deps`), and answers from the server.
import { NOT_SURE_BELOW, canvasToGray, judge, preprocess, softmax, toModelInput } from "./preprocess.js";

const SIZE = 280;                 // the canvas's own pixels, whatever its size on screen
const THROTTLE_MS = 150;          // at most one prediction this often while drawing
const VENDOR = "/vendor/onnxruntime-web/";
const CLASSES_FALLBACK = ["0", "1", "2", "3", "4", "5", "6", "7", "8", "9"];

const $ = (id) => document.getElementById(id);
const pad = $("pad");
const ctx = pad.getContext("2d", { willReadFrequently: true });  // read back on every prediction
const result = $("result");

const state = {
  strokes: [],        // each a list of [x, y] in canvas pixels
  drawing: null,      // the stroke under the pointer
  version: 0,         // bumped on every change of the drawing
  models: [],         // GET /models
  engine: "server",
  browserEngine: { available: true, detail: null },   // GET /models's browser_engine
};

// ------------------------------------------------------------------------------------- drawing

function brush() {
  return Number($("brush").value);
}

// Pointer position -> canvas pixels, through the canvas's size on screen (any width, 1:1).
function toCanvas(event) {
  const rect = pad.getBoundingClientRect();
  return [(event.clientX - rect.left) * (SIZE / rect.width), (event.clientY - rect.top) * (SIZE / rect.height)];
}

function paintStroke(stroke) {
  ctx.fillStyle = ctx.strokeStyle = "#fff";
  ctx.lineWidth = stroke.brush;
  ctx.lineCap = ctx.lineJoin = "round";
  // A dot at each end: the canvas drops zero-length lines (a tap, or a pointer that did not move).
  for (const [x, y] of [stroke.points[0], stroke.points[stroke.points.length - 1]]) {
    ctx.beginPath();
    ctx.arc(x, y, stroke.brush / 2, 0, 2 * Math.PI);
    ctx.fill();
  }
  if (stroke.points.length > 1) {
    ctx.beginPath();
    stroke.points.forEach(([x, y], i) => (i ? ctx.lineTo(x, y) : ctx.moveTo(x, y)));
    ctx.stroke();
  }
}

function redraw() {
  ctx.fillStyle = "#000";
  ctx.fillRect(0, 0, SIZE, SIZE);
  state.strokes.forEach(paintStroke);
}

function changed(final) {
  state.version += 1;
  pad.dataset.version = String(state.version);
  if (state.strokes.length === 0) {
    showEmpty();
  } else {
    schedule(final);
  }
}

pad.addEventListener("pointerdown", (event) => {
  if (event.button !== 0) return;
  event.preventDefault();
  pad.setPointerCapture(event.pointerId);   // the stroke goes on outside the canvas
  state.drawing = { points: [toCanvas(event)], brush: brush(), pointerId: event.pointerId };
  state.strokes.push(state.drawing);
  paintStroke(state.drawing);
  changed(false);
});

pad.addEventListener("pointermove", (event) => {
  const stroke = state.drawing;
  if (!stroke || event.pointerId !== stroke.pointerId) return;
  const events = event.getCoalescedEvents ? event.getCoalescedEvents() : [];
  for (const e of events.length ? events : [event]) stroke.points.push(toCanvas(e));
  redraw();
  changed(false);
});

function endStroke(event) {
  const stroke = state.drawing;
  if (!stroke || event.pointerId !== stroke.pointerId) return;
  state.drawing = null;
  changed(true);
}
pad.addEventListener("pointerup", endStroke);
pad.addEventListener("pointercancel", endStroke);

$("clear").addEventListener("click", () => {
  state.strokes = [];
  redraw();
  changed(true);
});

$("undo").addEventListener("click", () => {
  state.strokes.pop();
  redraw();
  changed(true);
});

// ---------------------------------------------------------------------------- scheduling

// One prediction at a time: while drawing at most one per THROTTLE_MS, at the end of a stroke at
// once (or right after the one running), and always one for the last version of the drawing.
const queue = { busy: false, dirty: false, urgent: false, timer: null, last: 0 };

function schedule(final) {
  queue.dirty = true;
  queue.urgent ||= final;
  if (queue.busy) return;
  const wait = queue.urgent ? 0 : Math.max(0, queue.last + THROTTLE_MS - performance.now());
  clearTimeout(queue.timer);
  queue.timer = setTimeout(flush, wait);
}

async function flush() {
  queue.timer = null;
  if (queue.busy || !queue.dirty) return;
  queue.busy = true;
  queue.dirty = queue.urgent = false;
  queue.last = performance.now();
  const version = state.version;
  const engine = state.engine;
  try {
    const answer = engine === "server" ? await predictOnServer() : await predictInBrowser();
    if (version === state.version && engine === state.engine) show(answer, version);
    hideError();
  } catch (error) {
    showError(error.message || String(error));
  } finally {
    queue.busy = false;
  }
  if (queue.dirty) schedule(queue.urgent);
}

// -------------------------------------------------------------------------------- engines

function selectedModel() {
  const name = $("model").value;
  return state.models.find((m) => m.name === name) || { name, mean: 0.1307, std: 0.3081, classes: CLASSES_FALLBACK };
}

async function readError(response) {
  try {
    const body = await response.json();
    return body.detail ? (typeof body.detail === "string" ? body.detail : JSON.stringify(body.detail)) : response.statusText;
  } catch {
    return response.statusText;
  }
}

async function predictOnServer() {
  const model = selectedModel();
  const blob = await new Promise((resolve) => pad.toBlob(resolve, "image/png"));
  const form = new FormData();
  form.append("file", blob, "drawing.png");
  const start = performance.now();
  const response = await fetch(`/predict?model=${encodeURIComponent(model.name)}&k=3`, { method: "POST", body: form });
  if (!response.ok) throw new Error(`the server answered ${response.status}: ${await readError(response)}`);
  const body = await response.json();
  return {
    engine: "server",
    engineLabel: `on the server (${body.engine || "pytorch"})`,
    model: body.model || model.name,
    digit: body.digit,
    status: body.status || (body.digit === null ? "no digit" : "digit"),
    reason: body.reason,
    topk: body.topk || [],
    probabilities: body.probabilities,
    inputSrc: body.input_png,
    modelMs: body.model_seconds != null ? 1000 * body.model_seconds : null,
    serverMs: body.inference_ms,
    totalMs: performance.now() - start,
  };
}

const sessions = new Map();   // model name -> Promise of an onnxruntime-web InferenceSession
let ortModule = null;

async function loadOrt() {
  if (!ortModule) {
    ortModule = import(`${VENDOR}ort.wasm.min.mjs`).then((ort) => {
      ort.env.wasm.wasmPaths = VENDOR;  // the .wasm and its loader come from the service too
      ort.env.wasm.numThreads = 1;      // no worker threads: no cross-origin isolation needed
      ort.env.wasm.proxy = false;
      return ort;
    }).catch((error) => {
      ortModule = null;
      throw new Error(`could not load onnxruntime-web from ${VENDOR} (${error.message}); ` +
                      "on the server, run `make web-deps`, then reload the page.");
    });
  }
  return ortModule;
}

function session(model) {
  if (!model.onnx) {
    return Promise.reject(new Error(`model ${model.name} has no ONNX export; run ` +
                                    `\`mnist-course export --model ${model.name}\` and restart the service.`));
  }
  if (!sessions.has(model.name)) {
    const loading = loadOrt().then((ort) => ort.InferenceSession.create(model.onnx, { executionProviders: ["wasm"] }));
    loading.catch(() => sessions.delete(model.name));
    sessions.set(model.name, loading);
  }
  return sessions.get(model.name);
}

// The server's "not sure" rule (drawing.judge on the 28x28 input), with the threshold GET /models gives, if any.
function decide(probs, model, image) {
  const classes = model.classes || CLASSES_FALLBACK;
  const order = probs.map((p, i) => i).sort((a, b) => probs[b] - probs[a]);
  const topk = order.slice(0, 3).map((i) => ({ label: classes[i], probability: probs[i] }));
  const { status, reason } = judge(probs, classes, model.not_sure_below ?? NOT_SURE_BELOW, image);
  return { digit: status === "digit" ? classes[order[0]] : null, status, reason, topk };
}

async function predictInBrowser() {
  const model = selectedModel();
  const ort = await loadOrt();
  const sess = await session(model);
  const start = performance.now();
  const pixels = ctx.getImageData(0, 0, SIZE, SIZE).data;
  const { gray, width, height } = canvasToGray(pixels, SIZE, SIZE);
  const pre = preprocess(gray, width, height);
  const base = { engine: "browser", engineLabel: "in the browser (onnxruntime-web, wasm)", model: model.name };
  if (!pre.image) {
    return { ...base, digit: null, status: "no digit", reason: pre.reason, topk: [], probabilities: null,
             inputSrc: null, modelMs: null, totalMs: performance.now() - start };
  }
  const input = new ort.Tensor("float32", toModelInput(pre.image, model.mean, model.std), [1, 1, 28, 28]);
  const modelStart = performance.now();
  const output = await sess.run({ [sess.inputNames[0]]: input });
  const modelMs = performance.now() - modelStart;
  const probs = softmax(output[sess.outputNames[0]].data);
  return { ...base, ...decide(probs, model, pre.image), probabilities: probs, inputSrc: imageUrl(pre.image), modelMs,
           totalMs: performance.now() - start };
}

// (784) in [0, 1] -> a PNG data URL of the 28x28 picture.
function imageUrl(image) {
  const small = document.createElement("canvas");
  small.width = small.height = 28;
  const c = small.getContext("2d");
  const data = c.createImageData(28, 28);
  image.forEach((v, i) => {
    const g = Math.round(255 * Math.min(1, Math.max(0, v)));
    data.data.set([g, g, g, 255], 4 * i);
  });
  c.putImageData(data, 0, 0);
  return small.toDataURL("image/png");
}

// --------------------------------------------------------------------------------- display

function buildBars() {
  $("bars").replaceChildren(...CLASSES_FALLBACK.map((label) => {
    const li = document.createElement("li");
    li.dataset.label = label;
    li.innerHTML = `<span class="label">${label}</span><span class="track"><span class="fill"></span></span>` +
                   '<span class="pct"></span>';
    return li;
  }));
}

function setBars(probabilities) {
  const items = [...$("bars").children];
  const top = probabilities ? probabilities.indexOf(Math.max(...probabilities)) : -1;
  items.forEach((li, i) => {
    const p = probabilities ? probabilities[i] : 0;
    li.querySelector(".fill").style.width = `${(100 * p).toFixed(1)}%`;
    li.querySelector(".pct").textContent = probabilities ? `${(100 * p).toFixed(1)}%` : "";
    li.classList.toggle("top", i === top);
  });
}

function ms(value) {
  return value == null ? "–" : `${value.toFixed(1)} ms`;
}

function show(answer, version) {
  let big, line;
  if (answer.status === "digit") {
    big = answer.digit;
    line = answer.topk.map((t) => `${t.label} (${(100 * t.probability).toFixed(1)}%)`).join(", ");
  } else if (answer.status === "not sure") {
    big = `not sure: ${answer.reason || ""}`.trim();
    line = "the model hesitates between these digits";
  } else {
    big = "no digit";
    line = answer.reason ? `(${answer.reason})` : "";
  }
  $("answer").textContent = big;
  $("status").textContent = line;
  setBars(answer.probabilities);
  if (answer.inputSrc) $("input").src = answer.inputSrc;
  else $("input").removeAttribute("src");
  const time = answer.engine === "server"
    ? `model ${ms(answer.modelMs)}, on the server ${ms(answer.serverMs)}, round trip ${ms(answer.totalMs)}`
    : `model ${ms(answer.modelMs)}, with preprocessing ${ms(answer.totalMs)}`;
  $("meta").textContent = `answered ${answer.engineLabel} · model ${answer.model} · ${time}`;
  Object.assign(result.dataset, { version: String(version), engine: answer.engine, digit: answer.digit ?? "",
                                  status: answer.status, reason: answer.reason ?? "",
                                  probabilities: JSON.stringify(answer.probabilities ? Array.from(answer.probabilities) : null) });
}

function showEmpty() {
  $("answer").textContent = "–";
  $("status").textContent = "Draw a digit.";
  $("meta").textContent = "";
  $("input").removeAttribute("src");
  setBars(null);
  Object.assign(result.dataset, { version: String(state.version), engine: "", digit: "", status: "empty", reason: "",
                                  probabilities: "null" });
}

// Text with `code` in backticks -> nodes, the code in <code>.
function withCode(text) {
  return text.split("`").map((part, i) => {
    if (i % 2 === 0) return document.createTextNode(part);
    const code = document.createElement("code");
    code.textContent = part;
    return code;
  });
}

// GET /models's browser_engine: where onnxruntime-web is missing, a visible line saying so and how to
// get it, and only the server to choose.
function setBrowserEngine(engine) {
  state.browserEngine = engine || { available: true, detail: null };   // an older service: try it
  const radio = document.querySelector('input[name="engine"][value="browser"]');
  const note = $("engine-note");
  radio.disabled = !state.browserEngine.available;
  if (state.browserEngine.available) {
    note.hidden = true;
    return;
  }
  if (radio.checked) {
    document.querySelector('input[name="engine"][value="server"]').checked = true;
    state.engine = "server";
  }
  note.replaceChildren(...withCode(state.browserEngine.detail || "the in-browser engine is not installed: " +
                                   "on the server, run `make web-deps`, then reload the page."));
  note.hidden = false;
}

function showError(message) {
  $("error").textContent = message;
  $("error").hidden = false;
}

function hideError() {
  $("error").hidden = true;
}

// ------------------------------------------------------------------------------------ start

document.querySelectorAll('input[name="engine"]').forEach((radio) => radio.addEventListener("change", () => {
  state.engine = radio.value;
  if (state.engine === "browser") session(selectedModel()).catch((error) => showError(error.message));
  if (state.strokes.length) schedule(true);
}));

$("model").addEventListener("change", () => {
  if (state.engine === "browser") session(selectedModel()).catch((error) => showError(error.message));
  if (state.strokes.length) schedule(true);
});

async function start() {
  buildBars();
  redraw();
  showEmpty();
  const checked = document.querySelector('input[name="engine"]:checked');
  state.engine = checked ? checked.value : "server";
  try {
    const response = await fetch("/models");
    if (!response.ok) throw new Error(`GET /models answered ${response.status}: ${await readError(response)}`);
    const body = await response.json();
    state.models = body.models;
    setBrowserEngine(body.browser_engine);
    $("model").replaceChildren(...body.models.map((m) => {
      const option = new Option(`${m.name}${m.accuracy != null ? ` (${(100 * m.accuracy).toFixed(2)}% on MNIST test)` : ""}`, m.name);
      option.selected = m.name === body.default;
      return option;
    }));
  } catch (error) {
    showError(`could not list the models: ${error.message}`);
  }
  document.body.dataset.ready = "true";
}

start();
