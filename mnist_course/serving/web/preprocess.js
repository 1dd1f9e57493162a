// The drawing page's in-browser preprocessing: a port of mnist_course.drawing.preprocess (and judge),
// step for step, so that onnxruntime-web sees the same 28x28 input as the server's model and the page
// says "no digit" and "not sure" for the same drawings and reasons. drawing.py is the reference.
//
// canvas RGBA -> gray (canvasToGray: shrunk to at most 256 pixels a side, as the server reads it), then
// gray (H*W Float32Array in [0, 1]) -> {image: Float32Array(784) in [0, 1] | null, reason} (preprocess):
//   1. background (estimateBackground): the median level when at least half of the pixels lie within
//      2/255 of it (most drawings); otherwise (a canvas about half covered: a scribble) the library's
//      smooth model, medians of tiles; the ink is what light ink adds to it, or the fraction of its
//      light that dark ink takes; noisy ink (sigma above 0.02) is smoothed (Gaussian, 1 pixel);
//   2. threshold: the largest of MIN_CONTRAST, the noise floor and RELATIVE x the ink's level;
//   3. speckle removed: 8-connected pieces smaller than MIN_AREA of the picture or a tenth of the
//      largest piece, or more than half its extent away from it, are dropped; a blob (a tap), a speck
//      or a horizontal dash one stroke thick is no digit;
//   4. ink scaled from the noise floor (0) to its 90th percentile (1), kept within 2 pixels of the
//      kept pieces;
//   5. crop to the ink (pixels above 0.2), resize so the longer side is 20 pixels keeping the aspect
//      ratio (Lanczos, as Pillow does it), paste into 28x28 with the centre of mass at (14, 14).
//   6. the crop pass (drawing._crop_pass), for a picture cropped close to its digit: the background a
//      plane fitted to the border's most common level (borderBackground), a margin of a quarter of the
//      longer side, steps 2 to 5 again; taken when the first found no digit or this digit touches two
//      sides or more, and only when the background is left in two pieces or more, or the ink is strong
//      (threshold >= 0.3) with strokes under 0.45 of the extent.
// Then the model gets (x - mean) / std, shape (1, 1, 28, 28): see toModelInput.
// NumPy's float32 arithmetic (NEP 50), its percentiles, medians and pairwise sums, and Pillow's and
// SciPy's filters are mirrored, so the result matches to float precision: tests/test_web_parity.py
// compares both on random strokes (in Node), tests/test_web_page.py on digits (in Chromium).

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

// The library works on float32 arrays with NumPy 2's rules (NEP 50: a Python float meeting a float32
// array becomes float32), so every float32 step is mirrored with f32.
const f32 = Math.fround;

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
      const luma = f32(f32(f32(r * f32(0.299)) + f32(g * f32(0.587))) + f32(b * f32(0.114)));
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

// Pillow's resampling filters (Resample.c): support and weight.
const FILTERS = {
  box: { support: 0.5, weight: (x) => (x > -0.5 && x <= 0.5 ? 1 : 0) },
  bilinear: { support: 1, weight: (x) => (Math.abs(x) < 1 ? 1 - Math.abs(x) : 0) },
  lanczos: { support: 3, weight: (x) => (x >= -3 && x < 3 ? sinc(x) * sinc(x / 3) : 0) },
};

// Pillow's precompute_coeffs: per output pixel, the first input index and the weights.
function coefficients(inSize, outSize, filter) {
  const scale = inSize / outSize;
  const filterscale = Math.max(scale, 1);
  const support = filter.support * filterscale;
  const ss = 1 / filterscale;
  const result = [];
  for (let xx = 0; xx < outSize; xx++) {
    const center = (xx + 0.5) * scale;
    const xmin = Math.max(Math.trunc(center - support + 0.5), 0);
    const xmax = Math.min(Math.trunc(center + support + 0.5), inSize) - xmin;
    const k = new Float64Array(Math.max(xmax, 0));
    let ww = 0;
    for (let x = 0; x < xmax; x++) {
      k[x] = filter.weight((x + xmin - center + 0.5) * ss);
      ww += k[x];
    }
    if (ww !== 0) for (let x = 0; x < xmax; x++) k[x] /= ww;
    result.push({ xmin, k });
  }
  return result;
}

