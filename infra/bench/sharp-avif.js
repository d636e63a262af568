// sharp's (libvips, libheif with aom) AVIF of each reference PNG the AVIF
// benchmark wrote, at each quality asked, effort 4 (sharp's default), one
// thread; then every AVIF in the work folder, ours and sharp's, decoded to
// PNG for scoring. Encode times go to sharp-times.json (ms, the best of 3).
// Usage: node sharp-avif.js WORK QUALITY...
const sharp = require('sharp');
const fs = require('fs');
const path = require('path');

sharp.concurrency(1);

(async () => {
  const work = process.argv[2];
  const qualities = process.argv.slice(3).map(Number);
  const refs = path.join(work, 'ref');
  const out = path.join(work, 'sharp');
  fs.mkdirSync(out, { recursive: true });
  const times = {};
  for (const file of fs.readdirSync(refs).filter((f) => f.endsWith('.png')).sort()) {
    const input = fs.readFileSync(path.join(refs, file));
    const stem = path.parse(file).name;
    for (const quality of qualities) {
      let best = Infinity;
      let bytes;
      for (let run = 0; run < 3; run++) {
        const started = process.hrtime.bigint();
        bytes = await sharp(input).avif({ quality, effort: 4 }).toBuffer();
        best = Math.min(best, Number(process.hrtime.bigint() - started) / 1e6);
      }
      const name = `${stem}-q${quality}.avif`;
      fs.writeFileSync(path.join(out, name), bytes);
      times[name] = best;
    }
  }
  fs.writeFileSync(path.join(work, 'sharp-times.json'), JSON.stringify(times, null, 1));
  for (const dir of [path.join(work, 'ours'), out]) {
    for (const file of fs.readdirSync(dir).filter((f) => f.endsWith('.avif'))) {
      const png = await sharp(path.join(dir, file)).removeAlpha().toColourspace('srgb').png().toBuffer();
      fs.writeFileSync(path.join(dir, `${file}.png`), png);
    }
  }
})();
