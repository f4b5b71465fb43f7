// Bundles the demo into dist/: index.html, app.js, app.css. Deterministic: the same sources
// give byte-identical files (no timestamps, no absolute paths, no source maps), because the
// files are committed and embedded in the gateway binary.
import { build } from "esbuild";
import { copyFile, mkdir, readFile } from "node:fs/promises";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const here = dirname(fileURLToPath(import.meta.url));
process.chdir(here);
await mkdir("dist", { recursive: true });

const result = await build({
  entryPoints: ["src/main.tsx"],
  outfile: "dist/app.js",
  bundle: true,
  format: "iife",
  platform: "browser",
  target: ["es2020"],
  minify: true,
  sourcemap: false,
  legalComments: "none",
  charset: "utf8",
  jsx: "automatic",
  define: { "process.env.NODE_ENV": '"production"' },
  // One copy of each package, from this directory: @switchboard/react and @switchboard/client
  // are linked from ../react and ../js, whose own node_modules hold another React.
  alias: {
    react: "react",
    "react-dom": "react-dom",
    "@switchboard/client": "@switchboard/client",
  },
  logLevel: "warning",
  metafile: true,
});

await copyFile("src/index.html", "dist/index.html");
await copyFile("src/app.css", "dist/app.css");

const text = await readFile("dist/app.js", "utf8");
if (text.includes(here) || text.includes("/node_modules/")) {
  throw new Error("dist/app.js holds a file path: the build would not be reproducible");
}
const inputs = Object.keys(result.metafile.inputs);
for (const pkg of ["react", "react-dom"]) {
  const copies = new Set(inputs.filter((p) => p.includes(`node_modules/${pkg}/`)).map((p) => p.split(`node_modules/${pkg}/`)[0]));
  if (copies.size > 1) throw new Error(`two copies of ${pkg} bundled: ${[...copies].join(", ")}`);
}
for (const f of ["index.html", "app.js", "app.css"]) {
  const size = (await readFile(join("dist", f))).length;
  console.log(`dist/${f}: ${size} bytes`);
}