// Resize a float image as Pillow resizes a mode "F" image with `filter` ("box", "bilinear" or
// "lanczos"): horizontal pass, then vertical, sums in double, float32 between and after.
export function resize(img, width, height, newWidth, newHeight, filter = "lanczos") {
  const f = FILTERS[filter];
  let cur = img, w = width;
  if (newWidth !== width) {
    const cs = coefficients(width, newWidth, f);
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
    const cs = coefficients(height, newHeight, f);
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
  return cur === img ? Float32Array.from(img) : cur;
}

export function fitBox(img, width, height, box = BOX) {
  const scale = box / Math.max(width, height);
  const w = Math.max(1, pyRound(width * scale)), h = Math.max(1, pyRound(height * scale));
  const out = resize(img, width, height, w, h, "lanczos").map((v) => Math.min(1, Math.max(0, v)));
  return { img: out, width: w, height: h };
}

// NumPy's pairwise summation of a[lo .. lo + n) (what .sum() does), each addition rounded by `round`
// (f32 for a float32 array): a centre of mass just at a half pixel rounds as in the library.
function pairwiseSum(a, lo, n, round) {
  if (n < 8) {
    let s = 0;
    for (let i = 0; i < n; i++) s = round(s + a[lo + i]);
    return s;
  }
  if (n <= 128) {
    const r = Array.from({ length: 8 }, (_, j) => a[lo + j]);
    let i = 8;
    for (; i < n - (n % 8); i += 8) for (let j = 0; j < 8; j++) r[j] = round(r[j] + a[lo + i + j]);
    let s = round(round(round(r[0] + r[1]) + round(r[2] + r[3])) + round(round(r[4] + r[5]) + round(r[6] + r[7])));
    for (; i < n; i++) s = round(s + a[lo + i]);
    return s;
  }
  const half = Math.floor(n / 2) - (Math.floor(n / 2) % 8);
  return round(pairwiseSum(a, lo, half, round) + pairwiseSum(a, lo + half, n - half, round));
}

// drawing.centre_in_field: paste (h, w) into size x size with the centre of mass at `centre`.
export function centreInField(img, width, height, size = SIZE, centre = CENTRE) {
  const total = pairwiseSum(img, 0, img.length, f32);                  // img.sum(): float32
  const rows = new Float64Array(img.length), cols = new Float64Array(img.length);
  for (let i = 0; i < img.length; i++) { rows[i] = Math.floor(i / width) * img[i]; cols[i] = (i % width) * img[i]; }
  const sy = pairwiseSum(rows, 0, rows.length, (v) => v), sx = pairwiseSum(cols, 0, cols.length, (v) => v);
  const clip = (v, lo, hi) => Math.min(hi, Math.max(lo, v));
  const top = clip(pyRound(centre - sy / total), 0, size - height);
  const left = clip(pyRound(centre - sx / total), 0, size - width);
  const out = new Float32Array(size * size);
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) out[(top + y) * size + left + x] = img[y * width + x];
  }
  return out;
}

// ----------------------------------------------------------------- NumPy's order statistics
// np.percentile's linear interpolation of sorted float32 values, q in [0, 100]. `weak`: q was a
// Python number (np.percentile(a, 90)), the interpolation is done in float32; otherwise (a list of
// q, np.percentile(a, [0.1, 99.9])) in float64 (numpy/lib/_function_base_impl.py, _lerp).
function fromSorted(a, q, weak = true) {
  const n = a.length, pos = (n - 1) * (q / 100);
  let lo = Math.floor(pos), hi = lo + 1;
  if (pos >= n - 1) lo = hi = n - 1;
  const t = pos - lo, d = f32(a[hi] - a[lo]);
  if (weak) return t >= 0.5 ? f32(a[hi] - f32(d * f32(1 - t))) : f32(a[lo] + f32(d * f32(t)));
  return t >= 0.5 ? a[hi] - d * (1 - t) : a[lo] + d * t;
}

export function percentile(values, q, weak = true) {
  return fromSorted(Float32Array.from(values).sort(), q, weak);
}

// np.median of sorted float32 values: the middle one, or the float32 mean of the middle two.
function medianSorted(a) {
  const m = a.length >> 1;
  return a.length % 2 ? a[m] : f32(f32(a[m - 1] + a[m]) / 2);
}

