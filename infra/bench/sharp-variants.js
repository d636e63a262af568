// sharp's (libvips) variants of each photo at its defaults (JPEG q80 4:2:0
// with optimised Huffman coding, WebP q80 effort 4), the same sizes as the
// Rust pipeline: 1600/800/320 long edge (never enlarged) and a 160 px
// centre-square thumbnail, auto-oriented. Written as <stem>-<variant> for
// shared/examples/quality_bench.rs. Usage: node sharp-variants.js OUTDIR FILE...
const sharp = require('sharp');
const fs = require('fs');
const path = require('path');

(async () => {
  const outdir = process.argv[2];
  fs.mkdirSync(outdir, { recursive: true });
  for (const file of process.argv.slice(3)) {
    const stem = path.parse(file).name;
    const input = fs.readFileSync(file);
    const jobs = [
      ['1600', (s) => s.resize(1600, 1600, { fit: 'inside', withoutEnlargement: true })],
      ['800', (s) => s.resize(800, 800, { fit: 'inside', withoutEnlargement: true })],
      ['320', (s) => s.resize(320, 320, { fit: 'inside', withoutEnlargement: true })],
      ['thumb', (s) => s.resize(160, 160, { fit: 'cover', position: 'centre', withoutEnlargement: true })],
    ];
    for (const [name, resize] of jobs) {
      const image = () => resize(sharp(input).rotate());
      fs.writeFileSync(path.join(outdir, `${stem}-${name}.jpg`), await image().jpeg().toBuffer());
      fs.writeFileSync(path.join(outdir, `${stem}-${name}.webp`), await image().webp().toBuffer());
    }
  }
})();
