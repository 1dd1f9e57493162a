// The drawing page's in-browser preprocessing: a port of mnist_course.drawing.preprocess for clean
// canvas drawings (a flat background, no noise), so that onnxruntime-web sees the same 28x28 input as
// the server's model and says "no digit" for the same reasons.
//
// canvas RGBA -> gray (canvasToGray: shrunk to at most 256 pixels a side, as the server reads it), then
// gray (H*W Float32Array in [0, 1]) -> {image: Float32Array(784) in [0, 1] | null, reason} (preprocess):
//   1. background: the median level (flat: at least half of the pixels within 2/255 of it); the ink
//      is what light ink adds to it, or the fraction of its light that dark ink takes;
//   2. threshold: the largest of MIN_CONTRAST, the noise floor and RELATIVE x the ink's level;
//   3. speckle removed: 8-connected pieces smaller than MIN_AREA of the picture or a tenth of the
//      largest piece, or more than half its extent away from it, are dropped; a blob (a tap), a speck
//      or a horizontal dash one stroke thick is no digit;
//   4. ink scaled from the noise floor (0) to its 90th percentile (1), kept within 2 pixels of the
//      kept pieces;
//   5. crop to the ink (pixels above 0.2), resize so the longer side is 20 pixels keeping the aspect
//      ratio (Lanczos, as Pillow does it), paste into 28x28 with the centre of mass at (14, 14).
// Then the model gets (x - mean) / std, shape (1, 1, 28, 28): see toModelInput.
// NumPy's float32 arithmetic is mirrored with Math.fround, so the result matches to float precision;
// tests/test_web_page.py compares it with the library.

export const BOX = 20;
export const SIZE = 28;
export const CENTRE = 14.0;
export const THRESHOLD = 0.2;
export const MAX_SIDE = 256;    // drawing.MAX_SIDE: a 280x280 canvas is read at 140x140
// drawing.preprocess's defaults
export const MIN_CONTRAST = 0.1;
export const RELATIVE = 0.35;
export const MIN_AREA = 0.0005;
export const MIN_EXTENT = 1.6;
export const MAX_ELONGATION = 2.5;
export const MAX_TILT = 30.0;
export const MAX_COVER = 0.5;
export const MIN_PIXELS = 10;
// drawing.NOT_SURE_BELOW: "not sure" below this top probability (GET /models's not_sure_below wins)
export const NOT_SURE_BELOW = 0.81;
export const NO_INK = "no ink", TOO_LITTLE = "too little structure", EVERYWHERE = "ink everywhere";

// Python's round(): halves go to the even neighbour (round(2.5) == 2).
export function pyRound(x) {
  const r = Math.round(x);
  return Math.abs(x % 1) === 0.5 && r % 2 !== 0 ? r - 1 : r;
}

// RGBA bytes (a canvas's ImageData.data, H x W) -> {gray: Float32Array in [0, 1], width, height}, as
// drawing.load_image reads the canvas's PNG: shrunk by a whole factor (box average of the bytes,
// rounded as Pillow's reduce) to at most MAX_SIDE pixels a side, then ITU-R 601 luma (Pillow's "L")
// in float32, transparent pixels over black.
export function canvasToGray(rgba, width, height, maxSide = MAX_SIDE) {
  const f = Math.ceil(Math.max(width, height) / maxSide);
  const w = Math.floor(width / f), h = Math.floor(height / f);
  const gray = new Float32Array(w * h);
  const channel = new Float32Array(4);
  for (let y = 0; y < h; y++) {
    for (let x = 0; x < w; x++) {
      for (let c = 0; c < 4; c++) {
        let sum = 0;
        for (let dy = 0; dy < f; dy++) for (let dx = 0; dx < f; dx++) sum += rgba[4 * ((y * f + dy) * width + x * f + dx) + c];
        channel[c] = Math.fround(Math.floor((sum + (f * f) / 2) / (f * f)) / 255);
      }
      const [r, g, b, a] = channel;
      const luma = Math.fround(Math.fround(Math.fround(r * 0.299) + Math.fround(g * 0.587)) + Math.fround(b * 0.114));
      gray[y * w + x] = a === 1 ? luma : Math.fround(luma * a);
    }
  }
  return { gray, width: w, height: h };
}