export function median(values) {
  return medianSorted(Float32Array.from(values).sort());
}

// drawing._sample: every k-th row and column of a large (h, w) image, about n pixels.
export function sample(img, width, height, n = 20000) {
  const k = Math.max(1, Math.trunc(Math.sqrt((width * height) / n)));
  if (k === 1) return img;
  const w = Math.ceil(width / k), h = Math.ceil(height / k), out = new Float32Array(w * h);
  for (let y = 0; y < h; y++) for (let x = 0; x < w; x++) out[y * w + x] = img[k * y * width + k * x];
  return out;
}

// drawing._mad_sigma: [median, 1.4826 x the median absolute deviation] of an image's sample.
export function madSigma(img, width, height) {
  const a = sample(img, width, height);
  const med = median(a);
  const deviation = new Float32Array(a.length);
  for (let i = 0; i < a.length; i++) deviation[i] = Math.abs(f32(a[i] - med));
  return [med, 1.4826 * median(deviation)];
}

// scipy.ndimage.median_filter(img, size, mode="nearest") of a float32 image (size odd).
function medianFilter(img, width, height, size) {
  const r = size >> 1, out = new Float32Array(width * height), window = new Float32Array(size * size);
  const clamp = (v, n) => Math.min(n - 1, Math.max(0, v));
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) {
      let i = 0;
      for (let dy = -r; dy <= r; dy++) {
        for (let dx = -r; dx <= r; dx++) window[i++] = img[clamp(y + dy, height) * width + clamp(x + dx, width)];
      }
      out[y * width + x] = window.sort()[(size * size) >> 1];
    }
  }
  return out;
}

// scipy.ndimage.gaussian_filter(img, sigma) of a float32 image (truncate 4, mode "reflect"): rows
// then columns, sums in double, float32 between and after (scipy's symmetric correlate1d).
export function gaussianFilter(img, width, height, sigma = 1.0) {
  const radius = Math.trunc(4 * sigma + 0.5), phi = [];
  for (let x = -radius; x <= radius; x++) phi.push(Math.exp((-0.5 / (sigma * sigma)) * (x * x)));
  let total;                                   // NumPy's pairwise sum: 8 partial sums, then the rest
  if (phi.length < 8) total = phi.reduce((s, v) => s + v, 0);
  else {
    const r = phi.slice(0, 8);
    let i = 8;
    for (; i < phi.length - (phi.length % 8); i += 8) for (let j = 0; j < 8; j++) r[j] += phi[i + j];
    total = ((r[0] + r[1]) + (r[2] + r[3])) + ((r[4] + r[5]) + (r[6] + r[7]));
    for (; i < phi.length; i++) total += phi[i];
  }
  const w = phi.map((v) => v / total).slice(radius);   // w[0] the centre, w[j] at distance j
  const reflect = (i, n) => {                          // (d c b a | a b c d | d c b a)
    const m = ((i % (2 * n)) + 2 * n) % (2 * n);
    return m < n ? m : 2 * n - 1 - m;
  };
  const pass = (src, n, lines, at) => {                // at(line, i): the index of pixel i of a line
    const out = new Float32Array(src.length);
    for (let line = 0; line < lines; line++) {
      for (let i = 0; i < n; i++) {
        let s = src[at(line, i)] * w[0];
        for (let j = radius; j >= 1; j--) s += (src[at(line, reflect(i - j, n))] + src[at(line, reflect(i + j, n))]) * w[j];
        out[at(line, i)] = s;
      }
    }
    return out;
  };
  const down = pass(img, height, width, (x, y) => y * width + x);    // axis 0: along each column
  return pass(down, width, height, (y, x) => y * width + x);         // axis 1: along each row
}

