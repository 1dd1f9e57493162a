// The drawing pad's canvas (mnist_course.pad.StrokeCanvas), an anywidget front end.
//
// The browser draws the ink itself, at once; the kernel only gets the strokes, in the synced
// `strokes` trait: [[[x, y], ...], ...] in frame pixels (0..size), never in screen pixels.
// - Only a pressed button (or a finger, or a pen) draws and sends: hovering sends nothing.
// - While drawing, the strokes go to the kernel at most once every `throttle` seconds; always when
//   the stroke ends.
// - setPointerCapture keeps the stroke going when the pointer leaves the canvas with the button
//   held; without capture, re-entering with the button held continues it.
// - Every view paints `strokes` when it is rendered, so a reloaded page, a reopened notebook or a
//   second view shows the same ink.
// - The canvas is shown at any width with a 1:1 aspect ratio (pad.css); points are mapped to the
//   size x size frame with getBoundingClientRect.

function render({ model, el }) {
  const canvas = document.createElement("canvas");
  canvas.className = "mnist-course-canvas";
  el.classList.add("mnist-course-pad");
  el.appendChild(canvas);
  const ctx = canvas.getContext("2d");

  let base = null; // the strokes there were when the current stroke began
  let current = null; // the stroke being drawn: [[x, y], ...], or null
  let pointer = null; // the pointer drawing it (a second finger is ignored)
  let lastSent = 0;
  let timer = null;

  const frame = () => model.get("size");

  function style() {
    ctx.strokeStyle = "white";
    ctx.fillStyle = "white";
    ctx.lineWidth = model.get("brush");
    ctx.lineCap = "round";
    ctx.lineJoin = "round";
  }

  function dot([x, y]) {
    ctx.beginPath();
    ctx.arc(x, y, model.get("brush") / 2, 0, 2 * Math.PI);
    ctx.fill();
  }

  function segment([x0, y0], [x1, y1]) {
    ctx.beginPath();
    ctx.moveTo(x0, y0);
    ctx.lineTo(x1, y1);
    ctx.stroke();
  }

  function paint() {
    const n = frame();
    if (canvas.width !== n || canvas.height !== n) {
      canvas.width = n;
      canvas.height = n;
    }
    canvas.style.maxWidth = `${n}px`; // drawn 1:1 at most, smaller in a narrow window
    el.style.maxWidth = `${n}px`;
    ctx.fillStyle = "black";
    ctx.fillRect(0, 0, n, n);
    style();
    const strokes = current ? [...base, current] : model.get("strokes");
    for (const s of strokes) {
      if (!s.length) continue;
      dot(s[0]);
      if (s.length > 1) {
        ctx.beginPath();
        ctx.moveTo(s[0][0], s[0][1]);
        for (const [x, y] of s.slice(1)) ctx.lineTo(x, y);
        ctx.stroke();
      }
    }
  }

  // A pointer event -> [x, y] in frame pixels, whatever size the canvas is shown at.
  function point(e) {
    const r = canvas.getBoundingClientRect();
    const n = frame();
    const x = ((e.clientX - r.left) * n) / r.width;
    const y = ((e.clientY - r.top) * n) / r.height;
    return [Math.round(x * 10) / 10, Math.round(y * 10) / 10];
  }

  function send() {
    clearTimeout(timer);
    timer = null;
    lastSent = performance.now();
    model.set("strokes", current ? [...base, current.slice()] : model.get("strokes"));
    model.save_changes();
  }

  function sendSoon() {
    const wait = 1000 * model.get("throttle") - (performance.now() - lastSent);
    if (wait <= 0) send();
    else if (timer === null) timer = setTimeout(() => current && send(), wait);
  }

  function start(e) {
    base = model.get("strokes").slice();
    current = [point(e)];
    lastSent = performance.now();
    style();
    dot(current[0]);
  }

  function extend(e) {
    const events = e.getCoalescedEvents ? e.getCoalescedEvents() : [];
    for (const ev of events.length ? events : [e]) {
      const p = point(ev);
      const last = current[current.length - 1];
      if (p[0] === last[0] && p[1] === last[1]) continue;
      style();
      segment(last, p);
      current.push(p);
    }
    sendSoon();
  }

  function end() {
    if (!current) return;
    const strokes = [...base, current];
    base = null;
    current = null;
    clearTimeout(timer);
    timer = null;
    model.set("strokes", strokes);
    model.save_changes();
    paint();
  }

  const held = (e) => (e.buttons & 1) === 1 || e.pointerType !== "mouse";

  canvas.addEventListener("pointerdown", (e) => {
    if (current || (e.pointerType === "mouse" && e.button !== 0)) return;
    e.preventDefault();
    pointer = e.pointerId;
    try {
      canvas.setPointerCapture(e.pointerId);
    } catch (_) {
      // no capture: re-entering with the button held continues the stroke (pointerenter below)
    }
    start(e);
  });
  canvas.addEventListener("pointermove", (e) => {
    if (!current || e.pointerId !== pointer) return; // hovering: nothing is drawn, nothing is sent
    if (!held(e)) {
      end(); // the button was released where we could not see it
      return;
    }
    extend(e);
  });
  canvas.addEventListener("pointerenter", (e) => {
    if (current && e.pointerId === pointer && !held(e)) end();
  });
  const release = (e) => {
    if (e.pointerId === pointer) end();
  };
  canvas.addEventListener("pointerup", release);
  canvas.addEventListener("pointercancel", release);

  const repaint = () => {
    if (!current) paint();
  };
  model.on("change:strokes", repaint);
  model.on("change:size", repaint);
  model.on("change:brush", repaint);
  paint();
  return () => {
    clearTimeout(timer);
    model.off("change:strokes", repaint);
    model.off("change:size", repaint);
    model.off("change:brush", repaint);
  };
}

export default { render };