export function cropToInk(img, width, height, threshold = THRESHOLD) {
  threshold = Math.fround(threshold);  // NumPy compares a float32 image with float32(0.2)
  let top = height, bottom = -1, left = width, right = -1;
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) {
      if (img[y * width + x] > threshold) {
        top = Math.min(top, y); bottom = Math.max(bottom, y);
        left = Math.min(left, x); right = Math.max(right, x);
      }
    }
  }
  if (bottom < 0) return { img: new Float32Array(0), width: 0, height: 0 };
  const w = right - left + 1, h = bottom - top + 1;
  const out = new Float32Array(w * h);
  for (let y = 0; y < h; y++) {
    for (let x = 0; x < w; x++) out[y * w + x] = img[(top + y) * width + left + x];
  }
  return { img: out, width: w, height: h };
}

function sinc(x) {
  if (x === 0) return 1;
  x *= Math.PI;
  return Math.sin(x) / x;
}

function lanczos(x) {
  return x >= -3 && x < 3 ? sinc(x) * sinc(x / 3) : 0;
}

// Pillow's precompute_coeffs (Resample.c): per output pixel, the first input index and the weights.
function coefficients(inSize, outSize) {
  const scale = inSize / outSize;
  const filterscale = Math.max(scale, 1);
  const support = 3 * filterscale;
  const result = [];
  for (let xx = 0; xx < outSize; xx++) {
    const center = (xx + 0.5) * scale;
    const xmin = Math.max(Math.trunc(center - support + 0.5), 0);
    const xmax = Math.min(Math.trunc(center + support + 0.5), inSize) - xmin;
    const k = new Float64Array(Math.max(xmax, 0));
    let ww = 0;
    for (let x = 0; x < xmax; x++) {
      k[x] = lanczos((x + xmin - center + 0.5) / filterscale);
      ww += k[x];
    }
    if (ww !== 0) for (let x = 0; x < xmax; x++) k[x] /= ww;
    result.push({ xmin, k });
  }
  return result;
}

// Resize a float image with Pillow's Lanczos filter (horizontal pass, then vertical, float32 between).
export function resizeLanczos(img, width, height, newWidth, newHeight) {
  let cur = img, w = width;
  if (newWidth !== width) {
    const cs = coefficients(width, newWidth);
    const out = new Float32Array(newWidth * height);
    for (let y = 0; y < height; y++) {
      for (let xx = 0; xx < newWidth; xx++) {
        const { xmin, k } = cs[xx];
        let s = 0;
        for (let x = 0; x < k.length; x++) s += cur[y * w + xmin + x] * k[x];
        out[y * newWidth + xx] = s;
      }
    }
    cur = out; w = newWidth;
  }
  if (newHeight !== height) {
    const cs = coefficients(height, newHeight);
    const out = new Float32Array(w * newHeight);
    for (let yy = 0; yy < newHeight; yy++) {
      const { xmin, k } = cs[yy];
      for (let x = 0; x < w; x++) {
        let s = 0;
        for (let y = 0; y < k.length; y++) s += cur[(xmin + y) * w + x] * k[y];
        out[yy * w + x] = s;
      }
    }
    cur = out;
  }
  return cur;
}

export function fitBox(img, width, height, box = BOX) {
  const scale = box / Math.max(width, height);
  const w = Math.max(1, pyRound(width * scale)), h = Math.max(1, pyRound(height * scale));
  const out = resizeLanczos(img, width, height, w, h).map((v) => Math.min(1, Math.max(0, v)));
  return { img: out, width: w, height: h };
}

export function centreInField(img, width, height, size = SIZE, centre = CENTRE) {
  let total = 0, sy = 0, sx = 0;
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) {
      const v = img[y * width + x];
      total += v; sy += y * v; sx += x * v;
    }
  }
  const clip = (v, lo, hi) => Math.min(hi, Math.max(lo, v));
  const top = clip(pyRound(centre - sy / total), 0, size - height);
  const left = clip(pyRound(centre - sx / total), 0, size - width);
  const out = new Float32Array(size * size);
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) out[(top + y) * size + left + x] = img[y * width + x];
  }
  return out;
}