// drawing.estimate_background: the smooth background under the ink, a Float32Array (h*w). Flat (the
// median) when at least half of the pixels lie within 2/255 of the median (a canvas drawing), or at
// the border's median when 90 % of the border and a quarter of all pixels lie within 2/255 of it;
// otherwise the median of 5x5 blocks of 16x16 tile medians, the ink replaced by the estimate twice.
export function estimateBackground(gray, width, height, tiles = 16, window = 5, passes = 3) {
  const s = sample(gray, width, height);
  const level = median(s);
  let near = 0;
  for (let i = 0; i < s.length; i++) if (Math.abs(f32(s[i] - level)) <= f32(2 / 255)) near++;
  if (near >= 0.5 * s.length) return new Float32Array(width * height).fill(level);
  const border = [];      // rows 0 and h-1, then columns 0 and w-1, as drawing.py (corners twice)
  for (const y of [0, height - 1]) for (let x = 0; x < width; x++) border.push(gray[y * width + x]);
  for (const x of [0, width - 1]) for (let y = 0; y < height; y++) border.push(gray[y * width + x]);
  const edge = median(border);
  const within = (a) => { let k = 0; for (let i = 0; i < a.length; i++) if (Math.abs(f32(a[i] - edge)) <= f32(2 / 255)) k++; return k; };
  if (within(border) >= 0.9 * border.length && within(s) >= 0.25 * s.length) {
    return new Float32Array(width * height).fill(edge);     // thick ink covering most of a plain page
  }
  const n = 4 * tiles;
  let small = resize(gray, width, height, n, n, "box");
  const cells = new Float32Array(tiles * tiles), block = new Float32Array(16);
  let bg;
  for (let pass = 0; pass < passes; pass++) {
    for (let ty = 0; ty < tiles; ty++) {
      for (let tx = 0; tx < tiles; tx++) {
        for (let i = 0; i < 16; i++) block[i] = small[(4 * ty + (i >> 2)) * n + 4 * tx + (i & 3)];
        cells[ty * tiles + tx] = medianSorted(block.sort());
      }
    }
    bg = medianFilter(cells, tiles, tiles, window);
    if (pass === passes - 1) break;
    const estimate = resize(bg, tiles, tiles, n, n, "bilinear");
    const r = new Float32Array(n * n);
    for (let i = 0; i < r.length; i++) r[i] = f32(small[i] - estimate[i]);
    const limit = f32(Math.max(0.05, 3 * madSigma(r, n, n)[1]));
    small = small.map((v, i) => (Math.abs(r[i]) > limit ? estimate[i] : v));
  }
  return resize(bg, tiles, tiles, width, height, "bilinear");
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
  // (A - major I) v = 0 has two solutions, (major - d, b) and (b, major - a): the one whose larger
  // part does not come from a cancellation (a nearly flat or upright stroke, b ~ 0, has a tilt of 0 or 90)
  if (b === 0) { v0 = a >= d ? 1 : 0; v1 = a >= d ? 0 : 1; } else if (a >= d) { v0 = major - d; v1 = b; } else { v0 = b; v1 = major - a; }
  return { height: h, width: w, stroke: 2 * Math.sqrt(most),
           elongation: Math.sqrt(major / Math.max(minor, 1e-9)),
           thickness: Math.sqrt(12 * Math.max(minor, 0)),   // across the longer axis
           tilt: (Math.atan2(Math.abs(v0), Math.abs(v1)) * 180) / Math.PI };
}

// drawing._dark_ink (ink "auto"): the ink is dark when the residual's low tail (the `tail`
// percentile) reaches further from 0 than its high tail (100 - `tail`).
function darkInk(residual, width, height, tail) {
  const sorted = Float32Array.from(sample(residual, width, height)).sort();
  return -fromSorted(sorted, tail, false) > fromSorted(sorted, 100 - tail, false);
}

// gray (H*W) in [0, 1] -> {image: (28*28) Float32Array in [0, 1] | null, reason: null | why no digit}.
export function preprocess(gray, width, height) {
  const n = width * height;
  // 1. background, and the ink: what light ink adds to it, or the fraction of its light dark ink takes
  const background = estimateBackground(gray, width, height);
  const residual = new Float32Array(n);
  for (let i = 0; i < n; i++) residual[i] = f32(gray[i] - background[i]);
  const inverted = darkInk(residual, width, height, 0.1);
  let diff = residual;
  if (inverted) {
    diff = new Float32Array(n);
    for (let i = 0; i < n; i++) diff[i] = f32(-residual[i] / Math.max(background[i], f32(0.1)));
  }
  const first = findDigit(diff, width, height, null, null, MAX_COVER);
  if (first.reason === EVERYWHERE) return { image: null, reason: EVERYWHERE };
  const crop = cropPass(gray, width, height, first.image !== null);
  if (crop === null || !(first.image === null || crop.touches >= 2)) return { image: first.image, reason: first.reason };
  return { image: crop.image, reason: null };
}

