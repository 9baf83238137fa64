// The quality-scale benchmark's measuring half (run by scripts/bench-image-quality.sh). Every
// output is the imaging crate's own, made natively by its `quality_probe` example from the same
// fitted image; sharp decodes WebP and AVIF to PNG, and `dssim` scores each against the fitted
// image itself (lossless), so only the encoders differ.
//
//   node bench-image-quality.cjs calibrate <probe> <images folder> <width> <scratch folder>
//     Encodes every photograph over a grid of each encoder's own qualities, and for each JPEG
//     quality in ANCHORS finds the WebP and AVIF encoder quality of equal DSSIM (interpolated on
//     the photograph's curve). Prints the per-photograph matches and their medians: the table
//     for imaging/src/quality.rs. Also prints, for the default quality, what each photograph's
//     match would be from the other photographs alone (leave one out).
//   node bench-image-quality.cjs verify <probe> <images folder> <width> <scratch folder>
//     Encodes every photograph at the request qualities in CHECKED through the mapping the edge
//     applies, and prints each format's DSSIM against JPEG's at the same quality and its bytes;
//     exits 1 when a figure of the default quality is missed.
'use strict';
const { execFileSync } = require('node:child_process');
const fs = require('node:fs');
const path = require('node:path');
const sharp = require(path.join(process.env.SHARP_MODULES, 'sharp'));

const [mode, probe, folder, widthText, scratch] = process.argv.slice(2);
sharp.concurrency(1);
sharp.cache(false);

const DEFAULT_QUALITY = 85;
const ANCHORS = [30, 40, 50, 60, 70, 75, 80, 85, 90, 95];
const CHECKED = [60, 75, DEFAULT_QUALITY, 95];
const range = (from, to, step) => Array.from({ length: Math.floor((to - from) / step) + 1 }, (_, i) => from + i * step);
const GRID = { jpeg: ANCHORS, webp: range(5, 100, 5), avif: range(5, 98, 3) };
// The figures of the default quality: DSSIM within ±15% of JPEG's, AVIF bytes against JPEG's
// and WebP's (geometric means).
const DSSIM_TOLERANCE = 0.15;
const AVIF_OVER_JPEG = 0.45;
const AVIF_OVER_WEBP = 0.8;

const photos = fs.readdirSync(folder).filter((f) => /\.(jpe?g|png)$/i.test(f)).sort();
const median = (values) => {
  const v = [...values].sort((a, b) => a - b);
  return v.length % 2 ? v[(v.length - 1) / 2] : (v[v.length / 2 - 1] + v[v.length / 2]) / 2;
};
const geomean = (values) => Math.exp(values.reduce((s, v) => s + Math.log(v), 0) / values.length);

/** Runs the probe on `photo`; returns [{format, quality, bytes, file}]. */
function runProbe(photo, out, args) {
  const text = execFileSync(probe, [path.join(folder, photo), widthText, out, ...args], { encoding: 'utf8' });
  return text.trim().split('\n').map((line) => {
    const [format, quality, bytes, file] = line.split(' ');
    return { format, quality: Number(quality), bytes: Number(bytes), file };
  });
}

/** Adds `dssim` to each output: WebP and AVIF decoded by sharp, all scored in one dssim call. */
async function score(out, outputs) {
  const decoded = [];
  for (const output of outputs) {
    const png = `${output.file}.png`;
    await sharp(output.file).png().toFile(png);
    decoded.push(png);
  }
  const text = execFileSync('dssim', [path.join(out, 'reference.png'), ...decoded], { encoding: 'utf8' });
  const scores = new Map(text.trim().split('\n').map((line) => {
    const [value, file] = line.trim().split(/\s+/);
    return [file, Number(value)];
  }));
  for (const [i, output] of outputs.entries()) output.dssim = scores.get(decoded[i]);
  return outputs;
}

/** The encoder quality at which `curve` (sorted by quality) reaches `target`, interpolated on log DSSIM. */
function matching(curve, target) {
  for (let i = 0; i < curve.length; i++) {
    if (curve[i].dssim > target) continue;
    if (i === 0) return curve[0].quality;
    const [a, b] = [curve[i - 1], curve[i]];
    const t = (Math.log(a.dssim) - Math.log(target)) / (Math.log(a.dssim) - Math.log(b.dssim));
    return a.quality + t * (b.quality - a.quality);
  }
  return curve[curve.length - 1].quality;
}

/** Least squares of the encoder quality matching `anchor` on ln(JPEG bits per pixel), over `photos`. */
function fit(photos, matches, format, anchor) {
  const xs = photos.map((p) => Math.log(matches[p].bpp[anchor]));
  const ys = photos.map((p) => matches[p][format][anchor]);
  const mx = xs.reduce((s, v) => s + v, 0) / xs.length;
  const my = ys.reduce((s, v) => s + v, 0) / ys.length;
  const b = xs.reduce((s, x, i) => s + (x - mx) * (ys[i] - my), 0) / xs.reduce((s, x) => s + (x - mx) ** 2, 0);
  const a = my - b * mx;
  const rms = Math.sqrt(ys.reduce((s, y, i) => s + (y - a - b * xs[i]) ** 2, 0) / ys.length);
  return { a, b, rms };
}