// NumPy's percentile (linear interpolation) of sorted values, q in [0, 100].
function fromSorted(a, q) {
  const pos = (q / 100) * (a.length - 1);
  const lo = Math.floor(pos), hi = Math.min(lo + 1, a.length - 1);
  return Math.fround(a[lo] + (a[hi] - a[lo]) * (pos - lo));
}

export function percentile(values, q) {
  return fromSorted(Float32Array.from(values).sort(), q);
}

// 8-connected pieces of a mask, numbered 1, 2, ... in the order a raster scan meets them (as
// scipy.ndimage.label): {labels (Int32Array), count, areas, boxes [top, bottom+1, left, right+1]}.
export function label(mask, width, height) {
  const parent = [0];
  const find = (i) => { while (parent[i] !== i) i = parent[i] = parent[parent[i]]; return i; };
  const provisional = new Int32Array(width * height);
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) {
      if (!mask[y * width + x]) continue;
      let mine = 0;
      for (let k = 0; k < 4; k++) {   // the neighbours already seen: up-left, up, up-right, left
        const yy = k < 3 ? y - 1 : y, xx = k < 3 ? x - 1 + k : x - 1;
        if (yy < 0 || xx < 0 || xx >= width) continue;
        const other = provisional[yy * width + xx];
        if (!other) continue;
        if (!mine) mine = find(other);
        else {
          const a = find(mine), b = find(other);
          if (a !== b) parent[Math.max(a, b)] = Math.min(a, b);
          mine = Math.min(a, b);
        }
      }
      if (!mine) { mine = parent.length; parent.push(mine); }
      provisional[y * width + x] = mine;
    }
  }
  const final = new Int32Array(parent.length);
  const labels = new Int32Array(width * height);
  const areas = [], boxes = [];
  for (let i = 0; i < labels.length; i++) {
    if (!provisional[i]) continue;
    const root = find(provisional[i]);
    if (!final[root]) { final[root] = areas.length + 1; areas.push(0); boxes.push([Infinity, -1, Infinity, -1]); }
    const l = final[root], y = Math.floor(i / width), x = i % width, box = boxes[l - 1];
    labels[i] = l;
    areas[l - 1]++;
    box[0] = Math.min(box[0], y); box[1] = Math.max(box[1], y + 1);
    box[2] = Math.min(box[2], x); box[3] = Math.max(box[3], x + 1);
  }
  return { labels, count: areas.length, areas, boxes };
}

// Squared Euclidean distance to the nearest 0 of a 1D array (Felzenszwalb and Huttenlocher).
function edt1d(f) {
  const n = f.length, d = new Float64Array(n), v = new Int32Array(n), z = new Float64Array(n + 1);
  let k = 0;
  v[0] = 0; z[0] = -Infinity; z[1] = Infinity;
  for (let q = 1; q < n; q++) {
    let s;
    for (;;) {
      const p = v[k];
      s = (f[q] + q * q - (f[p] + p * p)) / (2 * q - 2 * p);
      if (s <= z[k] && k > 0) k--; else break;
    }
    if (s <= z[k]) { v[0] = q; z[0] = -Infinity; z[1] = Infinity; k = 0; continue; }
    k++; v[k] = q; z[k] = s; z[k + 1] = Infinity;
  }
  k = 0;
  for (let q = 0; q < n; q++) {
    while (z[k + 1] < q) k++;
    d[q] = (q - v[k]) ** 2 + f[v[k]];
  }
  return d;
}

