// The image benchmark's measuring half (run by scripts/bench-images.sh): for each photograph,
// sharp encodes AVIF and WebP at its default quality; the Worker's quality is searched for the
// smallest output at least as close to the source by DSSIM; bytes and time are compared.
//
//   node bench-images.cjs <edge URL> <images folder> <width> <scratch folder>
'use strict';
const { execFileSync } = require('node:child_process');
const fs = require('node:fs');
const path = require('node:path');
const sharp = require(path.join(process.env.SHARP_MODULES, 'sharp'));

const [edge, folder, widthText, scratch] = process.argv.slice(2);
const width = Number(widthText);
// One thread, as a Worker isolate has.
sharp.concurrency(1);
sharp.cache(false);
const SHARP_DEFAULTS = { avif: { quality: 50, effort: 4 }, webp: { quality: 80 } };

/** DSSIM of `encoded` (any format sharp decodes) against the lossless `reference` PNG. */
async function dssim(reference, encoded, name) {
  const decoded = path.join(scratch, `${name}.png`);
  await sharp(encoded).png().toFile(decoded);
  const out = execFileSync('dssim', [reference, decoded], { encoding: 'utf8' });
  return Number(out.split(/\s+/)[0]);
}

async function worker(source, options) {
  const url = `${edge}/cdn-cgi/image/${options}/images/${source}`;
  const started = process.hrtime.bigint();
  const response = await fetch(url, { headers: { accept: '*/*' } });
  const bytes = Buffer.from(await response.arrayBuffer());
  const ms = Number(process.hrtime.bigint() - started) / 1e6;
  if (response.status !== 200) throw new Error(`${url}: ${response.status} ${bytes}`);
  return { bytes, ms, type: response.headers.get('content-type') };
}

async function timedSharp(file, format) {
  const started = process.hrtime.bigint();
  const bytes = await sharp(file).resize({ width, withoutEnlargement: true })[format](SHARP_DEFAULTS[format]).toBuffer();
  return { bytes, ms: Number(process.hrtime.bigint() - started) / 1e6 };
}

/** The lowest Worker quality whose DSSIM is at most `target` (a binary search over 1–100). */
async function matchQuality(name, source, format, reference, target) {
  let low = 1, high = 100, best = null;
  while (low <= high) {
    const quality = (low + high) >> 1;
    const out = await worker(source, `width=${width},format=${format},quality=${quality}`);
    if (out.type !== `image/${format}`) throw new Error(`${source}: asked for ${format}, got ${out.type}`);
    const score = await dssim(reference, out.bytes, `${name}-ours`);
    if (score <= target) { best = { quality, score, ...out }; high = quality - 1; } else { low = quality + 1; }
  }
  return best;
}

function geomean(values) {
  return Math.exp(values.reduce((sum, v) => sum + Math.log(v), 0) / values.length);
}

(async () => {
  const files = fs.readdirSync(folder).filter((f) => /\.(jpe?g|png)$/i.test(f)).sort();
  const ratios = { avif: [], webp: [] };
  const speed = { avif: [], webp: [] };
  console.log(`width ${width} px; sharp ${sharp.versions.sharp} (vips ${sharp.versions.vips}), one thread`);
  console.log('image                      fmt   sharp q   bytes  DSSIM    | ours q   bytes  DSSIM    | bytes x | ms/MP ours (workerd) / sharp');
  for (const file of files) {
    const full = path.join(folder, file);
    // Each side's own lossless resize is its reference, so only the encoder is compared.
    const ourPng = await worker(file, `width=${width},format=png`);
    const ourReference = path.join(scratch, `${file}-ours-ref.png`);
    fs.writeFileSync(ourReference, ourPng.bytes);
    const sharpReference = path.join(scratch, `${file}-sharp-ref.png`);
    await sharp(full).resize({ width, withoutEnlargement: true }).png().toFile(sharpReference);
    const { width: w, height: h } = await sharp(ourReference).metadata();
    const megapixels = (w * h) / 1e6;
    for (const format of ['avif', 'webp']) {
      await timedSharp(full, format); // warm-up
      const theirs = await timedSharp(full, format);
      const theirScore = await dssim(sharpReference, theirs.bytes, `${file}-sharp`);
      const ours = await matchQuality(file, file, format, ourReference, theirScore);
      if (!ours) { console.log(`${file} ${format}: no quality reaches DSSIM ${theirScore}`); continue; }
      const ratio = ours.bytes.length / theirs.bytes.length;
      const timeRatio = ours.ms / theirs.ms;
      ratios[format].push(ratio);
      speed[format].push(timeRatio);
      console.log(`${file.padEnd(26)} ${format}  q${String(SHARP_DEFAULTS[format].quality).padEnd(3)} ${String(theirs.bytes.length).padStart(7)}  ${theirScore.toFixed(5)} | q${String(ours.quality).padEnd(3)} ${String(ours.bytes.length).padStart(7)}  ${ours.score.toFixed(5)} | ${ratio.toFixed(2)}x   | ${(ours.ms / megapixels).toFixed(0)} / ${(theirs.ms / megapixels).toFixed(0)} = ${timeRatio.toFixed(1)}x`);
    }
  }
  console.log('\nGeometric means over the photographs (one run):');
  for (const format of ['avif', 'webp']) {
    console.log(`  ${format}: bytes at equal DSSIM, ours / sharp = ${geomean(ratios[format]).toFixed(2)}x (target <= 1.00x); conversion time per megapixel, workerd / sharp native = ${geomean(speed[format]).toFixed(1)}x`);
  }
})().catch((error) => { console.error(error); process.exit(1); });