// drawing._find_digit: steps 2 to 6 on the ink `diff` (width x height). noise: [median, sigma] of the
// background's ink when known (else from diff); region {top, left, w, h}: where the picture lies in
// diff (the rest is a margin around it), for the peak, the cover and the minimum area.
function findDigit(diff, width, height, noise, region, maxCover) {
  const n = width * height;
  // 2. noise; a noisy picture is smoothed first
  let [med, sigma] = noise === null ? madSigma(diff, width, height) : noise;
  if (sigma > 0.02) {
    diff = gaussianFilter(diff, width, height, 1.0);
    if (noise === null) [med, sigma] = madSigma(diff, width, height);
    else sigma = sigma / 2;
  }
  // 3. threshold: the largest of MIN_CONTRAST, the noise floor and RELATIVE x the ink's level
  const rw = region ? region.w : width, rh = region ? region.h : height, area = rw * rh;
  const cut = region ? cutRegion(diff, width, region) : diff;
  const peak = fromSorted(Float32Array.from(sample(cut, rw, rh)).sort(), 99.9);
  const unrounded = Math.max(MIN_CONTRAST, med + 6 * sigma, RELATIVE * peak);
  const threshold = f32(unrounded);
  const mask = new Uint8Array(n);
  let inked = 0, inRegion = 0;
  for (let i = 0; i < n; i++) if (diff[i] > threshold) { mask[i] = 1; inked++; }
  if (!inked) return { image: null, reason: NO_INK };
  if (region) {
    for (let y = 0; y < rh; y++) for (let x = 0; x < rw; x++) inRegion += mask[(region.top + y) * width + region.left + x];
  } else inRegion = inked;
  if (inRegion / area > maxCover) return { image: null, reason: EVERYWHERE };
  const { labels, count, areas, boxes } = label(mask, width, height);
  let big = 0;
  for (let i = 1; i < count; i++) if (areas[i] > areas[big]) big = i;
  const [t, b, l, r] = boxes[big];
  const extent = Math.max(b - t, r - l);
  const minArea = Math.max(MIN_AREA * area, 0.1 * areas[big], 2);
  const keep = [false, ...areas.map((area, i) => {   // big enough, and less than half the extent away
    const [top, bottom, left, right] = boxes[i];
    const gap = Math.max(top - b, t - bottom, left - r, l - right, 0);
    return area >= minArea && gap <= extent / 2;
  })];
  const kept = new Uint8Array(n);
  const inkKept = [];
  for (let i = 0; i < n; i++) if (keep[labels[i]]) { kept[i] = 1; inkKept.push(diff[i]); }
  if (!inkKept.length) return { image: null, reason: inked < MIN_AREA * area ? NO_INK : TOO_LITTLE };  // only specks
  const shape = structure(kept, width, height);
  if (Math.max(shape.height, shape.width) < Math.max(MIN_EXTENT * shape.stroke, MIN_PIXELS)) {
    return { image: null, reason: TOO_LITTLE };   // a tap, a blob or a speck
  }
  if (shape.elongation > MAX_ELONGATION && shape.tilt < MAX_TILT && shape.thickness < 1.8 * shape.stroke) {
    return { image: null, reason: TOO_LITTLE };   // a dash or a line (one stroke thick), not a 1
  }
  const strength = percentile(inkKept, 90);   // np.percentile(diff[kept], 90): weak
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
  return { image: centreInField(boxed.img, boxed.width, boxed.height), reason: null, kept, shape, threshold: unrounded };
}


function cutRegion(img, width, region) {
  const out = new Float32Array(region.w * region.h);
  for (let y = 0; y < region.h; y++) {
    for (let x = 0; x < region.w; x++) out[y * region.w + x] = img[(region.top + y) * width + region.left + x];
  }
  return out;
}

// np.median of float64 values
function median64(values) {
  const a = Float64Array.from(values).sort(), m = a.length >> 1;
  return a.length % 2 ? a[m] : (a[m - 1] + a[m]) / 2;
}