// A kept-ink mask -> {height, width, stroke, elongation, tilt}, as drawing._structure.
export function structure(mask, width, height) {
  let top = height, bottom = -1, left = width, right = -1, n = 0, sr = 0, sc = 0;
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) {
      if (!mask[y * width + x]) continue;
      top = Math.min(top, y); bottom = Math.max(bottom, y); left = Math.min(left, x); right = Math.max(right, x);
      n++; sr += y; sc += x;
    }
  }
  const h = bottom - top + 1, w = right - left + 1;
  // stroke: twice the largest distance from a kept pixel to the nearest other pixel (box padded by 1)
  const bw = w + 2, bh = h + 2, big = 1e20;
  const f = new Float64Array(bw * bh);
  for (let y = 0; y < h; y++) {
    for (let x = 0; x < w; x++) if (mask[(top + y) * width + left + x]) f[(y + 1) * bw + x + 1] = big;
  }
  for (let x = 0; x < bw; x++) {
    const col = edt1d(Float64Array.from({ length: bh }, (_, y) => f[y * bw + x]));
    for (let y = 0; y < bh; y++) f[y * bw + x] = col[y];
  }
  let most = 0;
  for (let y = 0; y < bh; y++) {
    const row = edt1d(f.subarray(y * bw, (y + 1) * bw));
    for (const v of row) most = Math.max(most, v);
  }
  // elongation and tilt from the covariance of the pixels' (row, column)
  const mr = sr / n, mc = sc / n;
  let a = 0, b = 0, d = 0;
  if (n > 1) {
    for (let y = top; y <= bottom; y++) {
      for (let x = left; x <= right; x++) {
        if (!mask[y * width + x]) continue;
        a += (y - mr) ** 2; b += (y - mr) * (x - mc); d += (x - mc) ** 2;
      }
    }
    a /= n - 1; b /= n - 1; d /= n - 1;
  }
  a += 1e-9; d += 1e-9;
  const half = Math.sqrt(((a - d) / 2) ** 2 + b * b);
  const major = (a + d) / 2 + half, minor = (a + d) / 2 - half;
  let v0, v1;    // (row, column) direction of the longer axis
  if (b !== 0) { v0 = major - d; v1 = b; } else if (a >= d) { v0 = 1; v1 = 0; } else { v0 = 0; v1 = 1; }
  return { height: h, width: w, stroke: 2 * Math.sqrt(most),
           elongation: Math.sqrt(major / Math.max(minor, 1e-9)),
           thickness: Math.sqrt(12 * Math.max(minor, 0)),   // across the longer axis
           tilt: (Math.atan2(Math.abs(v0), Math.abs(v1)) * 180) / Math.PI };
}

