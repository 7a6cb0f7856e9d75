// Copies the browser builds of our npm dependencies into static/vendor/, so pages load them from
// our own server: an OBS overlay must never depend on a CDN being reachable during a live stream.
import { copyFileSync, mkdirSync, existsSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const root = join(dirname(fileURLToPath(import.meta.url)), "..");
const vendor = join(root, "static", "vendor");

const files = [
  ["node_modules/socket.io-client/dist/socket.io.min.js", "socket.io.min.js"],
  // The map keeps browser devtools from logging a 404 for the sourceMappingURL comment.
  ["node_modules/socket.io-client/dist/socket.io.min.js.map", "socket.io.min.js.map"],
];

mkdirSync(vendor, { recursive: true });
for (const [from, to] of files) {
  const src = join(root, from);
  if (!existsSync(src)) {
    console.error(`missing ${from}: run \`npm ci\` first`);
    process.exit(1);
  }
  copyFileSync(src, join(vendor, to));
  console.log(`static/vendor/${to} <- ${from}`);
}