// drawing.border_background: a plane fitted to the border pixels (row-major, as gray[edge]), from
// the border's most common level -> {plane: Float32Array, good, res} (good and res per border pixel).
export function borderBackground(gray, width, height) {
  const rd = Math.max(height - 1, 1), cd = Math.max(width - 1, 1);
  const v = [], r = [], c = [];
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) {
      if (y === 0 || y === height - 1 || x === 0 || x === width - 1) {
        v.push(gray[y * width + x]); r.push(f32(y / rd)); c.push(f32(x / cd));
      }
    }
  }
  const m = v.length, counts = new Array(25).fill(0);
  for (const value of v) counts[Math.min(24, Math.max(0, Math.floor(value * 25)))]++;
  const argmax = (a) => a.reduce((best, x, i) => (x > a[best] ? i : best), 0);
  const smooth = counts.map((x, i) => (i > 0 ? counts[i - 1] : 0) + x + (i < 24 ? counts[i + 1] : 0));
  let centre = (argmax(smooth) + 0.5) / 25;
  let good = v.map((value) => Math.abs(value - centre) <= 0.06);
  if (!good.some(Boolean)) {
    centre = (argmax(counts) + 0.5) / 25;
    good = v.map((value) => Math.abs(value - centre) <= 0.06);
  }
  const level = median64(v.filter((_, i) => good[i]));
  good = v.map((value) => Math.abs(value - level) <= 0.06);
  let coef = [level, 0, 0];
  const residuals = () => v.map((value, i) => value - (coef[0] + coef[1] * r[i] + coef[2] * c[i]));
  for (let pass = 0; pass < 3; pass++) {
    if (good.filter(Boolean).length < 8) break;
    coef = leastSquares(v, r, c, good);
    const res = residuals();
    const s = 1.4826 * median64(res.filter((_, i) => good[i]).map(Math.abs));
    good = res.map((x) => Math.abs(x) <= Math.max(3 * s, 0.03));
  }
  const plane = new Float32Array(width * height);
  for (let y = 0; y < height; y++) {
    const ry = f32(y / rd);
    for (let x = 0; x < width; x++) plane[y * width + x] = f32(coef[0] + coef[1] * ry + coef[2] * f32(x / cd));
  }
  return { plane, good, res: residuals() };
}

// Least squares of value ~ a + b r + c c over the chosen points (normal equations; a column without
// spread gets 0, as np.linalg.lstsq's minimum-norm answer does for a column of zeros).
function leastSquares(v, r, c, chosen) {
  const A = [[0, 0, 0], [0, 0, 0], [0, 0, 0]], y = [0, 0, 0];
  for (let i = 0; i < v.length; i++) {
    if (!chosen[i]) continue;
    const row = [1, r[i], c[i]];
    for (let j = 0; j < 3; j++) {
      y[j] += row[j] * v[i];
      for (let k = 0; k < 3; k++) A[j][k] += row[j] * row[k];
    }
  }
  const use = [0, 1, 2].filter((j) => j === 0 || A[j][j] - (A[0][j] * A[0][j]) / A[0][0] > 1e-9 * A[0][0]);
  const M = use.map((j) => use.map((k) => A[j][k])), b = use.map((j) => y[j]);
  const k = use.length;
  for (let col = 0; col < k; col++) {          // Gaussian elimination with partial pivoting
    let p = col;
    for (let row = col + 1; row < k; row++) if (Math.abs(M[row][col]) > Math.abs(M[p][col])) p = row;
    [M[col], M[p]] = [M[p], M[col]]; [b[col], b[p]] = [b[p], b[col]];
    for (let row = col + 1; row < k; row++) {
      const f = M[row][col] / M[col][col];
      for (let j = col; j < k; j++) M[row][j] -= f * M[col][j];
      b[row] -= f * b[col];
    }
  }
  const x = new Array(k).fill(0);
  for (let row = k - 1; row >= 0; row--) {
    let sum = b[row];
    for (let j = row + 1; j < k; j++) sum -= M[row][j] * x[j];
    x[row] = sum / M[row][row];
  }
  const coef = [0, 0, 0];
  use.forEach((j, i) => { coef[j] = x[i]; });
  return coef;
}

