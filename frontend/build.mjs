// Builds the front end into chalicelib/web/static/ (Chalice packages only app.py and
// chalicelib/): the minified tracker vts.js, and the dashboard page with its bundled,
// content-hashed script and stylesheet. Run by scripts/setup.sh (`npm run build`).
import { build } from "esbuild";
import { createHash } from "node:crypto";
import { mkdirSync, readFileSync, rmSync, writeFileSync, renameSync } from "node:fs";
import { basename, dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { gzipSync } from "node:zlib";

const root = join(dirname(fileURLToPath(import.meta.url)), "..");
const out = join(root, "chalicelib", "web", "static");
const assets = join(out, "assets");
const staging = join(root, "build", "web-static");

rmSync(staging, { recursive: true, force: true });
mkdirSync(join(staging, "assets"), { recursive: true });

// The tracker runs on other people's pages: plain ES5, no bundling, as small as it gets.
await build({
  entryPoints: [join(root, "frontend", "vts.js")],
  outfile: join(staging, "vts.js"),
  minify: true,
  target: "es5",
  legalComments: "none",
  logLevel: "warning",
});

const result = await build({
  entryPoints: [join(root, "frontend", "dashboard", "main.js"), join(root, "frontend", "dashboard", "style.css")],
  outdir: join(staging, "assets"),
  entryNames: "dashboard-[hash]",
  bundle: true,
  format: "esm",
  target: ["es2020"],
  minify: true,
  legalComments: "linked",
  metafile: true,
  logLevel: "warning",
});

const outputs = Object.keys(result.metafile.outputs).map((path) => basename(path));
const script = outputs.find((name) => name.endsWith(".js"));
const style = outputs.find((name) => name.endsWith(".css"));
// The page's icon, content-hashed like the bundles (served from 'self': the page's
// Content-Security-Policy allows no data: images).
const iconSvg = readFileSync(join(root, "frontend", "dashboard", "favicon.svg"));
const icon = `dashboard-${createHash("sha256").update(iconSvg).digest("hex").slice(0, 10)}.svg`;
writeFileSync(join(staging, "assets", icon), iconSvg);
const page = readFileSync(join(root, "frontend", "dashboard", "index.html"), "utf8")
  .replace("__JS__", script)
  .replace("__CSS__", style)
  .replace("__ICON__", icon);
writeFileSync(join(staging, "dashboard.html"), page);

// Swap the whole directory in, so a reader never sees a half-written build.
rmSync(out, { recursive: true, force: true });
mkdirSync(dirname(out), { recursive: true });
renameSync(staging, out);

const tracker = readFileSync(join(out, "vts.js"));
const size = (name) => readFileSync(join(assets, name)).length;
console.log(
  `frontend built into ${out}: vts.js ${tracker.length} B (${gzipSync(tracker, { level: 9 }).length} B gzipped), ` +
    `${script} ${size(script)} B, ${style} ${size(style)} B`,
);
