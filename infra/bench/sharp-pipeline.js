// The same work as the Rust pipeline, done by sharp (libvips): auto-orient,
// 1600/800/320 long-edge variants (never enlarged) and a 160 px square
// thumbnail, each as JPEG and WebP at sharp's defaults (q80, 4:2:0,
// optimised Huffman; WebP q80 effort 4). Metadata is stripped by
// sharp's default. Usage: node sharp-pipeline.js RUNS FILE...
const sharp = require('sharp');
const fs = require('fs');

sharp.concurrency(Number(process.env.SHARP_CONCURRENCY || 0));
sharp.cache(false);

// Decoded once, the way a careful sharp user would: orient and shrink to the
// largest variant (libvips shrinks JPEGs on load), keep raw pixels, and
// cut every variant from those, as the Rust pipeline does.
async function pipeline(input) {
  const { data, info } = await sharp(input)
    .rotate()
    .resize(1600, 1600, { fit: 'inside', withoutEnlargement: true })
    .raw()
    .toBuffer({ resolveWithObject: true });
  const raw = { raw: { width: info.width, height: info.height, channels: info.channels } };
  const outputs = [];
  for (const edge of [1600, 800, 320]) {
    const resized = sharp(data, raw).resize(edge, edge, { fit: 'inside', withoutEnlargement: true });
    outputs.push(await resized.clone().jpeg().toBuffer());
    outputs.push(await resized.clone().webp().toBuffer());
  }
  const thumb = sharp(data, raw).resize(160, 160, { fit: 'cover', withoutEnlargement: true });
  outputs.push(await thumb.clone().jpeg().toBuffer());
  outputs.push(await thumb.clone().webp().toBuffer());
  return outputs.reduce((n, b) => n + b.length, 0);
}

(async () => {
  const runs = Number(process.argv[2]);
  for (const file of process.argv.slice(3)) {
    const input = fs.readFileSync(file);
    await pipeline(input);
    const cpu0 = process.cpuUsage();
    const t0 = process.hrtime.bigint();
    let bytes = 0;
    for (let i = 0; i < runs; i++) bytes = await pipeline(input);
    const wall = Number(process.hrtime.bigint() - t0) / 1e6 / runs;
    const cpu = process.cpuUsage(cpu0);
    const cpuMs = (cpu.user + cpu.system) / 1000 / runs;
    const rss = process.resourceUsage().maxRSS / 1024;
    console.log(`sharp ${require('path').basename(file).padEnd(22)} wall ${wall.toFixed(1).padStart(7)} ms  cpu ${cpuMs.toFixed(1).padStart(7)} ms  output ${String(bytes).padStart(8)} bytes  peak rss ${rss.toFixed(1).padStart(6)} MB (process so far)`);
  }
})();