// drawing._crop_pass: a picture cropped close to its digit -> {image, touches} or null.
// found: the first pass found a digit; then null when no border pixel differs from the plane by
// more than MIN_CONTRAST and 4.5 noise sigmas of its level (no ink on the border).
function cropPass(gray, width, height, found) {
  const n = width * height;
  if (found) {        // a flat border (a canvas): no ink on it
    let lo = Infinity, hi = -Infinity;
    for (let x = 0; x < width; x++) for (const y of [0, height - 1]) { const v = gray[y * width + x]; lo = Math.min(lo, v); hi = Math.max(hi, v); }
    for (let y = 0; y < height; y++) for (const x of [0, width - 1]) { const v = gray[y * width + x]; lo = Math.min(lo, v); hi = Math.max(hi, v); }
    if (hi - lo <= 1e-3) return null;
  }
  const { plane, good, res } = borderBackground(gray, width, height);
  const residual = new Float32Array(n);
  for (let i = 0; i < n; i++) residual[i] = f32(gray[i] - plane[i]);
  const inverted = darkInk(residual, width, height, 1);
  const scale = new Float32Array(n);
  for (let i = 0; i < n; i++) scale[i] = Math.max(plane[i], f32(0.1));
  const divide = inverted ? median(scale) : 1;
  const ink = res.filter((_, i) => good[i]).map((x) => x / divide);
  let sigma = 0;
  if (ink.length >= 8) {
    const mid = median64(ink);
    sigma = 1.4826 * median64(ink.map((x) => Math.abs(x - mid)));
  }
  if (found) {    // no ink on the border (beyond MIN_CONTRAST and 4.5 sigmas of its level): not a crop
    let j = 0, inked = false;
    const floor = Math.max(MIN_CONTRAST, 4.5 * sigma);
    for (let y = 0; y < height; y++) {
      for (let x = 0; x < width; x++) {
        if (y === 0 || y === height - 1 || x === 0 || x === width - 1) {
          if (Math.abs(res[j]) / Math.max(plane[y * width + x], f32(0.1)) > floor) inked = true;
          j++;
        }
      }
    }
    if (!inked) return null;
  }
  const m = Math.max(4, pyRound(0.25 * Math.max(width, height)));
  const W = width + 2 * m, H = height + 2 * m;
  const padded = new Float32Array(W * H);
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) {
      const i = y * width + x;
      padded[(y + m) * W + x + m] = inverted ? f32(-residual[i] / scale[i]) : residual[i];
    }
  }
  const result = findDigit(padded, W, H, [0, sigma], { top: m, left: m, w: width, h: height }, 0.8);
  if (result.image === null) return null;
  const kept = new Uint8Array(n);
  for (let y = 0; y < height; y++) for (let x = 0; x < width; x++) kept[y * width + x] = result.kept[(y + m) * W + x + m];
  // background pieces: 4-connected, at least max(2, 0.5 % of the picture) pixels
  const seen = new Uint8Array(n), minPiece = Math.max(2, 0.005 * n);
  let pieces = 0;
  for (let start = 0; start < n; start++) {
    if (kept[start] || seen[start]) continue;
    let size = 0;
    const stack = [start];
    seen[start] = 1;
    while (stack.length) {
      const i = stack.pop(), x = i % width, y = (i - x) / width;
      size++;
      for (const j of [x > 0 ? i - 1 : -1, x < width - 1 ? i + 1 : -1, y > 0 ? i - width : -1, y < height - 1 ? i + width : -1]) {
        if (j >= 0 && !kept[j] && !seen[j]) { seen[j] = 1; stack.push(j); }
      }
    }
    if (size >= minPiece) pieces++;
  }
  let top = 0, bottom = 0, left = 0, right = 0;
  for (let x = 0; x < width; x++) { top |= kept[x]; bottom |= kept[(height - 1) * width + x]; }
  for (let y = 0; y < height; y++) { left |= kept[y * width]; right |= kept[y * width + width - 1]; }
  const extent = Math.max(result.shape.height, result.shape.width);
  if (pieces >= 2 || (result.threshold >= 0.3 && result.shape.stroke <= 0.45 * extent)) {
    return { image: result.image, touches: top + bottom + left + right };
  }
  return null;
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

// drawing.THICK_ABOVE / THICK_NOT_SURE_BELOW: strokes thicker than this need a surer model.
export const THICK_ABOVE = 5.5;
export const THICK_NOT_SURE_BELOW = 0.99;

