// Where Debian's Chromium is (scripts/chromium.sh installs it when missing; CHROMIUM_BIN overrides).
import { access } from "node:fs/promises";

export async function chromiumPath(): Promise<string> {
  const candidates = [
    process.env["CHROMIUM_BIN"],
    "/usr/bin/chromium",
    "/usr/bin/chromium-browser",
    "/Applications/Chromium.app/Contents/MacOS/Chromium",
    "/Applications/Google Chrome.app/Contents/MacOS/Google Chrome",
  ].filter((p): p is string => Boolean(p));
  for (const p of candidates) {
    try {
      await access(p);
      return p;
    } catch {
      // next
    }
  }
  throw new Error(`No Chromium found (${candidates.join(", ")}): run scripts/chromium.sh (npm test runs it), or set CHROMIUM_BIN.`);
}
