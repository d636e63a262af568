// The same work as the Rust pipeline, done by sharp (libvips): auto-orient,
// 1600/800/320 long-edge variants (never enlarged) and a 160 px square
// thumbnail, each as JPEG (q82) and WebP (q80). Metadata is stripped by
// sharp's default. Usage: node sharp-pipeline.js RUNS FILE...
const sharp = require('sharp');
const fs = require('fs');

sharp.concurrency(Number(process.env.SHARP_CONCURRENCY || 0));
sharp.cache(false);

async function pipeline(input) {
  const outputs = [];
  for (const edge of [1600, 800, 320]) {
    const resized = sharp(input).rotate().resize(edge, edge, { fit: 'inside', withoutEnlargement: true });
    outputs.push(await resized.clone().jpeg({ quality: 82 }).toBuffer());
    outputs.push(await resized.clone().webp({ quality: 80 }).toBuffer());
  }
  const thumb = sharp(input).rotate().resize(160, 160, { fit: 'cover', withoutEnlargement: true });
  outputs.push(await thumb.clone().jpeg({ quality: 82 }).toBuffer());
  outputs.push(await thumb.clone().webp({ quality: 80 }).toBuffer());
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
