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

/** CPU seconds wrangler's workerd processes (its local entry proxy and the Worker) have used. */
function workerdCpu() {
  const pids = execFileSync('pgrep', ['-g', process.env.EDGE_PGID, '-f', 'workerd serve'], { encoding: 'utf8' });
  return pids.trim().split(/\s+/).reduce((sum, pid) => {
    const fields = fs.readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].split(' ');
    return sum + (Number(fields[11]) + Number(fields[12])) / 100;
  }, 0);
}

/** Mean workerd CPU milliseconds per request over the `count` URLs `urlOf(i)` gives. */
async function cpuPerRequest(count, urlOf, accept = '*/*', acceptEncoding = 'identity') {
  const before = workerdCpu();
  for (let i = 0; i < count; i++) {
    const response = await fetch(urlOf(i), { headers: { accept, 'accept-encoding': acceptEncoding } });
    await response.arrayBuffer();
    if (response.status !== 200) throw new Error(`${urlOf(i)}: ${response.status}`);
  }
  return ((workerdCpu() - before) * 1000) / count;
}

async function costs(file) {
  const probe = `${edge}/cdn-cgi/image/zoom=1/images/${file}`; // refused before any fetch
  const timed = async () => {
    const started = process.hrtime.bigint();
    await (await fetch(probe)).arrayBuffer();
    return Number(process.hrtime.bigint() - started) / 1e6;
  };
  const cold = await timed();
  let warm = Infinity;
  for (let i = 0; i < 20; i++) warm = Math.min(warm, await timed());
  const stored = `${edge}/cdn-cgi/image/width=320,format=jpeg/images/${file}`;
  await (await fetch(stored)).arrayBuffer();
  const hit = await cpuPerRequest(300, () => stored);
  const miss = await cpuPerRequest(100, (i) => `${edge}/images/${file}?miss=${i}`);
  // A text hit: the stored brotli copy as it is for br clients; decoded (and gzipped by the
  // runtime) for gzip clients.
  const text = `${edge}/assets/tasks.json`;
  await (await fetch(text)).arrayBuffer();
  const textHit = {};
  for (const coding of ['br', 'gzip', 'identity']) {
    textHit[coding] = await cpuPerRequest(300, () => text, '*/*', coding);
  }
  const convert = {};
  for (const format of ['jpeg', 'webp', 'avif']) {
    convert[format] = await cpuPerRequest(3, (i) => `${edge}/cdn-cgi/image/width=${width},format=${format},quality=${70 + i}/images/${file}`);
  }
  const mb = (n) => (Number(n) / 1e6).toFixed(2);
  console.log(`\nThe Worker in workerd: ${mb(process.env.WASM_BYTES)} MB of wasm, ${mb(process.env.WASM_GZIP)} MB gzipped (limit 3 MiB on Workers Free, 10 MiB on Paid)`);
  console.log(`  first request after start ${cold.toFixed(0)} ms, warm ${warm.toFixed(1)} ms: cold start about ${(cold - warm).toFixed(0)} ms`);
  console.log(`  workerd CPU per request (both processes, wrangler's local proxy included, so an upper bound): hit ${hit.toFixed(2)} ms, miss ${miss.toFixed(2)} ms (${file}, ${mb(fs.statSync(path.join(folder, file)).size)} MB through the cache)`);
  console.log(`  text hit (${(fs.statSync(path.join(scratch, 'www/assets/tasks.json')).size / 1024).toFixed(0)} KiB of JSON): br ${textHit.br.toFixed(2)} ms (the stored copy as it is), gzip ${textHit.gzip.toFixed(2)} ms (decoded, gzipped by the runtime), identity ${textHit.identity.toFixed(2)} ms (decoded)`);
  console.log(`  conversion of ${file} to ${width} px: JPEG ${convert.jpeg.toFixed(0)} ms, WebP ${convert.webp.toFixed(0)} ms, AVIF ${convert.avif.toFixed(0)} ms of CPU`);
}

function geomean(values) {
  return Math.exp(values.reduce((sum, v) => sum + Math.log(v), 0) / values.length);
}

(async () => {
  const files = fs.readdirSync(folder).filter((f) => /\.(jpe?g|png)$/i.test(f)).sort();
  await costs(files.find((f) => /\.jpe?g$/i.test(f)) ?? files[0]);
  console.log('');
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