async function calibrate() {
  const matches = {}; // photo → format → anchor → encoder quality
  for (const photo of photos) {
    const out = path.join(scratch, photo);
    const grids = Object.entries(GRID).map(([format, qualities]) => `${format}:${qualities.join(',')}`);
    const outputs = await score(out, runProbe(photo, out, grids));
    const curve = (format) => outputs.filter((o) => o.format === format).sort((a, b) => a.quality - b.quality);
    const { width, height } = await sharp(path.join(out, 'reference.png')).metadata();
    matches[photo] = { bpp: {} };
    for (const anchor of ANCHORS) {
      matches[photo].bpp[anchor] = (curve('jpeg').find((o) => o.quality === anchor).bytes * 8) / (width * height);
    }
    for (const format of ['webp', 'avif']) {
      matches[photo][format] = {};
      for (const anchor of ANCHORS) {
        const target = curve('jpeg').find((o) => o.quality === anchor).dssim;
        matches[photo][format][anchor] = matching(curve(format), target);
      }
    }
    console.log(`${photo.padEnd(24)} ${ANCHORS.map((a) => `q${a}: webp ${matches[photo].webp[a].toFixed(0).padStart(3)} avif ${matches[photo].avif[a].toFixed(0).padStart(3)}`).join(' | ')}`);
  }
  console.log('\nmedians over the photographs (request quality → encoder quality):');
  for (const format of ['webp', 'avif']) {
    const row = ANCHORS.map((a) => `(${a}, ${Math.round(median(photos.map((p) => matches[p][format][a])))})`);
    console.log(`  ${format}: ${row.join(', ')}`);
  }
  console.log('\nper anchor, encoder quality = a + b ln(JPEG bits per pixel at the anchor), least squares');
  console.log('(the table in imaging/src/quality.rs: (anchor, a, b); rms is the fit\'s error in encoder quality):');
  for (const format of ['webp', 'avif']) {
    const row = ANCHORS.map((anchor) => {
      const { a, b, rms } = fit(photos, matches, format, anchor);
      return `(${anchor}, ${a.toFixed(1)}, ${b.toFixed(1)}) rms ${rms.toFixed(1)}`;
    });
    console.log(`  ${format}: ${row.join(', ')}`);
  }
  for (const photo of photos) {
    console.log(`  ${photo.padEnd(24)} bpp ${ANCHORS.map((a) => matches[photo].bpp[a].toFixed(2)).join(' ')}`);
  }
  console.log(`\nleave one out, quality ${DEFAULT_QUALITY}: each photograph's own match against the fit of the others, and the median of the others`);
  for (const photo of photos) {
    const others = photos.filter((p) => p !== photo);
    const line = ['webp', 'avif'].map((format) => {
      const own = matches[photo][format][DEFAULT_QUALITY];
      const { a, b } = fit(others, matches, format, DEFAULT_QUALITY);
      const fitted = a + b * Math.log(matches[photo].bpp[DEFAULT_QUALITY]);
      const middle = median(others.map((p) => matches[p][format][DEFAULT_QUALITY]));
      return `${format} own ${own.toFixed(1)} fit ${fitted.toFixed(1)} median ${middle.toFixed(1)}`;
    });
    console.log(`  ${photo.padEnd(24)} ${line.join(' | ')}`);
  }
}

async function verify() {
  let missed = 0;
  const ratios = { avifJpeg: [], avifWebp: [], webpJpeg: [] };
  for (const quality of CHECKED) {
    console.log(`\nquality ${quality}${quality === DEFAULT_QUALITY ? ' (the default)' : ''}: DSSIM (against JPEG's) and bytes`);
    for (const photo of photos) {
      const out = path.join(scratch, `${photo}-mapped`);
      const outputs = await score(out, runProbe(photo, out, ['--mapped', ...['jpeg', 'webp', 'avif'].map((f) => `${f}:${quality}`)]));
      const of = Object.fromEntries(outputs.map((o) => [o.format, o]));
      const cells = ['jpeg', 'webp', 'avif'].map((format) => {
        const o = of[format];
        const ratio = o.dssim / of.jpeg.dssim;
        const off = Math.abs(ratio - 1) > DSSIM_TOLERANCE;
        if (quality === DEFAULT_QUALITY && off) missed++;
        return `${format} ${o.dssim.toFixed(5)} (${ratio.toFixed(2)}x${off ? ' !' : ''}) ${String(o.bytes).padStart(7)} B`;
      });
      console.log(`  ${photo.padEnd(24)} ${cells.join(' | ')}`);
      if (quality === DEFAULT_QUALITY) {
        ratios.avifJpeg.push(of.avif.bytes / of.jpeg.bytes);
        ratios.avifWebp.push(of.avif.bytes / of.webp.bytes);
        ratios.webpJpeg.push(of.webp.bytes / of.jpeg.bytes);
      }
    }
  }
  const avifJpeg = geomean(ratios.avifJpeg);
  const avifWebp = geomean(ratios.avifWebp);
  console.log(`\nquality ${DEFAULT_QUALITY}, bytes (geometric means over ${photos.length} photographs): AVIF / JPEG ${avifJpeg.toFixed(3)} (target <= ${AVIF_OVER_JPEG}), AVIF / WebP ${avifWebp.toFixed(3)} (target <= ${AVIF_OVER_WEBP}), WebP / JPEG ${geomean(ratios.webpJpeg).toFixed(3)}`);
  console.log(`quality ${DEFAULT_QUALITY}, DSSIM within ±${DSSIM_TOLERANCE * 100}% of JPEG's: ${missed === 0 ? 'every photograph and format' : `${missed} missed (marked !)`}`);
  if (missed > 0 || avifJpeg > AVIF_OVER_JPEG || avifWebp > AVIF_OVER_WEBP) process.exit(1);
}

(mode === 'calibrate' ? calibrate() : verify()).catch((error) => {
  console.error(error);
  process.exit(2);
});