// drawing.stroke_width: (28*28) image -> twice the area of its pixels above 0.5 over the length of
// their outline (those with a 4-neighbour outside, the image's edge counting as outside); 0 if none.
export function strokeWidth(image, size = SIZE) {
  let area = 0, outline = 0;
  const ink = (x, y) => x >= 0 && y >= 0 && x < size && y < size && image[y * size + x] > 0.5;
  for (let y = 0; y < size; y++) {
    for (let x = 0; x < size; x++) {
      if (!ink(x, y)) continue;
      area++;
      if (!ink(x - 1, y) || !ink(x + 1, y) || !ink(x, y - 1) || !ink(x, y + 1)) outline++;
    }
  }
  return outline ? (2 * area) / outline : 0;
}

// drawing.DETAIL_SIDE / LOW_DETAIL_BELOW / LOW_DETAIL_NOT_SURE_BELOW: a digit enlarged from a tiny
// picture (little detail at its own size) needs a surer model.
export const DETAIL_SIDE = 8;
export const LOW_DETAIL_BELOW = 0.035;
export const LOW_DETAIL_NOT_SURE_BELOW = 0.99;
export const BOX_OUTLINE_INK = 0.75;   // drawing.BOX_OUTLINE_INK: a block or a straight bar

// drawing.detail: (28*28) image -> the share of its energy (sum of squares) lost when its box (the
// pixels above 0) is shrunk to `side` pixels on its longer side and enlarged back (Lanczos, as Pillow);
// 0 when the box is at most `side` pixels; NaN without ink or when the box's outline is at least
// BOX_OUTLINE_INK ink on average. resize rounds to float32 between passes where the library works in
// float64: the two differ by about 1e-7.
export function detail(image, size = SIZE, side = DETAIL_SIDE) {
  let top = size, bottom = -1, left = size, right = -1;
  for (let y = 0; y < size; y++) {
    for (let x = 0; x < size; x++) {
      if (image[y * size + x] !== 0) {
        top = Math.min(top, y); bottom = Math.max(bottom, y);
        left = Math.min(left, x); right = Math.max(right, x);
      }
    }
  }
  if (bottom < 0) return NaN;
  const h = bottom - top + 1, w = right - left + 1;
  const box = new Float32Array(h * w);
  let outline = 0, count = 0;
  for (let y = 0; y < h; y++) {
    for (let x = 0; x < w; x++) {
      box[y * w + x] = image[(top + y) * size + left + x];
      if (y === 0 || y === h - 1 || x === 0 || x === w - 1) { outline += box[y * w + x]; count++; }
    }
  }
  if (outline / count >= BOX_OUTLINE_INK) return NaN;
  if (Math.max(h, w) <= side) return 0;
  const f = side / Math.max(h, w);
  const sw = Math.max(1, pyRound(w * f)), sh = Math.max(1, pyRound(h * f));
  const back = resize(resize(box, w, h, sw, sh, "lanczos"), sw, sh, w, h, "lanczos");
  let lost = 0, total = 0;
  for (let i = 0; i < h * w; i++) {
    lost += (box[i] - back[i]) ** 2;
    total += box[i] ** 2;
  }
  return lost / total;
}

// drawing.judge: (10) probabilities -> {status: "digit", reason: null}, or "not sure" with "4 or 9?"
// when the top probability is below the threshold (at least THICK_NOT_SURE_BELOW when `image`, the
// 28x28 model input, has strokes thicker than THICK_ABOVE, and LOW_DETAIL_NOT_SURE_BELOW when its
// detail is below LOW_DETAIL_BELOW).
export function judge(probs, classes, threshold = NOT_SURE_BELOW, image = null) {
  const thick = image !== null && strokeWidth(image) > THICK_ABOVE;
  if (thick) threshold = Math.max(threshold, THICK_NOT_SURE_BELOW);
  const smooth = image !== null && detail(image) < LOW_DETAIL_BELOW;
  if (smooth) threshold = Math.max(threshold, LOW_DETAIL_NOT_SURE_BELOW);
  const order = Array.from(probs, (p, i) => i).sort((a, b) => probs[b] - probs[a]);
  if (probs[order[0]] < threshold) {
    const why = thick ? " (very thick strokes: use a thinner pen or write larger)"
      : smooth ? " (little detail, as in a small picture enlarged: send a larger, sharper picture)" : "";
    return { status: "not sure", reason: `${classes[order[0]]} or ${classes[order[1]]}?${why}` };
  }
  return { status: "digit", reason: null };
}