// gray (H*W) in [0, 1] -> {image: (28*28) Float32Array in [0, 1] | null, reason: null | why no digit}.
export function preprocess(gray, width, height) {
  const n = width * height;
  const sortedGray = Float32Array.from(gray).sort();
  const level = fromSorted(sortedGray, 50);
  let near = 0;
  for (let i = 0; i < n; i++) if (Math.abs(gray[i] - level) <= 2 / 255) near++;
  // A canvas's background is flat; the library models an uneven one (photos), which this port does not.
  if (near < 0.5 * n) return { image: null, reason: EVERYWHERE };
  // v - level is monotonic in v: the sorted residual (and the ink, its mirror when inverted) needs no new sort
  const sortedResidual = new Float32Array(n);
  for (let i = 0; i < n; i++) sortedResidual[i] = sortedGray[i] - level;
  const inverted = -fromSorted(sortedResidual, 0.1) > fromSorted(sortedResidual, 99.9);
  // dark ink: the fraction of light it takes from the paper, -residual / max(background, 0.1)
  const paper = Math.fround(Math.max(level, 0.1));
  const ink = (r) => (inverted ? Math.fround(-r / paper) : r);
  const diff = new Float32Array(n), sortedDiff = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    diff[i] = ink(Math.fround(gray[i] - level));
    sortedDiff[i] = ink(sortedResidual[inverted ? n - 1 - i : i]);
  }
  const med = fromSorted(sortedDiff, 50);
  const deviation = new Float32Array(n);
  for (let i = 0; i < n; i++) deviation[i] = Math.abs(Math.fround(diff[i] - med));
  const sigma = 1.4826 * fromSorted(deviation.sort(), 50);
  if (sigma > 0.02) return { image: null, reason: EVERYWHERE };  // noise: not a canvas drawing
  const peak = fromSorted(sortedDiff, 99.9);
  const threshold = Math.fround(Math.max(MIN_CONTRAST, med + 6 * sigma, RELATIVE * peak));
  const mask = new Uint8Array(n);
  let inked = 0;
  for (let i = 0; i < n; i++) if (diff[i] > threshold) { mask[i] = 1; inked++; }
  if (!inked) return { image: null, reason: NO_INK };
  if (inked / n > MAX_COVER) return { image: null, reason: EVERYWHERE };
  const { labels, count, areas, boxes } = label(mask, width, height);
  let big = 0;
  for (let i = 1; i < count; i++) if (areas[i] > areas[big]) big = i;
  const [t, b, l, r] = boxes[big];
  const extent = Math.max(b - t, r - l);
  const minArea = Math.max(MIN_AREA * n, 0.1 * areas[big], 2);
  const keep = [false, ...areas.map((area, i) => {   // big enough, and less than half the extent away
    const [top, bottom, left, right] = boxes[i];
    const gap = Math.max(top - b, t - bottom, left - r, l - right, 0);
    return area >= minArea && gap <= extent / 2;
  })];
  const kept = new Uint8Array(n);
  const inkKept = [];
  for (let i = 0; i < n; i++) if (keep[labels[i]]) { kept[i] = 1; inkKept.push(diff[i]); }
  if (!inkKept.length) return { image: null, reason: inked < MIN_AREA * n ? NO_INK : TOO_LITTLE };  // only specks
  const shape = structure(kept, width, height);
  if (Math.max(shape.height, shape.width) < Math.max(MIN_EXTENT * shape.stroke, MIN_PIXELS)) {
    return { image: null, reason: TOO_LITTLE };   // a tap, a blob or a speck
  }
  if (shape.elongation > MAX_ELONGATION && shape.tilt < MAX_TILT && shape.thickness < 1.8 * shape.stroke) {
    return { image: null, reason: TOO_LITTLE };   // a dash or a line (one stroke thick), not a 1
  }
  const strength = percentile(inkKept, 90);
  const low = med + 3 * sigma;   // the noise floor maps to 0, the ink to 1
  const low32 = Math.fround(low), scale = Math.fround(Math.max(strength - low, 1e-6));
  // the ink within 2 pixels (4-connected steps) of the kept pieces
  let grown = kept;
  for (let step = 0; step < 2; step++) {
    const next = Uint8Array.from(grown);
    for (let y = 0; y < height; y++) {
      for (let x = 0; x < width; x++) {
        const i = y * width + x;
        if (grown[i]) continue;
        if ((x > 0 && grown[i - 1]) || (x < width - 1 && grown[i + 1]) ||
            (y > 0 && grown[i - width]) || (y < height - 1 && grown[i + width])) next[i] = 1;
      }
    }
    grown = next;
  }
  const img = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    if (grown[i]) img[i] = Math.min(1, Math.max(0, Math.fround(Math.fround(diff[i] - low32) / scale)));
  }
  const cropped = cropToInk(img, width, height);
  const boxed = fitBox(cropped.img, cropped.width, cropped.height);
  return { image: centreInField(boxed.img, boxed.width, boxed.height), reason: null };
}

// (784) in [0, 1] -> normalised Float32Array for a (1, 1, 28, 28) tensor.
export function toModelInput(image, mean, std) {
  return Float32Array.from(image, (v) => (v - mean) / std);
}

export function softmax(logits) {
  const m = Math.max(...logits);
  const e = Array.from(logits, (v) => Math.exp(v - m));
  const s = e.reduce((a, b) => a + b, 0);
  return e.map((v) => v / s);
}

// drawing.judge: (10) probabilities -> {status: "digit", reason: null}, or "not sure" with "4 or 9?"
// when the top probability is below the threshold.
export function judge(probs, classes, threshold = NOT_SURE_BELOW) {
  const order = Array.from(probs, (p, i) => i).sort((a, b) => probs[b] - probs[a]);
  if (probs[order[0]] < threshold) return { status: "not sure", reason: `${classes[order[0]]} or ${classes[order[1]]}?` };
  return { status: "digit", reason: null };
}
